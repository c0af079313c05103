// The CPU-shaped fused attention kernels without their entry points (needs common.wgsl; the
// kernels are compiled with one of the two row fetches, rows_fetch_portable.wgsl (`Rows`:
// `forward_rows`, `backward_dq_rows`, `backward_dkdv_rows`) or rows_fetch_subgroup.wgsl
// (`RowsSubgroup`: the same names ending in `_subgroup`), which define the fetch functions
// and the entry points).
//
// For CPU adapters (lavapipe), where a workgroup runs as a loop over SIMD lanes, every
// storage or workgroup-memory load is a per-lane scalar loop, barriers are coroutine switches
// and FMAs are cheap (see the row-block matmul in matmul/rowblock.wgsl). No workgroup memory, no
// barriers; each invocation owns 8 rows of one (b, h) (queries in forward and dQ, keys in
// dK/dV) and walks the other side 8 rows at a time. An 8 x 8 block of scores lives in
// registers as four mat4x4 (`Block8`), built quad by quad of D as transpose(X) * Y: per
// quad 16 vec4 loads feed 256 FMAs, where the tiled kernels (tiled.wgsl) do one FMA per loaded
// float. The products with the block (P V, dS K, P^T dO, dS^T Q) are mat4x4 products too,
// accumulated into a private [2 * DV] array of mat4x4 (column r: row r's quad). Blocks past
// the masks' prefix (see Masks in common.wgsl) are skipped; inside a block a masked score is NEG_BIG
// and its probability exactly 0. Invocations of a workgroup are consecutive row blocks of one
// (b, h), so they read the same K/V (or Q/dO) rows while those are in cache.

// Rows 8 x columns 8 of a product, as four 4x4 blocks: `xy` holds row group x (rows 4x ..
// 4x + 3) against column group y (columns 4y .. 4y + 3), one matrix column per column.
struct Block8 {
    aa: mat4x4<f32>, ab: mat4x4<f32>, ba: mat4x4<f32>, bb: mat4x4<f32>,
}

// Global row indices of rows r0 .. r0 + 3 of a head whose first row is `base`, clamped to its
// last row `n - 1` so that loads past the end stay inside the buffer (the masks zero them).
fn rows4(base: u32, r0: u32, n: u32) -> vec4<u32> {
    return base + min(vec4(r0) + vec4(0u, 1u, 2u, 3u), vec4(n - 1u));
}

// Quad c of 4 rows (global row indices `r`) as the columns of a matrix.
fn q_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    let a = vec4(query_row_at(r.x), query_row_at(r.y), query_row_at(r.z), query_row_at(r.w)) * DV + c;
    return mat4x4(q[a.x], q[a.y], q[a.z], q[a.w]);
}
fn k_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    let a = vec4(key_row_at(r.x), key_row_at(r.y), key_row_at(r.z), key_row_at(r.w)) * DV + c;
    return mat4x4(k[a.x], k[a.y], k[a.z], k[a.w]);
}
fn v_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    let a = vec4(key_row_at(r.x), key_row_at(r.y), key_row_at(r.z), key_row_at(r.w)) * DV + c;
    return mat4x4(v[a.x], v[a.y], v[a.z], v[a.w]);
}
fn do_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    let a = vec4(query_row_at(r.x), query_row_at(r.y), query_row_at(r.z), query_row_at(r.w)) * DV + c;
    return mat4x4(d_o[a.x], d_o[a.y], d_o[a.z], d_o[a.w]);
}

// Scaled scores of 4 queries (rows, key limits `limits`) x keys k0 .. k0 + 3 (columns);
// NEG_BIG where masked.
fn query_scores(s: mat4x4<f32>, k0: u32, limits: vec4<u32>) -> mat4x4<f32> {
    let hide = vec4(NEG_BIG);
    return mat4x4(select(hide, s[0] * p.scale, vec4(k0) < limits),
                  select(hide, s[1] * p.scale, vec4(k0 + 1u) < limits),
                  select(hide, s[2] * p.scale, vec4(k0 + 2u) < limits),
                  select(hide, s[3] * p.scale, vec4(k0 + 3u) < limits));
}

// Scaled scores of 4 keys (rows, indices `keys`) x 4 queries (columns, key limits `limits`).
fn key_scores(s: mat4x4<f32>, keys: vec4<u32>, limits: vec4<u32>) -> mat4x4<f32> {
    let hide = vec4(NEG_BIG);
    return mat4x4(select(hide, s[0] * p.scale, keys < vec4(limits.x)),
                  select(hide, s[1] * p.scale, keys < vec4(limits.y)),
                  select(hide, s[2] * p.scale, keys < vec4(limits.z)),
                  select(hide, s[3] * p.scale, keys < vec4(limits.w)));
}

// exp(s - m) with m per row (4 components); exactly 0 where s is masked.
fn exp_rows(s: mat4x4<f32>, m: vec4<f32>) -> mat4x4<f32> {
    let hide = vec4(NEG_BIG);
    return mat4x4(select(vec4(0.0), exp(s[0] - m), s[0] > hide),
                  select(vec4(0.0), exp(s[1] - m), s[1] > hide),
                  select(vec4(0.0), exp(s[2] - m), s[2] > hide),
                  select(vec4(0.0), exp(s[3] - m), s[3] > hide));
}

// exp(s - m) with m per column; exactly 0 where s is masked.
fn exp_cols(s: mat4x4<f32>, m: vec4<f32>) -> mat4x4<f32> {
    let hide = vec4(NEG_BIG);
    return mat4x4(select(vec4(0.0), exp(s[0] - m.x), s[0] > hide),
                  select(vec4(0.0), exp(s[1] - m.y), s[1] > hide),
                  select(vec4(0.0), exp(s[2] - m.z), s[2] > hide),
                  select(vec4(0.0), exp(s[3] - m.w), s[3] > hide));
}

// dS = P (dP - delta), delta per row / per column.
fn ds_rows(pr: mat4x4<f32>, dp: mat4x4<f32>, delta4: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(pr[0] * (dp[0] - delta4), pr[1] * (dp[1] - delta4),
                  pr[2] * (dp[2] - delta4), pr[3] * (dp[3] - delta4));
}
fn ds_cols(pr: mat4x4<f32>, dp: mat4x4<f32>, delta4: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(pr[0] * (dp[0] - delta4.x), pr[1] * (dp[1] - delta4.y),
                  pr[2] * (dp[2] - delta4.z), pr[3] * (dp[3] - delta4.w));
}

fn max_cols(s: mat4x4<f32>) -> vec4<f32> {
    return max(max(s[0], s[1]), max(s[2], s[3]));
}
fn sum_cols(s: mat4x4<f32>) -> vec4<f32> {
    return s[0] + s[1] + s[2] + s[3];
}
// Column r multiplied by f[r].
fn scale_cols(s: mat4x4<f32>, f: vec4<f32>) -> mat4x4<f32> {
    return mat4x4(s[0] * f.x, s[1] * f.y, s[2] * f.z, s[3] * f.w);
}

// key_limit of queries i0 .. i0 + 3 (0 past the last query).
fn key_limits(b: u32, i0: u32) -> vec4<u32> {
    let i = vec4(i0) + vec4(0u, 1u, 2u, 3u);
    return select(vec4(0u), vec4(key_limit(b, min(i.x, p.tq - 1u)), key_limit(b, min(i.y, p.tq - 1u)),
                                 key_limit(b, min(i.z, p.tq - 1u)), key_limit(b, min(i.w, p.tq - 1u))),
                  i < vec4(p.tq));
}

// Keys that some query of a block (limits lim_a, lim_b) sees: its last real query's limit.
fn most_keys(lim_a: vec4<u32>, lim_b: vec4<u32>) -> u32 {
    let m = max(lim_a, lim_b);
    return max(max(m.x, m.y), max(m.z, m.w));
}

// One key block of the online softmax for 4 query rows (running max m, denominator l): the
// rows' raw scores against the block's keys j0 .. j0 + 3 (`s0`) and j0 + 4 .. j0 + 7 (`s1`),
// masked with the rows' key limits, give the new m and l; `corr` rescales what was
// accumulated before (0 on a row's first visible block, 1 before it, as in `forward`), and
// pt0 / pt1 hold the probabilities transposed (column r: row r's), ready for P V.
struct SoftmaxStep {
    m: vec4<f32>,
    l: vec4<f32>,
    corr: vec4<f32>,
    pt0: mat4x4<f32>,
    pt1: mat4x4<f32>,
}

fn softmax_step(m: vec4<f32>, l: vec4<f32>, s0: mat4x4<f32>, s1: mat4x4<f32>, j0: u32,
                lim: vec4<u32>) -> SoftmaxStep {
    let sc0 = query_scores(s0, j0, lim);
    let sc1 = query_scores(s1, j0 + 4u, lim);
    let mn = max(m, max(max_cols(sc0), max_cols(sc1)));
    let corr = exp(m - mn);
    let p0 = exp_rows(sc0, mn);
    let p1 = exp_rows(sc1, mn);
    return SoftmaxStep(mn, l * corr + sum_cols(p0) + sum_cols(p1), corr, transpose(p0), transpose(p1));
}

// What turns a finished forward block's accumulators into outputs, per row (rows 0..3 in
// `_a`, 4..7 in `_b`): the factor 1 / l (0 for a row that sees no key) and lse = m + log(l).
struct RowsOut {
    inv_a: vec4<f32>,
    inv_b: vec4<f32>,
    lse_a: vec4<f32>,
    lse_b: vec4<f32>,
}

fn finish_rows(m_a: vec4<f32>, m_b: vec4<f32>, l_a: vec4<f32>, l_b: vec4<f32>) -> RowsOut {
    let zero = vec4(0.0);
    return RowsOut(select(zero, 1.0 / l_a, l_a > zero), select(zero, 1.0 / l_b, l_b > zero),
                   select(zero, m_a + log(l_a), l_a > zero), select(zero, m_b + log(l_b), l_b > zero));
}

// dS of a query block against a key block (query rows, as in dQ), transposed for dS K.
fn ds_block_dq(s: Block8, dp: Block8, j0: u32, lim_a: vec4<u32>, lim_b: vec4<u32>,
               lse_a: vec4<f32>, lse_b: vec4<f32>, delta_a: vec4<f32>, delta_b: vec4<f32>) -> Block8 {
    return Block8(
        transpose(ds_rows(exp_rows(query_scores(s.aa, j0, lim_a), lse_a), dp.aa, delta_a)),
        transpose(ds_rows(exp_rows(query_scores(s.ab, j0 + 4u, lim_a), lse_a), dp.ab, delta_a)),
        transpose(ds_rows(exp_rows(query_scores(s.ba, j0, lim_b), lse_b), dp.ba, delta_b)),
        transpose(ds_rows(exp_rows(query_scores(s.bb, j0 + 4u, lim_b), lse_b), dp.bb, delta_b)));
}

// P^T and dS^T of a key block (rows: keys `keys_a`, `keys_b`) against a query block
// (columns, key limits `lim_a` / `lim_b`), for P^T dO and dS^T Q.
struct KeyGrads {
    pt: Block8,
    dst: Block8,
}

fn key_block_grads(s: Block8, dp: Block8, keys_a: vec4<u32>, keys_b: vec4<u32>,
                   lim_a: vec4<u32>, lim_b: vec4<u32>, lse_a: vec4<f32>, lse_b: vec4<f32>,
                   delta_a: vec4<f32>, delta_b: vec4<f32>) -> KeyGrads {
    let p_aa = exp_cols(key_scores(s.aa, keys_a, lim_a), lse_a);
    let p_ab = exp_cols(key_scores(s.ab, keys_a, lim_b), lse_b);
    let p_ba = exp_cols(key_scores(s.ba, keys_b, lim_a), lse_a);
    let p_bb = exp_cols(key_scores(s.bb, keys_b, lim_b), lse_b);
    return KeyGrads(
        Block8(transpose(p_aa), transpose(p_ab), transpose(p_ba), transpose(p_bb)),
        Block8(transpose(ds_cols(p_aa, dp.aa, delta_a)), transpose(ds_cols(p_ab, dp.ab, delta_b)),
               transpose(ds_cols(p_ba, dp.ba, delta_a)), transpose(ds_cols(p_bb, dp.bb, delta_b))));
}

// Rows 0..3 and 4..7 of a block, as the columns of two matrices (or, transposed, the rows).
struct Quads8 {
    a: mat4x4<f32>,
    b: mat4x4<f32>,
}

// What a key-side invocation needs of a block of 8 queries: their key limits, lse and delta.
struct QueryStats {
    lim_a: vec4<u32>,
    lim_b: vec4<u32>,
    lse_a: vec4<f32>,
    lse_b: vec4<f32>,
    delta_a: vec4<f32>,
    delta_b: vec4<f32>,
}

// The three row-block kernels, without their entry points. An invocation owns 8 rows (global
// row indices `ra`, `rb`, 4 each) and walks the other side 8 rows at a time. The fetch
// functions are defined by whichever row fetch file the kernel is compiled with:
// - own_*: quad c of the owned rows, transposed (rows as matrix rows);
// - fetch_*: quad c of the 8 streamed rows `sa`, `sb` (as matrix columns); `mine` is the
//   streamed row this invocation loads when the rows are shared through the subgroup;
// - keep_own_*: called once, before the loop (caches the owned rows where that pays);
// - walk_limit / walk_start: the streamed range, made uniform over a subgroup if needed.

// Forward: invocation owns queries i0 .. i0 + 7 of head bh; online softmax over key blocks of 8.
fn forward_rows_body(bh: u32, i0: u32, lane: u32) {
    if (bh >= p.batch * p.heads) { return; }
    let b = bh / p.heads;
    let qa = rows4(bh * p.tq, i0, p.tq);
    let qb = rows4(bh * p.tq, i0 + 4u, p.tq);
    let lim_a = key_limits(b, i0);
    let lim_b = key_limits(b, i0 + 4u);
    let n_keys = walk_limit(most_keys(lim_a, lim_b));
    keep_own_q(qa, qb);

    var acc: array<mat4x4<f32>, 2u * DV>;
    var m_a = vec4(NEG_BIG);
    var m_b = vec4(NEG_BIG);
    var l_a = vec4(0.0);
    var l_b = vec4(0.0);
    for (var j0 = 0u; j0 < n_keys; j0 += 8u) {
        let ka = rows4(bh * p.tk, j0, p.tk);
        let kb = rows4(bh * p.tk, j0 + 4u, p.tk);
        let mine = bh * p.tk + min(j0 + lane, p.tk - 1u);
        // Zeroed explicitly each block (SwiftShader, under Chromium, kept the last block's).
        var s = Block8();
        for (var c = 0u; c < DV; c++) {
            let kq = fetch_k(ka, kb, mine, c);
            let qt = own_q(qa, qb, c);
            s = Block8(s.aa + qt.a * kq.a, s.ab + qt.a * kq.b, s.ba + qt.b * kq.a, s.bb + qt.b * kq.b);
        }
        let ha = softmax_step(m_a, l_a, s.aa, s.ab, j0, lim_a);
        let hb = softmax_step(m_b, l_b, s.ba, s.bb, j0, lim_b);
        m_a = ha.m;
        l_a = ha.l;
        m_b = hb.m;
        l_b = hb.l;
        // acc column r += sum over the block's keys of P[r, key] v_key.
        for (var c = 0u; c < DV; c++) {
            let vq = fetch_v(ka, kb, mine, c);
            acc[2u * c] = scale_cols(acc[2u * c], ha.corr) + vq.a * ha.pt0 + vq.b * ha.pt1;
            acc[2u * c + 1u] = scale_cols(acc[2u * c + 1u], hb.corr) + vq.a * hb.pt0 + vq.b * hb.pt1;
        }
    }
    let fin = finish_rows(m_a, m_b, l_a, l_b);
    for (var r = 0u; r < 8u; r++) {
        if (i0 + r >= p.tq) { break; }
        let g = r / 4u;
        let row = bh * p.tq + i0 + r;
        let inv = select(fin.inv_a, fin.inv_b, g == 1u)[r % 4u];
        let at = query_row_at(row) * DV;
        for (var c = 0u; c < DV; c++) {
            o_out[at + c] = acc[2u * c + g][r % 4u] * inv;
        }
        lse_out[row] = select(fin.lse_a, fin.lse_b, g == 1u)[r % 4u];
    }
}

// dQ: invocation owns queries i0 .. i0 + 7, like the forward; per key block it recomputes
// S = Q K^T and dP = dO V^T, forms dS, and accumulates dS K.
fn backward_dq_rows_body(bh: u32, i0: u32, lane: u32) {
    if (bh >= p.batch * p.heads) { return; }
    let b = bh / p.heads;
    let qa = rows4(bh * p.tq, i0, p.tq);
    let qb = rows4(bh * p.tq, i0 + 4u, p.tq);
    let lim_a = key_limits(b, i0);
    let lim_b = key_limits(b, i0 + 4u);
    let n_keys = walk_limit(most_keys(lim_a, lim_b));
    let lse_a = vec4(lse(qa.x), lse(qa.y), lse(qa.z), lse(qa.w));
    let lse_b = vec4(lse(qb.x), lse(qb.y), lse(qb.z), lse(qb.w));
    let delta_a = vec4(delta(qa.x), delta(qa.y), delta(qa.z), delta(qa.w));
    let delta_b = vec4(delta(qb.x), delta(qb.y), delta(qb.z), delta(qb.w));
    keep_own_q_do(qa, qb);

    var acc: array<mat4x4<f32>, 2u * DV>;
    for (var j0 = 0u; j0 < n_keys; j0 += 8u) {
        let ka = rows4(bh * p.tk, j0, p.tk);
        let kb = rows4(bh * p.tk, j0 + 4u, p.tk);
        let mine = bh * p.tk + min(j0 + lane, p.tk - 1u);
        // Zeroed explicitly each block (SwiftShader, under Chromium, kept the last block's).
        var s = Block8();
        var dp = Block8();
        for (var c = 0u; c < DV; c++) {
            let kq = fetch_k(ka, kb, mine, c);
            let vq = fetch_v(ka, kb, mine, c);
            let qt = own_q(qa, qb, c);
            let dt = own_do(qa, qb, c);
            s = Block8(s.aa + qt.a * kq.a, s.ab + qt.a * kq.b, s.ba + qt.b * kq.a, s.bb + qt.b * kq.b);
            dp = Block8(dp.aa + dt.a * vq.a, dp.ab + dt.a * vq.b, dp.ba + dt.b * vq.a, dp.bb + dt.b * vq.b);
        }
        let t = ds_block_dq(s, dp, j0, lim_a, lim_b, lse_a, lse_b, delta_a, delta_b);
        for (var c = 0u; c < DV; c++) {
            let kq = fetch_k(ka, kb, mine, c);
            acc[2u * c] += kq.a * t.aa + kq.b * t.ab;
            acc[2u * c + 1u] += kq.a * t.ba + kq.b * t.bb;
        }
    }
    for (var r = 0u; r < 8u; r++) {
        if (i0 + r >= p.tq) { break; }
        let at = query_row_at(bh * p.tq + i0 + r) * DV;
        for (var c = 0u; c < DV; c++) {
            dq_out[at + c] = acc[2u * c + r / 4u][r % 4u] * p.scale;
        }
    }
}

// dK and dV: invocation owns keys j0 .. j0 + 7; per block of 8 queries from the first that
// sees key j0 it recomputes S^T = K Q^T and dP^T = V dO^T, and accumulates P^T dO and dS^T Q.
fn backward_dkdv_rows_body(bh: u32, j0: u32, lane: u32) {
    if (bh >= p.batch * p.heads) { return; }
    let b = bh / p.heads;
    let ka = rows4(bh * p.tk, j0, p.tk);
    let kb = rows4(bh * p.tk, j0 + 4u, p.tk);
    let keys_a = vec4(j0) + vec4(0u, 1u, 2u, 3u);
    let keys_b = keys_a + 4u;
    keep_own_k_v(ka, kb);

    var acc_dk: array<mat4x4<f32>, 2u * DV>;
    var acc_dv: array<mat4x4<f32>, 2u * DV>;
    // first_query grows with the key, so the block's first key is seen first.
    for (var i0 = walk_start(first_query(b, j0)) / 8u * 8u; i0 < p.tq; i0 += 8u) {
        let qa = rows4(bh * p.tq, i0, p.tq);
        let qb = rows4(bh * p.tq, i0 + 4u, p.tq);
        let mine = bh * p.tq + min(i0 + lane, p.tq - 1u);
        let qs = fetch_query_stats(b, i0, qa, qb, lane);
        // Zeroed explicitly each block (SwiftShader, under Chromium, kept the last block's).
        var s = Block8();
        var dp = Block8();
        for (var c = 0u; c < DV; c++) {
            let qq = fetch_q(qa, qb, mine, c);
            let dq = fetch_do(qa, qb, mine, c);
            let kt = own_k(ka, kb, c);
            let vt = own_v(ka, kb, c);
            s = Block8(s.aa + kt.a * qq.a, s.ab + kt.a * qq.b, s.ba + kt.b * qq.a, s.bb + kt.b * qq.b);
            dp = Block8(dp.aa + vt.a * dq.a, dp.ab + vt.a * dq.b, dp.ba + vt.b * dq.a, dp.bb + vt.b * dq.b);
        }
        let t = key_block_grads(s, dp, keys_a, keys_b, qs.lim_a, qs.lim_b, qs.lse_a, qs.lse_b,
                                qs.delta_a, qs.delta_b);
        // Two loops rather than one: each keeps 4 matrices live instead of 8 (one loop
        // spilled on lavapipe and ran the whole backward ~20% slower).
        for (var c = 0u; c < DV; c++) {
            let dq = fetch_do(qa, qb, mine, c);
            acc_dv[2u * c] += dq.a * t.pt.aa + dq.b * t.pt.ab;
            acc_dv[2u * c + 1u] += dq.a * t.pt.ba + dq.b * t.pt.bb;
        }
        for (var c = 0u; c < DV; c++) {
            let qq = fetch_q(qa, qb, mine, c);
            acc_dk[2u * c] += qq.a * t.dst.aa + qq.b * t.dst.ab;
            acc_dk[2u * c + 1u] += qq.a * t.dst.ba + qq.b * t.dst.bb;
        }
    }
    for (var r = 0u; r < 8u; r++) {
        if (j0 + r >= p.tk) { break; }
        let at = key_row_at(bh * p.tk + j0 + r) * DV;
        for (var c = 0u; c < DV; c++) {
            dk_out[at + c] = acc_dk[2u * c + r / 4u][r % 4u] * p.scale;
            dv_out[at + c] = acc_dv[2u * c + r / 4u][r % 4u];
        }
    }
}
