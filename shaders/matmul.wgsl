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
//     packed A: [batch_a][m_pad / 16][k_pad / 4][16] vec4, element = A[row, 4q .. 4q + 4]
//               (16-row blocks; each k-quad of a block is 16 consecutive vec4)
//     packed B: [batch_b][n_pad / 32][k_pad][8] vec4, element = B[kk, 4j .. 4j + 4]
//               (32-column panels; each k of a panel is 8 consecutive vec4)
//   batch_a is 1 when A is shared (a_stride = 0), else batch; the same for B.
//
// The subgroup kernel sits after the SUBGROUP KERNELS line: the Rust side compiles the file
// up to that line for every other kernel, so they also build on adapters without subgroups.

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> packed: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ap: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> bp: array<vec4<f32>>;

// Rows per block of packed A, columns per panel of packed B.
const PACK_ROWS: u32 = 16u;
const PANEL_QUADS: u32 = 8u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * wg + lid;
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
        c[(bi * p.m + i) * p.n + j] = acc;
    }
}

// pack_a: packed A (layout above) from A in any layout, zero-padded to m_pad x k_pad.
@compute @workgroup_size(WG)
fn pack_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    let quads = p.k_pad / 4u;
    let blocks = p.m_pad / PACK_ROWS;
    let batches = select(1u, p.batch, p.a_stride != 0u);
    if (e >= batches * blocks * quads * PACK_ROWS) { return; }
    let i = (e / (PACK_ROWS * quads)) % blocks * PACK_ROWS + e % PACK_ROWS;
    let kk = (e / PACK_ROWS) % quads * 4u;
    let bi = e / (PACK_ROWS * quads * blocks);
    packed[e] = vec4(a_at(bi, i, kk), a_at(bi, i, kk + 1u), a_at(bi, i, kk + 2u), a_at(bi, i, kk + 3u));
}

// pack_b: packed B (layout above) from B in any layout, zero-padded to k_pad x n_pad.
@compute @workgroup_size(WG)
fn pack_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    let panels = p.n_pad / (4u * PANEL_QUADS);
    let batches = select(1u, p.batch, p.b_stride != 0u);
    if (e >= batches * panels * p.k_pad * PANEL_QUADS) { return; }
    let j = ((e / (PANEL_QUADS * p.k_pad)) % panels * PANEL_QUADS + e % PANEL_QUADS) * 4u;
    let kk = (e / PANEL_QUADS) % p.k_pad;
    let bi = e / (PANEL_QUADS * p.k_pad * panels);
    packed[e] = vec4(b_at(bi, kk, j), b_at(bi, kk, j + 1u), b_at(bi, kk, j + 2u), b_at(bi, kk, j + 3u));
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
        if (col < p.n) { c[base + col] = v[x]; }
    }
}

// Register-blocked (GPU style): a 16x16 workgroup computes a 128x128 tile of C, each
// invocation 8x8 outputs held in registers (two 4-row x 2 vec4 quadrants, 64 apart so that
// neighbouring invocations read neighbouring workgroup memory). Per step of RB_K along K
// the workgroup stages [128 x RB_K] of A (transposed: k-major) and [RB_K x 128] of B through
// workgroup memory with one vec4 load per invocation per 8 k; every staged value is then
// used 8 times from registers. Needs m_pad, n_pad multiples of 128 and k_pad of RB_K.
const RB_TILE: u32 = 128u;
const RB_K: u32 = 8u;
var<workgroup> stage_a: array<array<vec4<f32>, 32>, RB_K>;
var<workgroup> stage_b: array<array<vec4<f32>, 32>, RB_K>;

@compute @workgroup_size(16, 16)
fn register_blocked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) local: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let tiles_m = p.m_pad / RB_TILE;
    let tiles_n = p.n_pad / RB_TILE;
    let t = wid.x + wid.y * nwg.x;
    if (t >= p.batch * tiles_m * tiles_n) { return; }
    let bi = t / (tiles_m * tiles_n);
    let row0 = (t / tiles_n) % tiles_m * RB_TILE;
    let quad0 = t % tiles_n * (RB_TILE / 4u);
    let a0 = ap_batch(bi);
    let b0 = bp_batch(bi);
    // What this invocation stages: one vec4 of A (row `lid % 128`, k-quad `lid / 128`) and
    // one vec4 of B (k `lid / 32`, column quad `lid % 32`).
    let sa_row = lid % RB_TILE;
    let sa_q = lid / RB_TILE;
    let sb_k = lid / 32u;
    let sb_j = lid % 32u;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k_pad; k0 += RB_K) {
        let va = ap[a0 + ap_index(row0 + sa_row, k0 / 4u + sa_q)];
        // stage_a[k][row / 4][row % 4]: four rows of one k side by side as a vec4.
        for (var x = 0u; x < 4u; x++) {
            stage_a[sa_q * 4u + x][sa_row / 4u][sa_row % 4u] = va[x];
        }
        stage_b[sb_k][sb_j] = bp[b0 + bp_index(k0 + sb_k, quad0 + sb_j)];
        workgroupBarrier();
        for (var kk = 0u; kk < RB_K; kk++) {
            let a_lo = stage_a[kk][local.y];
            let a_hi = stage_a[kk][local.y + 16u];
            let b_lo = stage_b[kk][local.x];
            let b_hi = stage_b[kk][local.x + 16u];
            for (var r = 0u; r < 4u; r++) {
                acc[r] = fma(vec4(a_lo[r]), b_lo, acc[r]);
                acc[r + 4u] = fma(vec4(a_lo[r]), b_hi, acc[r + 4u]);
                acc[r + 8u] = fma(vec4(a_hi[r]), b_lo, acc[r + 8u]);
                acc[r + 12u] = fma(vec4(a_hi[r]), b_hi, acc[r + 12u]);
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let lo = row0 + local.y * 4u + r;
        let hi = lo + 64u;
        let j = quad0 + local.x;
        store4(bi, lo, j, acc[r]);
        store4(bi, lo, j + 16u, acc[r + 4u]);
        store4(bi, hi, j, acc[r + 8u]);
        store4(bi, hi, j + 16u, acc[r + 12u]);
    }
}

// Row block (CPU style, for lavapipe, where every storage or workgroup-memory load becomes a
// per-lane scalar loop and barriers are expensive): no workgroup memory, no barriers. A 1-D
// workgroup of RB_WG invocations shares one block of 16 rows of A (picked by the workgroup
// id alone, so it stays in cache); each invocation owns one column quad and accumulates
// 16 rows x 4 columns in vec4 registers, so each k-quad costs 4 loads of B and 16 of A for
// 256 FMAs. Needs m_pad a multiple of 16 and n_pad of 32. Consecutive workgroups walk down
// the row blocks of one column panel, so that panel of B stays in cache.
struct RowTile {
    bi: u32,
    row0: u32,
    // This invocation's column quad, and the one it reads (clamped inside the padding, so
    // that no invocation leaves the loop early: the subgroup kernel needs all lanes).
    quad: u32,
    a0: u32,
    b0: u32,
}

// Workgroups: [batch][column groups of RB_WG quads][row blocks].
fn row_groups() -> u32 {
    return (p.n_pad / 4u + RB_WG - 1u) / RB_WG;
}

fn row_tile(t: u32, lid: u32) -> RowTile {
    let blocks = p.m_pad / PACK_ROWS;
    let quads = p.n_pad / 4u;
    let groups = row_groups();
    let bi = t / (blocks * groups);
    let block = t % blocks;
    let quad = (t / blocks) % groups * RB_WG + lid;
    let row0 = block * PACK_ROWS;
    let b0 = bp_batch(bi) + bp_index(0u, min(quad, quads - 1u));
    return RowTile(bi, row0, quad, ap_batch(bi) + ap_index(row0, 0u), b0);
}

// The four vec4 of B at k-quad q: B[4q + x, this invocation's 4 columns].
fn row_b(t: RowTile, q: u32) -> array<vec4<f32>, 4> {
    let at = t.b0 + 4u * q * PANEL_QUADS;
    return array(bp[at], bp[at + PANEL_QUADS], bp[at + 2u * PANEL_QUADS], bp[at + 3u * PANEL_QUADS]);
}

// One row of the block over one k-quad: acc += A[row, 4q .. 4q + 4] @ B[4q .. 4q + 4, quad].
fn row_fma(acc: vec4<f32>, a4: vec4<f32>, b4: array<vec4<f32>, 4>) -> vec4<f32> {
    return fma(vec4(a4.w), b4[3], fma(vec4(a4.z), b4[2], fma(vec4(a4.y), b4[1], fma(vec4(a4.x), b4[0], acc))));
}

fn row_store(t: RowTile, acc: array<vec4<f32>, 16>) {
    for (var r = 0u; r < PACK_ROWS; r++) {
        store4(t.bi, t.row0 + r, t.quad, acc[r]);
    }
}

@compute @workgroup_size(RB_WG)
fn rowblock(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    // The grid may hold a few workgroups too many; they leave as a whole (uniformly).
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.batch * (p.m_pad / PACK_ROWS) * row_groups()) { return; }
    let t = row_tile(wg, lid);
    var acc: array<vec4<f32>, 16>;
    for (var q = 0u; q < p.k_pad / 4u; q++) {
        let b4 = row_b(t, q);
        for (var r = 0u; r < PACK_ROWS; r++) {
            acc[r] = row_fma(acc[r], ap[t.a0 + q * PACK_ROWS + r], b4);
        }
    }
    row_store(t, acc);
}

// SUBGROUP KERNELS (need Features::SUBGROUP; compiled only where the adapter has it)

// The vec4 `v` of each of the first 8 lanes of the subgroup.
fn broadcast8(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
                 subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                 subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// Row block with A shared through the subgroup: every lane of a subgroup needs the same 16
// vec4 of A per k-quad, so lane x loads rows x and x + 8 and broadcasts them: 2 loads of A
// per lane instead of 16. Needs subgroups of at least 8 lanes (checked by the Rust side);
// wider subgroups just repeat the first 8 lanes' loads.
@compute @workgroup_size(RB_WG)
fn rowblock_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane: u32) {
    // The grid may hold a few workgroups too many; they leave as a whole (uniformly).
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.batch * (p.m_pad / PACK_ROWS) * row_groups()) { return; }
    let t = row_tile(wg, lid);
    var acc: array<vec4<f32>, 16>;
    for (var q = 0u; q < p.k_pad / 4u; q++) {
        let b4 = row_b(t, q);
        let at = t.a0 + q * PACK_ROWS + lane % 8u;
        let lo = broadcast8(ap[at]);
        let hi = broadcast8(ap[at + 8u]);
        for (var r = 0u; r < 8u; r++) {
            acc[r] = row_fma(acc[r], lo[r], b4);
            acc[r + 8u] = row_fma(acc[r + 8u], hi[r], b4);
        }
    }
    row_store(t, acc);
}
