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

// GELU, exact form (PyTorch's nn.GELU() default): gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
// WGSL has no erf: Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 over the whole line, below
// f32 rounding of the sum 1 + erf.
const SQRT_HALF: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

fn erf_approx(x: Val) -> Val {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-z * z));
}

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = a[i];
    out[i] = 0.5 * x * (1.0 + erf_approx(x * SQRT_HALF));
}

// d gelu / dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi).  a = x, b = dy.
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = a[i];
    let cdf = 0.5 * (1.0 + erf_approx(x * SQRT_HALF));
    out[i] = b[i] * (cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x));
}

// GELU, tanh approximation (GPT-2; PyTorch's nn.GELU(approximate="tanh")):
// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
const GELU_C: f32 = 0.7978845608028654;

fn tanh_safe(u: Val) -> Val {
    // Some drivers compute tanh through exp and overflow to NaN for large |u|.
    return tanh(clamp(u, Val(-15.0), Val(15.0)));
}

@compute @workgroup_size(WG)
fn gelu_tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = a[i];
    out[i] = 0.5 * x * (1.0 + tanh_safe(GELU_C * (x + 0.044715 * x * x * x)));
}

// d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// a = x, b = dy.
@compute @workgroup_size(WG)
fn gelu_tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let x = a[i];
    let t = tanh_safe(GELU_C * (x + 0.044715 * x * x * x));
    let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
    out[i] = b[i] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = max(a[i], Val(0.0)); }
}

// a = x, b = dy; the gradient is zero where x <= 0.
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
