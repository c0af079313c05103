// Batched matrix multiply C[bi] = op(A[bi]) @ op(B[bi]), launched by src/ops/matmul.rs.
//
// Logical shapes: op(A) is [M, K], op(B) is [K, N], C is [batch, M, N] row-major.
// A is stored [M, K] (or [K, M] when trans_a), B is stored [K, N] (or [N, K] when trans_b).
// Consecutive matrices of A and B are a_stride / b_stride elements apart; a stride of 0
// shares one matrix across the batch (a weight).
//
// Variants (see MatmulVariant):
// - naive, tiled: read A and B where they are, any layout, bounds-checked.
// - register, rowblock, rowblock_subgroup: first `pack_a` / `pack_b` copy A and B into
//   zero-padded panels (O(n^2) work next to the O(n^3) product), so the hot loops need no
//   transpose logic, no bounds checks and load whole vec4s:
//     packed A: [batch_a][m_pad / 32][k_pad / 4][32] vec4, element = A[row, 4q .. 4q + 4]
//               (32-row blocks; each k-quad of a block is 32 consecutive vec4)
//     packed B: [batch_b][n_pad / 32][k_pad][8] vec4, element = B[kk, 4j .. 4j + 4]
//               (32-column panels; each k of a panel is 8 consecutive vec4)
//   batch_a is 1 when A is shared (a_stride = 0), else batch; the same for B.
//   Row-major A whose rows are whole vec4 is read in place instead (a_direct).
//
// The file ends in two sections that define the same function, `a_rows`: PORTABLE ROW FETCH
// and SUBGROUP KERNELS. The Rust side compiles every kernel but the subgroup one from the
// file up to SUBGROUP KERNELS, so they also build on adapters without subgroups, and the
// subgroup kernel from the file without the PORTABLE ROW FETCH section.

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> packed: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ap: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> bp: array<vec4<f32>>;
// A and B again, seen as vec4 (the packing kernels read whole vec4 where rows allow).
@group(0) @binding(7) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> b4: array<vec4<f32>>;
// [N], read only when has_bias (otherwise any buffer is bound here).
@group(0) @binding(9) var<storage, read> bias: array<f32>;

// Rows per block of packed A, columns per panel of packed B.
const PACK_ROWS: u32 = 32u;
const PANEL_QUADS: u32 = 8u;

// The epilogue every compute kernel applies to an output of column j before storing it.
fn epilogue(j: u32, v: f32) -> f32 {
    if (p.has_bias != 0u) {
        return v + bias[j];
    }
    return v;
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

// Naive: one output element per invocation, a plain dot product over K. The fallback for
// tiny or skinny shapes, where any tile would mostly compute padding.
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    if (e >= p.batch * p.m * p.n) { return; }
    let at = output_at(e);
    let bi = at.x;
    let i = at.y;
    let j = at.z;
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
    c[e] = epilogue(j, acc);
}

// Dot4: naive for row-major A against transposed B with K a multiple of 4, so row i of A
// and row j of stored B are both contiguous whole vec4: a quarter of the loads, and each
// lane (one output) streams its own row instead of gathering one float per step.
@compute @workgroup_size(WG)
fn dot4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    if (e >= p.batch * p.m * p.n) { return; }
    let at = output_at(e);
    let bi = at.x;
    let i = at.y;
    let j = at.z;
    let quads = p.k / 4u;
    let a0 = (bi * p.a_stride + i * p.k) / 4u;
    let b0 = (bi * p.b_stride + j * p.k) / 4u;
    var acc = vec4(0.0);
    for (var q = 0u; q < quads; q++) {
        acc = fma(a4[a0 + q], b4[b0 + q], acc);
    }
    c[e] = epilogue(j, (acc.x + acc.y) + (acc.z + acc.w));
}

// Tiled: a 16x16 workgroup stages 16x16 tiles of A and B through workgroup memory, one
// output per invocation; each loaded element is used 16 times. The textbook GPU kernel.
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    // Workgroups: [batch][m / 16][n / 16], linear over a 2-D grid.
    let tiles_n = (p.n + 15u) / 16u;
    let tiles_m = (p.m + 15u) / 16u;
    let t = wid.x + wid.y * nwg.x;
    if (t >= p.batch * tiles_m * tiles_n) { return; }
    let bi = t / (tiles_m * tiles_n);
    let i = (t / tiles_n) % tiles_m * 16u + local.y;
    let j = t % tiles_n * 16u + local.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        tile_a[local.y][local.x] = a_at(bi, i, k0 + local.x);
        tile_b[local.y][local.x] = b_at(bi, k0 + local.y, j);
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            acc = fma(tile_a[local.y][kk], tile_b[kk][local.x], acc);
        }
        workgroupBarrier();
    }
    if (i < p.m && j < p.n) {
        c[(bi * p.m + i) * p.n + j] = epilogue(j, acc);
    }
}

// pack_a / pack_b: packed A / packed B (layouts above) from A / B in any layout, zero-padded.
// One invocation per 4x4 block of the logical matrix, which it reads as 4 vec4 along the
// stored rows (transposing in registers when the storage is transposed) and writes as 4
// packed vec4: on lavapipe every load or store is a per-lane loop, so 16 values cost 8 loops
// instead of 20. Storage rows that are not whole vec4 (odd sizes) fall back to scalar loads.
// The grid supplies every coordinate because integer division is a scalar loop there too.

// Rows i .. i + 4 x k .. k + 4 of logical A[bi]: column r holds the 4 k of row i + r.
fn a_block(bi: u32, i: u32, kk: u32) -> mat4x4<f32> {
    let ta = p.trans_a != 0u;
    if (select(p.k, p.m, ta) % 4u != 0u) {
        return mat4x4(a_row4(bi, i, kk), a_row4(bi, i + 1u, kk), a_row4(bi, i + 2u, kk), a_row4(bi, i + 3u, kk));
    }
    // Whole vec4: stored rows are 4-aligned, so each vec4 is entirely inside or outside.
    let base = bi * p.a_stride / 4u;
    if (ta) {
        // Stored [K, M]: stored row kk + x holds k = kk + x of rows i .. i + 4.
        let at = base + (kk * p.m + i) / 4u;
        let step = p.m / 4u;
        let ok = i < p.m;
        return transpose(mat4x4(a4_or_0(at, ok && kk < p.k), a4_or_0(at + step, ok && kk + 1u < p.k),
                                a4_or_0(at + 2u * step, ok && kk + 2u < p.k), a4_or_0(at + 3u * step, ok && kk + 3u < p.k)));
    }
    let at = base + (i * p.k + kk) / 4u;
    let step = p.k / 4u;
    let ok = kk < p.k;
    return mat4x4(a4_or_0(at, ok && i < p.m), a4_or_0(at + step, ok && i + 1u < p.m),
                  a4_or_0(at + 2u * step, ok && i + 2u < p.m), a4_or_0(at + 3u * step, ok && i + 3u < p.m));
}

fn a_row4(bi: u32, i: u32, kk: u32) -> vec4<f32> {
    return vec4(a_at(bi, i, kk), a_at(bi, i, kk + 1u), a_at(bi, i, kk + 2u), a_at(bi, i, kk + 3u));
}

fn a4_or_0(at: u32, inside: bool) -> vec4<f32> {
    if (inside) { return a4[at]; }
    return vec4(0.0);
}

// k .. k + 4 x columns j .. j + 4 of logical B[bi]: column x holds the 4 columns at k + x.
fn b_block(bi: u32, kk: u32, j: u32) -> mat4x4<f32> {
    let tb = p.trans_b != 0u;
    if (select(p.n, p.k, tb) % 4u != 0u) {
        return mat4x4(b_row4(bi, kk, j), b_row4(bi, kk + 1u, j), b_row4(bi, kk + 2u, j), b_row4(bi, kk + 3u, j));
    }
    let base = bi * p.b_stride / 4u;
    if (tb) {
        // Stored [N, K]: stored row j + c holds column j + c at k .. k + 4.
        let at = base + (j * p.k + kk) / 4u;
        let step = p.k / 4u;
        let ok = kk < p.k;
        return transpose(mat4x4(b4_or_0(at, ok && j < p.n), b4_or_0(at + step, ok && j + 1u < p.n),
                                b4_or_0(at + 2u * step, ok && j + 2u < p.n), b4_or_0(at + 3u * step, ok && j + 3u < p.n)));
    }
    let at = base + (kk * p.n + j) / 4u;
    let step = p.n / 4u;
    let ok = j < p.n;
    return mat4x4(b4_or_0(at, ok && kk < p.k), b4_or_0(at + step, ok && kk + 1u < p.k),
                  b4_or_0(at + 2u * step, ok && kk + 2u < p.k), b4_or_0(at + 3u * step, ok && kk + 3u < p.k));
}

fn b_row4(bi: u32, kk: u32, j: u32) -> vec4<f32> {
    return vec4(b_at(bi, kk, j), b_at(bi, kk, j + 1u), b_at(bi, kk, j + 2u), b_at(bi, kk, j + 3u));
}

fn b4_or_0(at: u32, inside: bool) -> vec4<f32> {
    if (inside) { return b4[at]; }
    return vec4(0.0);
}

// Workgroup (k-quads 2w .. 2w + 2, 128 rows, batch); invocation (x, y): rows 4x .. 4x + 4
// of the 128 at k-quad 2w + y. Wide along M for the same reason as pack_b: stored [K, M], A
// is then read in long runs of each stored row.
@compute @workgroup_size(32, 2)
fn pack_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let q = wid.x * 2u + local.y;
    let row = (wid.y * 32u + local.x) * 4u;
    if (q >= p.k_pad / 4u || row >= p.m_pad) { return; }
    let bi = wid.z;
    let rows = a_block(bi, row, 4u * q);
    let e = ap_batch(bi) + ap_index(row, q);
    packed[e] = rows[0];
    packed[e + 1u] = rows[1];
    packed[e + 2u] = rows[2];
    packed[e + 3u] = rows[3];
}

// Workgroup (k-quads 2w .. 2w + 2, 4 panels, batch); invocation (x, y): column quad x of the
// 4 panels at k-quad 2w + y. Wide rather than tall, so that the workgroup reads long runs of
// each stored row of B (rows a power of two apart would otherwise fight over cache sets).
@compute @workgroup_size(4u * PANEL_QUADS, 2)
fn pack_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let q = wid.x * 2u + local.y;
    let quad = wid.y * 4u * PANEL_QUADS + local.x;
    if (q >= p.k_pad / 4u || quad >= p.n_pad / 4u) { return; }
    let bi = wid.z;
    let ks = b_block(bi, 4u * q, 4u * quad);
    let e = bp_batch(bi) + bp_index(4u * q, quad);
    packed[e] = ks[0];
    packed[e + PANEL_QUADS] = ks[1];
    packed[e + 2u * PANEL_QUADS] = ks[2];
    packed[e + 3u * PANEL_QUADS] = ks[3];
}

// Where one batch of packed A / packed B starts (shared operands have one batch).
fn ap_batch(bi: u32) -> u32 {
    return select(0u, bi, p.a_stride != 0u) * (p.m_pad * p.k_pad / 4u);
}

fn bp_batch(bi: u32) -> u32 {
    return select(0u, bi, p.b_stride != 0u) * (p.k_pad * p.n_pad / 4u);
}

// Packed-A index of the vec4 A[row, 4q .. 4q + 4] within one batch.
fn ap_index(row: u32, q: u32) -> u32 {
    return ((row / PACK_ROWS) * (p.k_pad / 4u) + q) * PACK_ROWS + row % PACK_ROWS;
}

// Where the compute kernels find the vec4 A[bi][row, 4q .. 4q + 4] in `ap`: packed A, or,
// when A is row-major with rows of whole vec4 and no k padding (a_direct), A itself, which
// spares the packing pass. Rows past M then read whatever follows (the next batch, or
// zeros past the buffer); their outputs are never stored.
fn a_at_quad(bi: u32, row: u32, q: u32) -> u32 {
    if (p.a_direct != 0u) {
        return bi * p.a_stride / 4u + row * (p.k / 4u) + q;
    }
    return ap_batch(bi) + ap_index(row, q);
}

// How far `a_at_quad` moves for one more row within a block, and for one more k-quad.
fn a_row_step() -> u32 {
    return select(1u, p.k / 4u, p.a_direct != 0u);
}

fn a_quad_step() -> u32 {
    return select(PACK_ROWS, 1u, p.a_direct != 0u);
}

// Packed-B index of the vec4 B[kk, 4j .. 4j + 4] (j counts column quads) within one batch.
fn bp_index(kk: u32, j: u32) -> u32 {
    return ((j / PANEL_QUADS) * p.k_pad + kk) * PANEL_QUADS + j % PANEL_QUADS;
}

// Write a vec4 of outputs C[bi][i, 4j .. 4j + 4], dropping what falls in the padding.
fn store4(bi: u32, i: u32, j: u32, v: vec4<f32>) {
    if (i >= p.m) { return; }
    let base = (bi * p.m + i) * p.n;
    for (var x = 0u; x < 4u; x++) {
        let col = 4u * j + x;
        if (col < p.n) { c[base + col] = epilogue(col, v[x]); }
    }
}

// Register-blocked (GPU style): a 16x16 workgroup computes a 128x128 tile of C, each
// invocation 8x8 outputs held in registers (four 4x4 quadrants, 64 rows / 16 column quads
// apart, so that neighbouring invocations read neighbouring workgroup memory). Per step of
// RB_K along K the workgroup stages [128 x RB_K] of A (transposed: k-major) and [RB_K x 128]
// of B through workgroup memory, one vec4 of each per invocation; every staged value is then
// used 8 times from registers. The next step's vec4 are loaded while this step computes.
// The accumulators are four mat4x4 updated by straight-line code: a private array indexed in
// a loop can end up in memory rather than registers (it did on lavapipe, and this kernel ran
// at 3% of the H200's peak when it had one). Needs m_pad, n_pad multiples of 128 and k_pad
// of RB_K. With k_split > 1 (a weight gradient: few output tiles, long K) each workgroup
// computes one tile over one slice of K, so that the slices keep the device busy.
const RB_TILE: u32 = 128u;
const RB_K: u32 = 8u;
var<workgroup> stage_a: array<array<vec4<f32>, 32>, RB_K>;
var<workgroup> stage_b: array<array<vec4<f32>, 32>, RB_K>;

// acc + a (x) b: row r of the 4x4 block gains a[r] * b.
fn outer4(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(fma(vec4(a.x), b, acc[0]), fma(vec4(a.y), b, acc[1]),
                       fma(vec4(a.z), b, acc[2]), fma(vec4(a.w), b, acc[3]));
}

// Rows i .. i + 4 of a 4x4 block of outputs, column quad j.
fn store_block(bi: u32, i: u32, j: u32, c: mat4x4<f32>) {
    store4(bi, i, j, c[0]);
    store4(bi, i + 1u, j, c[1]);
    store4(bi, i + 2u, j, c[2]);
    store4(bi, i + 3u, j, c[3]);
}

@compute @workgroup_size(16, 16)
fn register_blocked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) local: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let tiles_m = p.m_pad / RB_TILE;
    let tiles_n = p.n_pad / RB_TILE;
    let t = wid.x + wid.y * nwg.x;
    let tiles = p.batch * tiles_m * tiles_n;
    if (t >= p.k_split * tiles) { return; }
    let slice = t / tiles;
    let bi = t % tiles / (tiles_m * tiles_n);
    let row0 = (t / tiles_n) % tiles_m * RB_TILE;
    let quad0 = t % tiles_n * (RB_TILE / 4u);
    let b0 = bp_batch(bi);
    let k_begin = slice * p.k_slice;
    let k_end = min(p.k_pad, k_begin + p.k_slice);
    // What this invocation stages: one vec4 of A (row `lid % 128`, k-quad `lid / 128`) and
    // one vec4 of B (k `lid / 32`, column quad `lid % 32`).
    let sa_row = lid % RB_TILE;
    let sa_q = lid / RB_TILE;
    let sb_k = lid / 32u;
    let sb_j = lid % 32u;
    var c_ll = mat4x4<f32>();
    var c_lh = mat4x4<f32>();
    var c_hl = mat4x4<f32>();
    var c_hh = mat4x4<f32>();
    var va = ap[a_at_quad(bi, row0 + sa_row, k_begin / 4u + sa_q)];
    var vb = bp[b0 + bp_index(k_begin + sb_k, quad0 + sb_j)];
    for (var k0 = k_begin; k0 < k_end; k0 += RB_K) {
        // stage_a[k][row / 4][row % 4]: four rows of one k side by side as a vec4.
        let ka = sa_q * 4u;
        let ra = sa_row / 4u;
        let xa = sa_row % 4u;
        stage_a[ka][ra][xa] = va.x;
        stage_a[ka + 1u][ra][xa] = va.y;
        stage_a[ka + 2u][ra][xa] = va.z;
        stage_a[ka + 3u][ra][xa] = va.w;
        stage_b[sb_k][sb_j] = vb;
        workgroupBarrier();
        let k1 = k0 + RB_K;
        if (k1 < k_end) {
            va = ap[a_at_quad(bi, row0 + sa_row, k1 / 4u + sa_q)];
            vb = bp[b0 + bp_index(k1 + sb_k, quad0 + sb_j)];
        }
        for (var kk = 0u; kk < RB_K; kk++) {
            let a_lo = stage_a[kk][local.y];
            let a_hi = stage_a[kk][local.y + 16u];
            let b_lo = stage_b[kk][local.x];
            let b_hi = stage_b[kk][local.x + 16u];
            c_ll = outer4(c_ll, a_lo, b_lo);
            c_lh = outer4(c_lh, a_lo, b_hi);
            c_hl = outer4(c_hl, a_hi, b_lo);
            c_hh = outer4(c_hh, a_hi, b_hi);
        }
        workgroupBarrier();
    }
    let lo = row0 + local.y * 4u;
    let j = quad0 + local.x;
    let ci = slice * p.batch + bi;
    store_block(ci, lo, j, c_ll);
    store_block(ci, lo, j + 16u, c_lh);
    store_block(ci, lo + 64u, j, c_hl);
    store_block(ci, lo + 64u, j + 16u, c_hh);
}

// Row block (CPU style, for lavapipe, where every storage or workgroup-memory load becomes a
// per-lane scalar loop, barriers are expensive, and FMAs are cheap): no workgroup memory, no
// barriers, as many FMAs per load as the registers allow. A 1-D workgroup of RB_WG
// invocations shares one block of 32 rows of A (picked by the workgroup id alone, so it stays
// in cache); each invocation owns two column quads (quad0 and quad0 + RB_WG) and accumulates
// 32 rows x 8 columns in vec4 registers: per k-quad 8 loads of B and 32 of A (4 with
// subgroups) feed 1024 FMAs. Consecutive workgroups walk down the row blocks of one column
// group, so that group's panels of B stay in cache. Needs m_pad a multiple of 32, n_pad of 32.
//
// 32x8 per invocation is the measured optimum on lavapipe: 64x8, 48x8 and 32x16 tiles, or
// two k-quads per loop iteration, ran 30-40% slower (the loop body outgrows the CPU's
// caches and registers). The accumulators live in named struct fields rather than arrays:
// the driver keeps dynamically indexed arrays in memory, and only small loops get unrolled.

// 8 rows of 4 values: A[r, 4q .. 4q + 4] (4 k of each row) or C[r, 4j .. 4j + 4].
struct Rows8 {
    r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>,
    r4: vec4<f32>, r5: vec4<f32>, r6: vec4<f32>, r7: vec4<f32>,
}

// B[4q + x, 4j .. 4j + 4] for x = 0..3: one k-quad of one column quad.
struct Quad4 {
    k0: vec4<f32>, k1: vec4<f32>, k2: vec4<f32>, k3: vec4<f32>,
}

const RB_ROWS: u32 = 32u;

struct RowTile {
    bi: u32,
    row0: u32,
    // The first of this invocation's column quads.
    quad0: u32,
    // Index in `ap` of A[row0, k-quad 0]; indices in `bp` of k = 0 of both column quads,
    // clamped to the last real (b_direct) or padded quad so that every invocation runs the
    // whole loop (the subgroup kernel needs all lanes).
    a0: u32,
    b0: u32,
    b1: u32,
}

// Workgroups: [batch][column groups of 2 * RB_WG quads][row blocks].
fn row_groups() -> u32 {
    return (p.n_pad / 4u + 2u * RB_WG - 1u) / (2u * RB_WG);
}

fn row_workgroups() -> u32 {
    return p.batch * (p.m_pad / RB_ROWS) * row_groups();
}

fn row_tile(wg: u32, lid: u32) -> RowTile {
    let blocks = p.m_pad / RB_ROWS;
    let bi = wg / (blocks * row_groups());
    let row0 = wg % blocks * RB_ROWS;
    let quad0 = (wg / blocks) % row_groups() * 2u * RB_WG + lid;
    let last = select(p.n_pad, p.n, p.b_direct != 0u) / 4u - 1u;
    return RowTile(bi, row0, quad0, a_at_quad(bi, row0, 0u),
                   b_at_quad(bi, min(quad0, last)), b_at_quad(bi, min(quad0 + RB_WG, last)));
}

// Where the row-block kernels find B[bi][k = 0, 4j .. 4j + 4] in `bp`: packed B, or, with
// b_direct, B itself (rows of whole vec4, no k padding): row-major, or stored transposed
// ([N, K]) in the kernels compiled with B_STORED_T = 1, where it is stored row 4j at k = 0.
// Packing costs a pass over B, which a product with few rows of A (a convolution's C_out x
// pixels, or its weight gradient) does not repay; products with many rows keep the packed
// panels (power-of-two row strides hurt).
fn b_at_quad(bi: u32, j: u32) -> u32 {
    if (p.b_direct != 0u) {
        return bi * p.b_stride / 4u + select(j, j * p.k, B_STORED_T != 0u);
    }
    return bp_batch(bi) + bp_index(0u, j);
}

// How far `b_at_quad` moves for one more k (one more column when B is stored transposed).
fn b_k_step() -> u32 {
    if (B_STORED_T != 0u) {
        return p.k / 4u;
    }
    return select(PANEL_QUADS, p.n / 4u, p.b_direct != 0u);
}

// One k-quad of the column quad whose k = 0 is at `bp` index `b0`; `step`: `b_k_step()`.
// Stored transposed, the 4 columns' stored rows hold 4 k each: a 4x4 transpose in registers.
fn quad4(b0: u32, q: u32, step: u32) -> Quad4 {
    if (B_STORED_T != 0u) {
        let at = b0 + q;
        let t = transpose(mat4x4(bp[at], bp[at + step], bp[at + 2u * step], bp[at + 3u * step]));
        return Quad4(t[0], t[1], t[2], t[3]);
    }
    let at = b0 + 4u * q * step;
    return Quad4(bp[at], bp[at + step], bp[at + 2u * step], bp[at + 3u * step]);
}

// acc += a4 (4 k of one row of A) @ b (4 k x 4 columns of B).
fn row_fma(acc: vec4<f32>, a4: vec4<f32>, b: Quad4) -> vec4<f32> {
    return fma(vec4(a4.w), b.k3, fma(vec4(a4.z), b.k2, fma(vec4(a4.y), b.k1, fma(vec4(a4.x), b.k0, acc))));
}

fn rows8_fma(acc: Rows8, a: Rows8, b: Quad4) -> Rows8 {
    return Rows8(row_fma(acc.r0, a.r0, b), row_fma(acc.r1, a.r1, b), row_fma(acc.r2, a.r2, b),
                 row_fma(acc.r3, a.r3, b), row_fma(acc.r4, a.r4, b), row_fma(acc.r5, a.r5, b),
                 row_fma(acc.r6, a.r6, b), row_fma(acc.r7, a.r7, b));
}

fn rows8_store(t: RowTile, r0: u32, quad: u32, acc: Rows8) {
    let i = t.row0 + r0;
    store4(t.bi, i, quad, acc.r0);
    store4(t.bi, i + 1u, quad, acc.r1);
    store4(t.bi, i + 2u, quad, acc.r2);
    store4(t.bi, i + 3u, quad, acc.r3);
    store4(t.bi, i + 4u, quad, acc.r4);
    store4(t.bi, i + 5u, quad, acc.r5);
    store4(t.bi, i + 6u, quad, acc.r6);
    store4(t.bi, i + 7u, quad, acc.r7);
}

// The row-block kernels without their entry points: the 8 rows at `ap` indices at,
// at + step, .. (one k-quad each) come from `a_rows` (lane x of a subgroup passes its `lane`),
// defined by the section below that the kernel is compiled with.
fn rowblock_main(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= row_workgroups()) { return; }
    let t = row_tile(wg, lid);
    // Row group g (rows 8g .. 8g + 8) x column quad c.
    var g0c0: Rows8; var g0c1: Rows8; var g1c0: Rows8; var g1c1: Rows8;
    var g2c0: Rows8; var g2c1: Rows8; var g3c0: Rows8; var g3c1: Rows8;
    let step = a_row_step();
    let b_step = b_k_step();
    for (var q = 0u; q < p.k_pad / 4u; q++) {
        let b0 = quad4(t.b0, q, b_step);
        let b1 = quad4(t.b1, q, b_step);
        let at = t.a0 + q * a_quad_step();
        let a0 = a_rows(at, step, lane);
        g0c0 = rows8_fma(g0c0, a0, b0);
        g0c1 = rows8_fma(g0c1, a0, b1);
        let a1 = a_rows(at + 8u * step, step, lane);
        g1c0 = rows8_fma(g1c0, a1, b0);
        g1c1 = rows8_fma(g1c1, a1, b1);
        let a2 = a_rows(at + 16u * step, step, lane);
        g2c0 = rows8_fma(g2c0, a2, b0);
        g2c1 = rows8_fma(g2c1, a2, b1);
        let a3 = a_rows(at + 24u * step, step, lane);
        g3c0 = rows8_fma(g3c0, a3, b0);
        g3c1 = rows8_fma(g3c1, a3, b1);
    }
    let c1 = t.quad0 + RB_WG;
    rows8_store(t, 0u, t.quad0, g0c0);
    rows8_store(t, 0u, c1, g0c1);
    rows8_store(t, 8u, t.quad0, g1c0);
    rows8_store(t, 8u, c1, g1c1);
    rows8_store(t, 16u, t.quad0, g2c0);
    rows8_store(t, 16u, c1, g2c1);
    rows8_store(t, 24u, t.quad0, g3c0);
    rows8_store(t, 24u, c1, g3c1);
}

// PORTABLE ROW FETCH (every lane loads the 8 rows itself)

fn a_rows(at: u32, step: u32, lane: u32) -> Rows8 {
    return Rows8(ap[at], ap[at + step], ap[at + 2u * step], ap[at + 3u * step], ap[at + 4u * step],
                 ap[at + 5u * step], ap[at + 6u * step], ap[at + 7u * step]);
}

@compute @workgroup_size(RB_WG)
fn rowblock(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    rowblock_main(wid, nwg, lid, 0u);
}

// SUBGROUP KERNELS (need Features::SUBGROUP; compiled without the section above, and only
// where the adapter has subgroups)

// Row block with A shared through the subgroup: every lane of a subgroup needs the same 32
// vec4 of A per k-quad, so lane x loads rows x, x + 8, x + 16, x + 24 and each group of 8 is
// broadcast: 4 loads of A per lane instead of 32. Needs subgroups of at least 8 lanes
// (checked by the Rust side); wider subgroups just repeat the first 8 lanes' loads.
fn a_rows(at: u32, step: u32, lane: u32) -> Rows8 {
    let v = ap[at + lane % 8u * step];
    return Rows8(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
                 subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                 subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

@compute @workgroup_size(RB_WG)
fn rowblock_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane: u32) {
    rowblock_main(wid, nwg, lid, lane);
}

// Dot4 with the row of A shared through the subgroup: every lane of a subgroup computes an
// output of the same row of A (the Rust side checks that N and the workgroup are whole
// subgroups), so lane x loads k-quad q + x of that row and the 8 k-quads are broadcast: per
// k-quad one load of B and an eighth of a load of A instead of two loads. On lavapipe every
// load is a per-lane loop, so this nearly halves the work of a one-token product.
@compute @workgroup_size(WG)
fn dot4_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let total = p.batch * p.m * p.n;
    let id = linear_id(wid, nwg, lid, WG);
    // Lanes past the end compute the last output again instead of returning: the broadcasts
    // need every lane of the subgroup.
    let e = min(id, total - 1u);
    let at = output_at(e);
    let quads = p.k / 4u;
    let a0 = (at.x * p.a_stride + at.y * p.k) / 4u;
    let b0 = (at.x * p.b_stride + at.z * p.k) / 4u;
    let whole = quads / 8u * 8u;
    var acc0 = vec4(0.0);
    var acc1 = vec4(0.0);
    for (var q = 0u; q < whole; q += 8u) {
        let av = a4[a0 + q + lane % 8u];
        let b = b0 + q;
        acc0 = fma(subgroupBroadcast(av, 0u), b4[b], acc0);
        acc1 = fma(subgroupBroadcast(av, 1u), b4[b + 1u], acc1);
        acc0 = fma(subgroupBroadcast(av, 2u), b4[b + 2u], acc0);
        acc1 = fma(subgroupBroadcast(av, 3u), b4[b + 3u], acc1);
        acc0 = fma(subgroupBroadcast(av, 4u), b4[b + 4u], acc0);
        acc1 = fma(subgroupBroadcast(av, 5u), b4[b + 5u], acc1);
        acc0 = fma(subgroupBroadcast(av, 6u), b4[b + 6u], acc0);
        acc1 = fma(subgroupBroadcast(av, 7u), b4[b + 7u], acc1);
    }
    for (var q = whole; q < quads; q++) {
        acc0 = fma(a4[a0 + q], b4[b0 + q], acc0);
    }
    let acc = acc0 + acc1;
    if (id < total) {
        c[e] = epilogue(at.z, (acc.x + acc.y) + (acc.z + acc.w));
    }
}
