// x @ W^T (+ bias) with the weight W held in half precision: the projections of a pretrained
// model whose weights were shipped as f16 (Whisper's CTranslate2 files) keep that precision on
// the device, so a decoding step reads half the bytes (its output projection alone is
// 51,864 x 384 weights per token). Values are widened to f32 as they are read; every sum is
// f32. Launched by src/ops/matmul_half.rs; reference: src/reference/matmul_half.rs.
//
// x is [M, K] row-major f32 (M: a handful of rows, one per decoding sequence); W is [N, K]
// (a Linear layer's weight: row j holds output j's weights) stored as pairs of halves in u32
// (unpack2x16float order: element 2i in the low 16 bits); K is a multiple of 8. C is [M, N].
// Backward: dx = dC @ W (W is frozen: no gradient for it).

struct Params {
    m: u32,
    k: u32,
    n: u32,
    // 1: add bias[j] to every output of column j.
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
// W as 8 halves per element (forward) and as 2 halves per element (backward).
@group(0) @binding(3) var<storage, read> w8: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// backward
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read> dc: array<f32>;
@group(0) @binding(7) var<storage, read> w2: array<u32>;

fn first4(h: vec4<u32>) -> vec4<f32> {
    return vec4(unpack2x16float(h.x), unpack2x16float(h.y));
}
fn last4(h: vec4<u32>) -> vec4<f32> {
    return vec4(unpack2x16float(h.z), unpack2x16float(h.w));
}

// The sum of a vec4 of partial sums, in a fixed order.
fn total(acc: vec4<f32>) -> f32 {
    return (acc.x + acc.y) + (acc.z + acc.w);
}

fn invocation(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Rows x0 and x1 of x (their first vec4) against the weights of one column (its first oct
// w0), octs `first` .. `octs` one by one, each oct of W loaded and widened once for both rows:
// the four partial sums of each row.
fn two_rows_plain(x0: u32, x1: u32, w0: u32, first: u32, octs: u32) -> mat2x4<f32> {
    var a0 = vec4(0.0);
    var b0 = vec4(0.0);
    var a1 = vec4(0.0);
    var b1 = vec4(0.0);
    for (var o = first; o < octs; o++) {
        let w = w8[w0 + o];
        let f = first4(w);
        let l = last4(w);
        a0 = fma(x4[x0 + 2u * o], f, a0);
        b0 = fma(x4[x0 + 2u * o + 1u], l, b0);
        a1 = fma(x4[x1 + 2u * o], f, a1);
        b1 = fma(x4[x1 + 2u * o + 1u], l, b1);
    }
    return mat2x4(a0 + b0, a1 + b1);
}

// `two_rows_plain` of one row.
fn one_row_plain(x0: u32, w0: u32, first: u32, octs: u32) -> vec4<f32> {
    var a0 = vec4(0.0);
    var b0 = vec4(0.0);
    for (var o = first; o < octs; o++) {
        let w = w8[w0 + o];
        a0 = fma(x4[x0 + 2u * o], first4(w), a0);
        b0 = fma(x4[x0 + 2u * o + 1u], last4(w), b0);
    }
    return a0 + b0;
}

// One column j per invocation, against the rows of x two at a time (then the last one
// alone): consecutive invocations read consecutive rows of W (one load of 16 bytes per 8
// weights, widened once for both rows) and the same rows of x.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = invocation(gid, nwg);
    if (j >= p.n) { return; }
    let octs = p.k / 8u;
    let w0 = j * octs;
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[j];
    }
    let row = octs * 2u; // vec4 per row of x
    var i = 0u;
    for (; i + 1u < p.m; i += 2u) {
        let sums = two_rows_plain(i * row, (i + 1u) * row, w0, 0u, octs);
        c[i * p.n + j] = total(sums[0]) + b;
        c[(i + 1u) * p.n + j] = total(sums[1]) + b;
    }
    if (i < p.m) {
        c[i * p.n + j] = total(one_row_plain(i * row, w0, 0u, octs)) + b;
    }
}

// dx[i, kk] = sum_j dC[i, j] W[j, kk], one output per invocation.
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = invocation(gid, nwg);
    if (e >= p.m * p.k) { return; }
    let i = e / p.k;
    let kk = e % p.k;
    var acc = 0.0;
    for (var j = 0u; j < p.n; j++) {
        let pair = unpack2x16float(w2[(j * p.k + kk) / 2u]);
        acc = fma(dc[i * p.n + j], select(pair.x, pair.y, kk % 2u == 1u), acc);
    }
    dx[e] = acc;
}
