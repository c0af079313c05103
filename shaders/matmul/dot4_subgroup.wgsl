// The matmul kernel `dot4_subgroup` (needs common.wgsl and Features::SUBGROUP): dot4 with the
// rows of A shared through the subgroup. A workgroup takes one block of up to DOT4_ROWS rows of
// A (of one batch) and WG consecutive columns; every lane of a subgroup works on the same rows
// at the same time, so lane x loads k-quad q + x % 8 of a row and the 8 k-quads are broadcast:
// per k-quad one load of B and an eighth of a load of A instead of two loads. The rows go two
// at a time (then the last one alone), each k-quad of B loaded once for both. On lavapipe every
// load is a per-lane loop, so this nearly halves the work of a one-token product, and a
// product of a few rows (beams, windows decoded together) loads B half as often again.

// Row i0's outputs, first A vector a0, first B vector b0: the four partial sums.
fn dot4_row(a0: u32, b0: u32, quads: u32, lane: u32) -> vec4<f32> {
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
    return acc0 + acc1;
}

// `dot4_row` of two rows (first A vectors a0 and a1) against the same column.
fn dot4_two_rows(a0: u32, a1: u32, b0: u32, quads: u32, lane: u32) -> mat2x4<f32> {
    let whole = quads / 8u * 8u;
    var x0 = vec4(0.0);
    var y0 = vec4(0.0);
    var x1 = vec4(0.0);
    var y1 = vec4(0.0);
    for (var q = 0u; q < whole; q += 8u) {
        let av0 = a4[a0 + q + lane % 8u];
        let av1 = a4[a1 + q + lane % 8u];
        let b = b0 + q;
        var bv = b4[b];
        x0 = fma(subgroupBroadcast(av0, 0u), bv, x0);
        x1 = fma(subgroupBroadcast(av1, 0u), bv, x1);
        bv = b4[b + 1u];
        y0 = fma(subgroupBroadcast(av0, 1u), bv, y0);
        y1 = fma(subgroupBroadcast(av1, 1u), bv, y1);
        bv = b4[b + 2u];
        x0 = fma(subgroupBroadcast(av0, 2u), bv, x0);
        x1 = fma(subgroupBroadcast(av1, 2u), bv, x1);
        bv = b4[b + 3u];
        y0 = fma(subgroupBroadcast(av0, 3u), bv, y0);
        y1 = fma(subgroupBroadcast(av1, 3u), bv, y1);
        bv = b4[b + 4u];
        x0 = fma(subgroupBroadcast(av0, 4u), bv, x0);
        x1 = fma(subgroupBroadcast(av1, 4u), bv, x1);
        bv = b4[b + 5u];
        y0 = fma(subgroupBroadcast(av0, 5u), bv, y0);
        y1 = fma(subgroupBroadcast(av1, 5u), bv, y1);
        bv = b4[b + 6u];
        x0 = fma(subgroupBroadcast(av0, 6u), bv, x0);
        x1 = fma(subgroupBroadcast(av1, 6u), bv, x1);
        bv = b4[b + 7u];
        y0 = fma(subgroupBroadcast(av0, 7u), bv, y0);
        y1 = fma(subgroupBroadcast(av1, 7u), bv, y1);
    }
    for (var q = whole; q < quads; q++) {
        let bv = b4[b0 + q];
        x0 = fma(a4[a0 + q], bv, x0);
        x1 = fma(a4[a1 + q], bv, x1);
    }
    return mat2x4(x0 + y0, x1 + y1);
}

fn quad_total(acc: vec4<f32>) -> f32 {
    return (acc.x + acc.y) + (acc.z + acc.w);
}

// Workgroups: [batch][row blocks][column chunks of WG], linear over a 2-D grid.
@compute @workgroup_size(WG)
fn dot4_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let chunks = (p.n + WG - 1u) / WG;
    let blocks = (p.m + DOT4_ROWS - 1u) / DOT4_ROWS;
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.batch * blocks * chunks) { return; }
    let bi = group / (blocks * chunks);
    let first_row = group / chunks % blocks * DOT4_ROWS;
    let end_row = min(first_row + DOT4_ROWS, p.m);
    let col = group % chunks * WG + lid;
    // Lanes past the end compute the last column again instead of returning: the broadcasts
    // need every lane of the subgroup.
    let j = min(col, p.n - 1u);
    let quads = p.k / 4u;
    let b0 = (bi * p.b_stride + j * p.k) / 4u;
    var i = first_row;
    for (; i + 1u < end_row; i += 2u) {
        let sums = dot4_two_rows((bi * p.a_stride + i * p.k) / 4u,
                                 (bi * p.a_stride + (i + 1u) * p.k) / 4u, b0, quads, lane);
        if (col < p.n) {
            let e = (bi * p.m + i) * p.n + j;
            c[e] = epilogue(e, j, quad_total(sums[0]));
            c[e + p.n] = epilogue(e + p.n, j, quad_total(sums[1]));
        }
    }
    if (i < end_row) {
        let sums = dot4_row((bi * p.a_stride + i * p.k) / 4u, b0, quads, lane);
        if (col < p.n) {
            let e = (bi * p.m + i) * p.n + j;
            c[e] = epilogue(e, j, quad_total(sums));
        }
    }
}
