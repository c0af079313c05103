// Batched matrix multiply C[bi] = op(A[bi]) @ op(B[bi]): what every matmul kernel shares.
// Launched by src/ops/matmul/gemm.rs; each kernel compiles this file after no_pre_out.wgsl
// (or, for `ops::linear_act`, activation.wgsl and pre_out.wgsl: `activated`), and before the
// files of its family (see `MatmulVariant`):
// - simple.wgsl: naive, dot4, tiled: read A and B where they are, any layout, bounds-checked;
//   dot4_subgroup.wgsl: dot4 with the row of A shared through the subgroup.
// - register_blocked.wgsl, rowblock.wgsl (+ a row fetch, portable or subgroup): first the
//   kernels of pack.wgsl copy A and B into the zero-padded panels of packed.wgsl.
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
    // Padded sizes of the packed operands (multiples of the variant's tile).
    m_pad: u32,
    k_pad: u32,
    n_pad: u32,
    // 1: the compute kernels read A in place instead of packed A (see `a_at_quad`).
    a_direct: u32,
    // 1: add bias[j] to every output of column j (a Linear layer's bias, fused).
    has_bias: u32,
    // 1: the row-block kernels read B in place instead of packed B (see `b_at_quad`).
    b_direct: u32,
    // Split K (register-blocked kernel only): k_split slices of k_slice each, every slice's
    // product written to its own [batch, m, n] block of C for a sum afterwards. 1 and k_pad
    // otherwise.
    k_split: u32,
    k_slice: u32,
    // 1: add residual[e] to output element e (a residual connection, fused; never split K).
    has_residual: u32,
    // ACT_* of activation.wgsl: apply it after the bias, keeping the value before it for the
    // backward (`activated`; a Linear and its activation fused; never split K). 0: none.
    activation: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
// The packed operands (packed.wgsl) hold `Packed`, an alias the kernel is compiled with:
// vec4<f32>, or vec4<f16> for a product in half precision (`MatmulPrecision::Half`, with
// `enable f16;`). The compute kernels read them through `ap_load` / `bp_load` as f32.
@group(0) @binding(4) var<storage, read_write> packed: array<Packed>;
@group(0) @binding(5) var<storage, read> ap: array<Packed>;
@group(0) @binding(6) var<storage, read> bp: array<Packed>;
// A and B again, seen as vec4 (the packing kernels read whole vec4 where rows allow).
@group(0) @binding(7) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> b4: array<vec4<f32>>;
// [N], read only when has_bias (otherwise any buffer is bound here).
@group(0) @binding(9) var<storage, read> bias: array<f32>;
// Shaped like C, read only when has_residual (otherwise any buffer is bound here).
@group(0) @binding(10) var<storage, read> residual: array<f32>;
// Binding 11: pre_out.wgsl.

fn ap_load(i: u32) -> vec4<f32> {
    return vec4<f32>(ap[i]);
}

fn bp_load(i: u32) -> vec4<f32> {
    return vec4<f32>(bp[i]);
}

// The epilogue every compute kernel applies to output element e (of column j) before storing
// it: a Linear layer's bias, its activation, and the residual stream the layer's output is
// added to.
fn epilogue(e: u32, j: u32, v: f32) -> f32 {
    var out = v;
    if (p.has_bias != 0u) {
        out += bias[j];
    }
    if (p.activation != 0u) {
        out = activated(e, out);
    }
    if (p.has_residual != 0u) {
        out += residual[e];
    }
    return out;
}

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * wg + lid;
}

// (batch, row, column) of output element e of C.
fn output_at(e: u32) -> vec3<u32> {
    let row = e / p.n;
    return vec3(row / p.m, row % p.m, e % p.n);
}

// Logical A[bi][i, kk] and B[bi][kk, j], 0 outside the matrix (the padding).
fn a_at(bi: u32, i: u32, kk: u32) -> f32 {
    if (i >= p.m || kk >= p.k) { return 0.0; }
    return a[bi * p.a_stride + select(i * p.k + kk, kk * p.m + i, p.trans_a != 0u)];
}

fn b_at(bi: u32, kk: u32, j: u32) -> f32 {
    if (kk >= p.k || j >= p.n) { return 0.0; }
    return b[bi * p.b_stride + select(kk * p.n + j, j * p.k + kk, p.trans_b != 0u)];
}
