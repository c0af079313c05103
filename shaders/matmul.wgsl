// Batched matrix multiply C[bi] = op(A[bi]) @ op(B[bi]), launched by src/ops/matmul.rs.
//
// Logical shapes: op(A) is [M, K], op(B) is [K, N], C is [batch, M, N] row-major.
// A is stored [M, K] (or [K, M] when trans_a), B is stored [K, N] (or [N, K] when trans_b).
// Consecutive matrices of A and B are a_stride / b_stride elements apart; a stride of 0
// shares one matrix across the batch (a weight).

struct Params {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    a_stride: u32,
    b_stride: u32,
    trans_a: u32,
    trans_b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// Naive: one output element per invocation, a plain dot product over K. Handles every
// layout through runtime strides, so it is the reference every faster variant is checked
// against and the fallback for tiny or skinny shapes.
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    if (e >= p.batch * p.m * p.n) { return; }
    let j = e % p.n;
    let row = e / p.n;
    let i = row % p.m;
    let bi = row / p.m;
    // Where A[i, 0] and B[0, j] live, and how far one step along K moves in each.
    let ta = p.trans_a != 0u;
    let tb = p.trans_b != 0u;
    let a0 = bi * p.a_stride + select(i * p.k, i, ta);
    let a_step = select(1u, p.m, ta);
    let b0 = bi * p.b_stride + select(j, j * p.k, tb);
    let b_step = select(p.n, 1u, tb);
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc = fma(a[a0 + kk * a_step], b[b0 + kk * b_step], acc);
    }
    c[e] = acc;
}
