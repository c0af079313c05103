// The packing kernels (needs common.wgsl and packed.wgsl). pack_a / pack_b: packed A /
// packed B (layouts in packed.wgsl) from A / B in any layout, zero-padded.
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
    packed[e] = Packed(rows[0]);
    packed[e + 1u] = Packed(rows[1]);
    packed[e + 2u] = Packed(rows[2]);
    packed[e + 3u] = Packed(rows[3]);
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
    packed[e] = Packed(ks[0]);
    packed[e + PANEL_QUADS] = Packed(ks[1]);
    packed[e + 2u * PANEL_QUADS] = Packed(ks[2]);
    packed[e + 3u * PANEL_QUADS] = Packed(ks[3]);
}
