// The row-block matmul without its entry point (needs common.wgsl and packed.wgsl); the kernel
// is compiled with one of the two row fetches, rowblock_fetch_portable.wgsl (`rowblock`) or
// rowblock_fetch_subgroup.wgsl (`rowblock_subgroup`), which define `a_rows` and the entry.
//
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
        let t = transpose(mat4x4(bp_load(at), bp_load(at + step), bp_load(at + 2u * step), bp_load(at + 3u * step)));
        return Quad4(t[0], t[1], t[2], t[3]);
    }
    let at = b0 + 4u * q * step;
    return Quad4(bp_load(at), bp_load(at + step), bp_load(at + 2u * step), bp_load(at + 3u * step));
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
// defined by the row fetch file that the kernel is compiled with.
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
