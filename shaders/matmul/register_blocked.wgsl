// The matmul kernel `register_blocked` (needs common.wgsl and packed.wgsl).
//
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
//
// Operands with no K padding whose loads are whole vec4 are read where they are stored
// instead of from packed panels (no packing pass; gemm.rs sets a_direct / b_direct and
// compiles the kernel with A_STORED_T / B_STORED_T). Each invocation loads one vec4 of A and
// one of B per step, in one of two shapes:
// - four k of one row of op(A) (row lid % 128, k-quad lid / 128): packed A, or row-major A;
//   scattered into stage_a. A stored [K, M] (A_STORED_T) instead loads four rows of one k
//   (k lid / 32, row quad lid % 32), which is one vec4 of stage_a as it is.
// - four columns of one k of op(B) (k lid / 32, column quad lid % 32): packed B, or
//   row-major B (b_direct). B stored [N, K] (B_STORED_T) instead loads four k of one column
//   (column lid % 128, k-quad lid / 128), scattered into stage_b.
// Loads past the last row or column read whatever lies there; those outputs are not stored.
const RB_TILE: u32 = 128u;
const RB_K: u32 = 8u;
var<workgroup> stage_a: array<array<vec4<f32>, 32>, RB_K>;
var<workgroup> stage_b: array<array<vec4<f32>, 32>, RB_K>;

// This invocation's vec4 of A for the step starting at k0, in the tile from row0.
fn load_a(bi: u32, row0: u32, k0: u32, lid: u32) -> vec4<f32> {
    if (A_STORED_T != 0u) {
        return ap_load(bi * p.a_stride / 4u + (k0 + lid / 32u) * (p.m / 4u) + row0 / 4u + lid % 32u);
    }
    return ap_load(a_at_quad(bi, row0 + lid % RB_TILE, k0 / 4u + lid / RB_TILE));
}

// This invocation's vec4 of B for the step starting at k0, in the tile from column quad0 * 4.
fn load_b(bi: u32, quad0: u32, k0: u32, lid: u32) -> vec4<f32> {
    if (B_STORED_T != 0u) {
        let col = quad0 * 4u + lid % RB_TILE;
        return bp_load(bi * p.b_stride / 4u + col * (p.k / 4u) + k0 / 4u + lid / RB_TILE);
    }
    if (p.b_direct != 0u) {
        return bp_load(bi * p.b_stride / 4u + (k0 + lid / 32u) * (p.n / 4u) + quad0 + lid % 32u);
    }
    return bp_load(bp_batch(bi) + bp_index(k0 + lid / 32u, quad0 + lid % 32u));
}

// Four k of one row (or column), k-quad lid / 128, row lid % 128, into a stage laid out
// [k][row / 4][row % 4] (four rows of one k side by side as a vec4).
fn scatter_a(v: vec4<f32>, lid: u32) {
    let k = lid / RB_TILE * 4u;
    let r = lid % RB_TILE / 4u;
    let x = lid % 4u;
    stage_a[k][r][x] = v.x;
    stage_a[k + 1u][r][x] = v.y;
    stage_a[k + 2u][r][x] = v.z;
    stage_a[k + 3u][r][x] = v.w;
}

fn scatter_b(v: vec4<f32>, lid: u32) {
    let k = lid / RB_TILE * 4u;
    let c = lid % RB_TILE / 4u;
    let x = lid % 4u;
    stage_b[k][c][x] = v.x;
    stage_b[k + 1u][c][x] = v.y;
    stage_b[k + 2u][c][x] = v.z;
    stage_b[k + 3u][c][x] = v.w;
}

fn put_a(v: vec4<f32>, lid: u32) {
    if (A_STORED_T != 0u) {
        stage_a[lid / 32u][lid % 32u] = v;
    } else {
        scatter_a(v, lid);
    }
}

fn put_b(v: vec4<f32>, lid: u32) {
    if (B_STORED_T != 0u) {
        scatter_b(v, lid);
    } else {
        stage_b[lid / 32u][lid % 32u] = v;
    }
}

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
    let k_begin = slice * p.k_slice;
    let k_end = min(p.k_pad, k_begin + p.k_slice);
    var c_ll = mat4x4<f32>();
    var c_lh = mat4x4<f32>();
    var c_hl = mat4x4<f32>();
    var c_hh = mat4x4<f32>();
    var va = load_a(bi, row0, k_begin, lid);
    var vb = load_b(bi, quad0, k_begin, lid);
    for (var k0 = k_begin; k0 < k_end; k0 += RB_K) {
        put_a(va, lid);
        put_b(vb, lid);
        workgroupBarrier();
        let k1 = k0 + RB_K;
        if (k1 < k_end) {
            va = load_a(bi, row0, k1, lid);
            vb = load_b(bi, quad0, k1, lid);
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
