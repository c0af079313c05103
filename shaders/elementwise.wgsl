// Elementwise kernels, one invocation per element, WG invocations per workgroup, launched on a
// 2-D grid of workgroups (see `grid` in src/gpu/kernel.rs). Launched by src/ops/elementwise.rs.
//
// Broadcasting: `b` has `m` elements and repeats over the leading dims of `a` (a bias), so
// element i of `a` pairs with element i % m of `b`. With m == n it is a plain elementwise op.
//
// `Val` is f32, or vec4<f32> for the wide variant (the Rust side prepends the alias): where n
// and m are multiples of 4 every kernel but dropout runs on vec4, with n and m counted in
// vec4. On lavapipe every load, store and integer division is a per-lane loop, so a quarter
// of the invocations is ~2.5x faster.

struct Params {
    n: u32,      // elements of the output
    m: u32,      // elements of b (broadcast period)
    alpha: f32,  // fill value / scale / dropout probability
    seed: u32,   // dropout seed
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<Val>;
@group(0) @binding(2) var<storage, read> a: array<Val>;
@group(0) @binding(3) var<storage, read> b: array<Val>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = Val(p.alpha); }
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = a[i] + b[i % p.m]; }
}

@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = a[i] * b[i % p.m]; }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = a[i] * p.alpha; }
}

// The activations (activation.wgsl, compiled first), forward; and backward with a = x, b = dy.
@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = gelu(a[i]); }
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = b[i] * gelu_grad(a[i]); }
}

@compute @workgroup_size(WG)
fn gelu_tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = gelu_tanh(a[i]); }
}

@compute @workgroup_size(WG)
fn gelu_tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = b[i] * gelu_tanh_grad(a[i]); }
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = relu(a[i]); }
}

// The gradient is zero where x <= 0.
@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = select(Val(0.0), b[i], a[i] > Val(0.0)); }
}

// Counter-based RNG (PCG hash): element i's coin depends only on (seed, i), so the backward
// pass regenerates the forward's mask instead of storing it. Mirrors src/reference/elementwise.rs.
fn pcg_hash(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Inverted dropout: keep with probability 1 - alpha and scale by 1 / (1 - alpha).
// Its backward is the same kernel applied to dy with the same seed. Scalar only (Val = f32):
// each element's coin comes from its own index.
@compute @workgroup_size(WG)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let u = f32(pcg_hash(pcg_hash(p.seed) ^ i) >> 8u) * (1.0 / 16777216.0);
    // Val(0.0): the module must also compile with the wide Val, but dropout is only launched
    // with Val = f32 (a wide launch would give 4 values one coin).
    out[i] = select(Val(0.0), a[i] / (1.0 - p.alpha), u >= p.alpha);
}
