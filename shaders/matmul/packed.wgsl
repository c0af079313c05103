// The packed operands of the register-blocked and row-block kernels (needs common.wgsl).
// `pack_a` / `pack_b` (pack.wgsl) copy A and B into zero-padded panels (O(n^2) work next to
// the O(n^3) product), so the hot loops need no transpose logic, no bounds checks and load
// whole vec4s:
//     packed A: [batch_a][m_pad / 32][k_pad / 4][32] vec4, element = A[row, 4q .. 4q + 4]
//               (32-row blocks; each k-quad of a block is 32 consecutive vec4)
//     packed B: [batch_b][n_pad / 32][k_pad][8] vec4, element = B[kk, 4j .. 4j + 4]
//               (32-column panels; each k of a panel is 8 consecutive vec4)
// batch_a is 1 when A is shared (a_stride = 0), else batch; the same for B.
// Row-major A whose rows are whole vec4 is read in place instead (a_direct).

// Rows per block of packed A, columns per panel of packed B.
const PACK_ROWS: u32 = 32u;
const PANEL_QUADS: u32 = 8u;

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
        if (col < p.n) { c[base + col] = epilogue(base + col, col, v[x]); }
    }
}
