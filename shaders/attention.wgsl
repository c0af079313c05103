// Scaled dot-product attention with causal and key-length masks: the fused (FlashAttention
// style) forward and backward, and the masked softmax of the unfused variant.
// Launched by src/ops/attention.rs (`attention`, `attention_unfused`); the math is that of
// src/reference/attention.rs.
//
// Math, per (batch b, head h), with c = 1 / sqrt(D) (`p.scale`):
//   s[i, j] = c q_i . k_j       P[i, :] = softmax of s[i, :] over the keys visible to query i
//   o_i = sum_j P[i, j] v_j     lse_i = log sum_{visible j} exp(s[i, j])   (saved for backward)
// Backward, from dO and the saved lse (P is recomputed as exp(s - lse), never stored):
//   delta_i = dO_i . o_i                    dv_j = sum_i P[i, j] dO_i
//   dS[i, j] = P[i, j] (dO_i . v_j - delta_i)
//   dq_i = c sum_j dS[i, j] k_j             dk_j = c sum_i dS[i, j] q_i
//
// Masks. Key j is visible to query i iff j < key_limit(b, i), where
//   key_limit(b, i) = min(Tk, key_lens[b], causal ? i + 1 + Tk - Tq (0 if negative) : Tk).
// Key padding and the bottom-right aligned causal mask (key j masked when j > i + Tk - Tq, so
// with Tq = 1 the query sees every key) together always leave a PREFIX of the keys visible,
// and the prefix never shrinks as i grows. So a block of queries sees keys 0 .. limit of its
// last query, and a block of keys is seen from `first_query` of its first key on: tiles
// outside those ranges are never staged nor visited. Inside a tile every invocation walks the
// same rows in lockstep (a loop count uniform over the workgroup, so staged rows are read as
// broadcasts and nothing diverges) and a key a row does not see gets probability exactly 0
// (a `select`, not exp(-big)). A query whose limit is 0 sees nothing: its output, lse and
// gradients are 0.
//
// Layout: q, o, dO, dq are [B, H, Tq, D]; k, v, dk, dv are [B, H, Tk, D]; lse and delta are
// [B, H, Tq]; key_lens is [B] u32; scores, probs and their gradients (unfused path) are
// [B, H, Tq, Tk]. All row-major. Head rows are read as DV = D / 4 vec4s (D is a multiple of 4).
//
// Tiling of the fused kernels: a workgroup has BLOCK invocations and owns BLOCK rows of one
// (b, h): queries in `forward` and `backward_dq`, keys in `backward_dkdv`. Invocation t owns
// row t of the block and keeps it in registers. The other side streams through workgroup
// memory BLOCK rows at a time (K and V tiles, or Q and dO tiles); invocation t stages row t
// of each tile. BLOCK = min(64, 2048 / D), so two staged tiles take at most 16 KiB. Only a
// BLOCK x BLOCK slice of the Tq x Tk scores exists at any time, in registers; global memory
// never sees it. Each output row is written by one invocation after a loop in a fixed order:
// results are deterministic (no atomics).

struct Params {
    batch: u32,
    heads: u32,
    tq: u32,
    tk: u32,
    causal: u32,    // 1: bottom-right aligned causal mask
    has_lens: u32,  // 1: key_lens holds each batch item's valid key count (else it is unread)
    scale: f32,     // 1 / sqrt(D)
}

// vec4s per head row.
const DV: u32 = D / 4u;
// Start value of a running max; loses every max against a real score (no -inf in WGSL).
const NEG_BIG: f32 = -3.4028235e38;

@group(0) @binding(0) var<uniform> p: Params;
// forward
@group(0) @binding(1) var<storage, read_write> o_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
// inputs shared by the forward and backward kernels
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> key_lens: array<u32>;
// backward
@group(0) @binding(7) var<storage, read_write> delta_out: array<f32>;
@group(0) @binding(8) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> d_o: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> lse: array<f32>;
@group(0) @binding(11) var<storage, read> delta: array<f32>;
@group(0) @binding(12) var<storage, read_write> dq_out: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> dk_out: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dv_out: array<vec4<f32>>;
// unfused masked softmax
@group(0) @binding(15) var<storage, read_write> probs_out: array<f32>;
@group(0) @binding(16) var<storage, read> scores: array<f32>;
@group(0) @binding(17) var<storage, read_write> dscores_out: array<f32>;
@group(0) @binding(18) var<storage, read> probs: array<f32>;
@group(0) @binding(19) var<storage, read> dprobs: array<f32>;

// Staged tiles: K and V rows in `forward` / `backward_dq`, Q and dO rows in `backward_dkdv`.
var<workgroup> tile_a: array<vec4<f32>, BLOCK * DV>;
var<workgroup> tile_b: array<vec4<f32>, BLOCK * DV>;

// Keys 0 .. key_limit(b, i) - 1 are visible to query i of batch item b.
fn key_limit(b: u32, i: u32) -> u32 {
    var limit = p.tk;
    if (p.has_lens == 1u) {
        limit = min(limit, key_lens[b]);
    }
    if (p.causal == 1u) {
        // j visible iff j <= i + Tk - Tq, i.e. j < i + 1 + Tk - Tq, kept in unsigned range.
        limit = min(limit, select(0u, i + 1u + p.tk - p.tq, i + 1u + p.tk > p.tq));
    }
    return limit;
}

// Queries first_query(b, j) .. Tq - 1 see key j (none when it returns Tq): key_limit inverted.
fn first_query(b: u32, j: u32) -> u32 {
    if (p.has_lens == 1u && j >= key_lens[b]) {
        return p.tq;
    }
    if (p.causal == 1u && j + p.tq > p.tk) {
        return j + p.tq - p.tk;
    }
    return 0u;
}

// Linear workgroup index on the 2-D grid.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Stage rows r0 + t of `k` and `v` (rows of head bh) as row t of tile_a / tile_b.
fn stage_kv(bh: u32, r0: u32, t: u32) {
    let r = r0 + t;
    if (r < p.tk) {
        let src = (bh * p.tk + r) * DV;
        for (var c = 0u; c < DV; c++) {
            tile_a[t * DV + c] = k[src + c];
            tile_b[t * DV + c] = v[src + c];
        }
    }
}

// Stage rows r0 + t of `q` and `d_o` (rows of head bh) as row t of tile_a / tile_b.
fn stage_q_do(bh: u32, r0: u32, t: u32) {
    let r = r0 + t;
    if (r < p.tq) {
        let src = (bh * p.tq + r) * DV;
        for (var c = 0u; c < DV; c++) {
            tile_a[t * DV + c] = q[src + c];
            tile_b[t * DV + c] = d_o[src + c];
        }
    }
}

// The query row of invocation t in a query-owning tiled kernel (`forward`, `backward_dq`):
// workgroup `group` covers BLOCK queries q0 .. of head bh; the invocation owns query q0 + t.
struct QueryRow {
    bh: u32,
    owns_row: bool,
    // Keys the block's last query sees (the most of any in the block): tiles past it are skipped.
    block_limit: u32,
    // Keys this query sees; 0 past the last query.
    limit: u32,
    // Global row of q / o / lse; invocations past the last query read the last row and write
    // nothing.
    row: u32,
}

fn query_row(group: u32, q_blocks: u32, t: u32) -> QueryRow {
    let bh = group / q_blocks;
    let b = bh / p.heads;
    let q0 = (group % q_blocks) * BLOCK;
    let i = q0 + t;
    let owns_row = i < p.tq;
    return QueryRow(bh, owns_row, key_limit(b, min(q0 + BLOCK, p.tq) - 1u),
                    select(0u, key_limit(b, i), owns_row), bh * p.tq + min(i, p.tq - 1u));
}

// One workgroup per BLOCK queries of one (b, h); invocation t owns query q0 + t.
// Online softmax: for each staged K/V tile, the row's running max m, denominator l and
// unnormalised output acc are rescaled by exp(m_old - m_new) and extended by the tile.
@compute @workgroup_size(BLOCK)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32) {
    let q_blocks = (p.tq + BLOCK - 1u) / BLOCK;
    let group = group_index(wid, nwg);
    if (group >= p.batch * p.heads * q_blocks) { return; }
    let r = query_row(group, q_blocks, t);
    let row = r.row;
    let limit = r.limit;

    // The query row, pre-multiplied by c so that q_row . k_j is the score.
    var q_row: array<vec4<f32>, DV>;
    var acc: array<vec4<f32>, DV>;
    for (var c = 0u; c < DV; c++) {
        q_row[c] = q[row * DV + c] * p.scale;
        acc[c] = vec4(0.0);
    }
    var m = NEG_BIG;
    var l = 0.0;
    var s: array<f32, BLOCK>;

    for (var k0 = 0u; k0 < r.block_limit; k0 += BLOCK) {
        stage_kv(r.bh, k0, t);
        workgroupBarrier();
        // Keys of this tile that some row of the block sees; this row sees those below `limit`.
        let n = min(BLOCK, r.block_limit - k0);
        var tile_max = NEG_BIG;
        for (var j = 0u; j < n; j++) {
            var score = 0.0;
            for (var c = 0u; c < DV; c++) {
                score += dot(q_row[c], tile_a[j * DV + c]);
            }
            s[j] = select(NEG_BIG, score, k0 + j < limit);
            tile_max = max(tile_max, s[j]);
        }
        let m_new = max(m, tile_max);
        // exp(NEG_BIG - m_new) = 0 on the row's first visible tile, where l and acc are still 0;
        // exp(0) = 1 while the row has seen nothing (m = m_new = NEG_BIG).
        let correction = exp(m - m_new);
        l *= correction;
        for (var c = 0u; c < DV; c++) {
            acc[c] *= correction;
        }
        for (var j = 0u; j < n; j++) {
            let pj = select(0.0, exp(s[j] - m_new), k0 + j < limit);
            l += pj;
            for (var c = 0u; c < DV; c++) {
                acc[c] += pj * tile_b[j * DV + c];
            }
        }
        m = m_new;
        // Everyone is done with the tiles before the next iteration overwrites them.
        workgroupBarrier();
    }

    if (!r.owns_row) { return; }
    // l >= 1 when any key is visible (the max contributes exp(0)); l = 0 for a fully masked row.
    let seen = l > 0.0;
    let inv_l = select(0.0, 1.0 / l, seen);
    for (var c = 0u; c < DV; c++) {
        o_out[row * DV + c] = acc[c] * inv_l;
    }
    lse_out[row] = select(0.0, m + log(l), seen);
}

// delta[r] = dO[r] . o[r], one invocation per query row.
@compute @workgroup_size(WG)
fn backward_delta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= p.batch * p.heads * p.tq) { return; }
    var acc = 0.0;
    for (var c = 0u; c < DV; c++) {
        acc += dot(d_o[row * DV + c], o[row * DV + c]);
    }
    delta_out[row] = acc;
}

// dK and dV: one workgroup per BLOCK keys of one (b, h); invocation t owns key k0 + t and
// accumulates its dk and dv over every query that sees it, streaming Q and dO tiles. Query
// blocks before the first one that sees key k0 are skipped.
@compute @workgroup_size(BLOCK)
fn backward_dkdv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) t: u32) {
    let k_blocks = (p.tk + BLOCK - 1u) / BLOCK;
    let group = group_index(wid, nwg);
    if (group >= p.batch * p.heads * k_blocks) { return; }
    let bh = group / k_blocks;
    let b = bh / p.heads;
    let k0 = (group % k_blocks) * BLOCK;
    let j = k0 + t;
    let owns_row = j < p.tk;
    // first_query grows with the key, so the block's first key is seen first.
    let block_first = first_query(b, k0);
    let first = select(p.tq, first_query(b, j), owns_row);
    // Invocations past the last key (no queries) read the last row and write nothing.
    let key_row = bh * p.tk + min(j, p.tk - 1u);

    // The key row pre-multiplied by c (so k_row . q_i is the score), the value row, and the
    // gradients being accumulated.
    var k_row: array<vec4<f32>, DV>;
    var v_row: array<vec4<f32>, DV>;
    var dk: array<vec4<f32>, DV>;
    var dv: array<vec4<f32>, DV>;
    for (var c = 0u; c < DV; c++) {
        k_row[c] = k[key_row * DV + c] * p.scale;
        v_row[c] = v[key_row * DV + c];
        dk[c] = vec4(0.0);
        dv[c] = vec4(0.0);
    }

    for (var q0 = block_first / BLOCK * BLOCK; q0 < p.tq; q0 += BLOCK) {
        stage_q_do(bh, q0, t);
        workgroupBarrier();
        // Rows of this tile that some key of the block sees; this key is seen from `first` on.
        let r_start = select(0u, block_first - q0, block_first > q0);
        let r_end = min(BLOCK, p.tq - q0);
        for (var r = r_start; r < r_end; r++) {
            let row = bh * p.tq + q0 + r;
            var score = 0.0;
            var dp = 0.0;
            // Query row r and its dO row, read from workgroup memory once and used twice.
            var q_r: array<vec4<f32>, DV>;
            var do_r: array<vec4<f32>, DV>;
            for (var c = 0u; c < DV; c++) {
                q_r[c] = tile_a[r * DV + c];
                do_r[c] = tile_b[r * DV + c];
                score += dot(k_row[c], q_r[c]);
                dp += dot(v_row[c], do_r[c]);
            }
            let pr = select(0.0, exp(score - lse[row]), q0 + r >= first);
            let ds = pr * (dp - delta[row]);
            for (var c = 0u; c < DV; c++) {
                dv[c] += pr * do_r[c];
                dk[c] += ds * q_r[c];
            }
        }
        workgroupBarrier();
    }

    if (!owns_row) { return; }
    for (var c = 0u; c < DV; c++) {
        dk_out[key_row * DV + c] = dk[c] * p.scale;
        dv_out[key_row * DV + c] = dv[c];
    }
}

// dQ: one workgroup per BLOCK queries of one (b, h), like `forward`; invocation t owns query
// q0 + t and accumulates dq over its visible keys, streaming K and V tiles.
@compute @workgroup_size(BLOCK)
fn backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
    let q_blocks = (p.tq + BLOCK - 1u) / BLOCK;
    let group = group_index(wid, nwg);
    if (group >= p.batch * p.heads * q_blocks) { return; }
    let r = query_row(group, q_blocks, t);
    let row = r.row;
    let limit = r.limit;
    let lse_i = lse[row];
    let delta_i = delta[row];

    var q_row: array<vec4<f32>, DV>;
    var do_row: array<vec4<f32>, DV>;
    var dq: array<vec4<f32>, DV>;
    for (var c = 0u; c < DV; c++) {
        q_row[c] = q[row * DV + c] * p.scale;
        do_row[c] = d_o[row * DV + c];
        dq[c] = vec4(0.0);
    }

    for (var k0 = 0u; k0 < r.block_limit; k0 += BLOCK) {
        stage_kv(r.bh, k0, t);
        workgroupBarrier();
        let n = min(BLOCK, r.block_limit - k0);
        for (var j = 0u; j < n; j++) {
            var score = 0.0;
            var dp = 0.0;
            // Key row j, read from workgroup memory once and used twice.
            var k_j: array<vec4<f32>, DV>;
            for (var c = 0u; c < DV; c++) {
                k_j[c] = tile_a[j * DV + c];
                score += dot(q_row[c], k_j[c]);
                dp += dot(do_row[c], tile_b[j * DV + c]);
            }
            let pj = select(0.0, exp(score - lse_i), k0 + j < limit);
            let ds = pj * (dp - delta_i);
            for (var c = 0u; c < DV; c++) {
                dq[c] += ds * k_j[c];
            }
        }
        workgroupBarrier();
    }

    if (!r.owns_row) { return; }
    for (var c = 0u; c < DV; c++) {
        dq_out[row * DV + c] = dq[c] * p.scale;
    }
}

// Unfused path: probs = softmax over the visible keys of (scale * scores), one invocation per
// row of [B * H * Tq, Tk]; masked entries are 0, and so is a row with no visible key.
@compute @workgroup_size(WG)
fn masked_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= p.batch * p.heads * p.tq) { return; }
    let limit = key_limit(row / (p.heads * p.tq), row % p.tq);
    let base = row * p.tk;
    var m = NEG_BIG;
    for (var j = 0u; j < limit; j++) {
        m = max(m, scores[base + j]);
    }
    // scale > 0, so scale * m is the max of the scaled scores.
    var total = 0.0;
    for (var j = 0u; j < limit; j++) {
        total += exp(p.scale * (scores[base + j] - m));
    }
    let inv_total = select(0.0, 1.0 / total, limit > 0u);
    for (var j = 0u; j < p.tk; j++) {
        probs_out[base + j] = select(0.0, exp(p.scale * (scores[base + j] - m)) * inv_total, j < limit);
    }
}

// Backward of `masked_softmax` from its saved output y:
// dscores = scale * y * (dy - sum_j dy[j] y[j]). Masked entries have y = 0, hence gradient 0.
@compute @workgroup_size(WG)
fn masked_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= p.batch * p.heads * p.tq) { return; }
    let base = row * p.tk;
    var weighted = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        weighted += dprobs[base + j] * probs[base + j];
    }
    for (var j = 0u; j < p.tk; j++) {
        dscores_out[base + j] = p.scale * probs[base + j] * (dprobs[base + j] - weighted);
    }
}

// CPU-SHAPED ROW-BLOCK KERNELS (`forward_rows`, `backward_dq_rows`, `backward_dkdv_rows`)
//
// For CPU adapters (lavapipe), where a workgroup runs as a loop over SIMD lanes, every
// storage or workgroup-memory load is a per-lane scalar loop, barriers are coroutine switches
// and FMAs are cheap (see the row-block matmul in matmul.wgsl). No workgroup memory, no
// barriers; each invocation owns 8 rows of one (b, h) (queries in forward and dQ, keys in
// dK/dV) and walks the other side 8 rows at a time. An 8 x 8 block of scores lives in
// registers as four mat4x4 (`Block8`), built quad by quad of D as transpose(X) * Y: per
// quad 16 vec4 loads feed 256 FMAs, where the tiled kernels above do one FMA per loaded
// float. The products with the block (P V, dS K, P^T dO, dS^T Q) are mat4x4 products too,
// accumulated into a private [2 * DV] array of mat4x4 (column r: row r's quad). Blocks past
// the masks' prefix (see Masks above) are skipped; inside a block a masked score is NEG_BIG
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
    return mat4x4(q[r.x * DV + c], q[r.y * DV + c], q[r.z * DV + c], q[r.w * DV + c]);
}
fn k_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    return mat4x4(k[r.x * DV + c], k[r.y * DV + c], k[r.z * DV + c], k[r.w * DV + c]);
}
fn v_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    return mat4x4(v[r.x * DV + c], v[r.y * DV + c], v[r.z * DV + c], v[r.w * DV + c]);
}
fn do_quads(r: vec4<u32>, c: u32) -> mat4x4<f32> {
    return mat4x4(d_o[r.x * DV + c], d_o[r.y * DV + c], d_o[r.z * DV + c], d_o[r.w * DV + c]);
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
// functions are defined by whichever of the two sections below the kernel is compiled with:
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
        var s: Block8;
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
        for (var c = 0u; c < DV; c++) {
            o_out[row * DV + c] = acc[2u * c + g][r % 4u] * inv;
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
    let lse_a = vec4(lse[qa.x], lse[qa.y], lse[qa.z], lse[qa.w]);
    let lse_b = vec4(lse[qb.x], lse[qb.y], lse[qb.z], lse[qb.w]);
    let delta_a = vec4(delta[qa.x], delta[qa.y], delta[qa.z], delta[qa.w]);
    let delta_b = vec4(delta[qb.x], delta[qb.y], delta[qb.z], delta[qb.w]);
    keep_own_q_do(qa, qb);

    var acc: array<mat4x4<f32>, 2u * DV>;
    for (var j0 = 0u; j0 < n_keys; j0 += 8u) {
        let ka = rows4(bh * p.tk, j0, p.tk);
        let kb = rows4(bh * p.tk, j0 + 4u, p.tk);
        let mine = bh * p.tk + min(j0 + lane, p.tk - 1u);
        var s: Block8;
        var dp: Block8;
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
        let row = bh * p.tq + i0 + r;
        for (var c = 0u; c < DV; c++) {
            dq_out[row * DV + c] = acc[2u * c + r / 4u][r % 4u] * p.scale;
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
        var s: Block8;
        var dp: Block8;
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
        let row = bh * p.tk + j0 + r;
        for (var c = 0u; c < DV; c++) {
            dk_out[row * DV + c] = acc_dk[2u * c + r / 4u][r % 4u] * p.scale;
            dv_out[row * DV + c] = acc_dv[2u * c + r / 4u][r % 4u];
        }
    }
}

// PORTABLE ROW FETCH (every invocation loads all 8 streamed rows itself and its own rows
// again per block; `Rows`)

fn keep_own_q(ra: vec4<u32>, rb: vec4<u32>) {}
fn keep_own_q_do(ra: vec4<u32>, rb: vec4<u32>) {}
fn keep_own_k_v(ra: vec4<u32>, rb: vec4<u32>) {}
fn walk_limit(n: u32) -> u32 { return n; }
fn walk_start(i: u32) -> u32 { return i; }

fn own_q(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(transpose(q_quads(ra, c)), transpose(q_quads(rb, c)));
}
fn own_do(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(transpose(do_quads(ra, c)), transpose(do_quads(rb, c)));
}
fn own_k(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(transpose(k_quads(ra, c)), transpose(k_quads(rb, c)));
}
fn own_v(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(transpose(v_quads(ra, c)), transpose(v_quads(rb, c)));
}
fn fetch_q(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return Quads8(q_quads(sa, c), q_quads(sb, c));
}
fn fetch_do(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return Quads8(do_quads(sa, c), do_quads(sb, c));
}
fn fetch_k(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return Quads8(k_quads(sa, c), k_quads(sb, c));
}
fn fetch_v(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return Quads8(v_quads(sa, c), v_quads(sb, c));
}
fn fetch_query_stats(b: u32, i0: u32, qa: vec4<u32>, qb: vec4<u32>, lane: u32) -> QueryStats {
    return QueryStats(key_limits(b, i0), key_limits(b, i0 + 4u),
                      vec4(lse[qa.x], lse[qa.y], lse[qa.z], lse[qa.w]),
                      vec4(lse[qb.x], lse[qb.y], lse[qb.z], lse[qb.w]),
                      vec4(delta[qa.x], delta[qa.y], delta[qa.z], delta[qa.w]),
                      vec4(delta[qb.x], delta[qb.y], delta[qb.z], delta[qb.w]));
}

// The 8-row block of invocation `lid` of workgroup `wid` over `n` rows per (b, h): (bh, r0),
// or bh = batch * heads when the invocation has no block.
fn row_block(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, n: u32) -> vec2<u32> {
    let blocks = (n + 7u) / 8u;
    let id = group_index(wid, nwg) * ROWS_WG + lid;
    return vec2(id / blocks, id % blocks * 8u);
}

@compute @workgroup_size(ROWS_WG)
fn forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let blk = row_block(wid, nwg, lid, p.tq);
    forward_rows_body(blk.x, blk.y, 0u);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dq_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let blk = row_block(wid, nwg, lid, p.tq);
    backward_dq_rows_body(blk.x, blk.y, 0u);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dkdv_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let blk = row_block(wid, nwg, lid, p.tk);
    backward_dkdv_rows_body(blk.x, blk.y, 0u);
}

// SUBGROUP KERNELS (need Features::SUBGROUP with subgroups of at least 8 lanes; compiled from
// the file without the section above, the other kernels from the file up to here, so that
// those build anywhere; `RowsSubgroup`)
//
// The row-block kernels again, with the streamed side shared through the subgroup. With the
// fetch above every invocation loads all 8 rows of each streamed block itself, and on
// lavapipe each of those loads is a per-lane scalar loop. Here the 8 lanes of a workgroup own
// 8 consecutive row blocks of ONE (b, h) (64 rows), walk the same blocks (the loop bounds are
// the subgroup's widest), and lane x loads row x of each block (`mine`): `share8` broadcasts
// the 8 loads to every lane, so a block costs each lane 1 load per quad of D instead of 8.
// The owned rows are loaded once into private memory instead of once per block.

// Every lane's `x` (lane r holds row r of a block) to every lane.
fn share8(x: vec4<f32>) -> Quads8 {
    return Quads8(mat4x4(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u),
                         subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u)),
                  mat4x4(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u),
                         subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u)));
}

// Scalars of the 8 rows of a block (lane r holds row r's) to every lane, as rows 0..3 and 4..7.
fn share8_scalar(x: f32) -> array<vec4<f32>, 2> {
    return array(vec4(subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u),
                      subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u)),
                 vec4(subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u),
                      subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u)));
}

// The owned rows' quads, transposed: Q and dO (query-side kernels) or K and V (dK/dV).
var<private> own_first: array<mat4x4<f32>, 2u * DV>;
var<private> own_second: array<mat4x4<f32>, 2u * DV>;

fn keep_own_q(ra: vec4<u32>, rb: vec4<u32>) {
    for (var c = 0u; c < DV; c++) {
        own_first[2u * c] = transpose(q_quads(ra, c));
        own_first[2u * c + 1u] = transpose(q_quads(rb, c));
    }
}
fn keep_own_q_do(ra: vec4<u32>, rb: vec4<u32>) {
    for (var c = 0u; c < DV; c++) {
        own_first[2u * c] = transpose(q_quads(ra, c));
        own_first[2u * c + 1u] = transpose(q_quads(rb, c));
        own_second[2u * c] = transpose(do_quads(ra, c));
        own_second[2u * c + 1u] = transpose(do_quads(rb, c));
    }
}
fn keep_own_k_v(ra: vec4<u32>, rb: vec4<u32>) {
    for (var c = 0u; c < DV; c++) {
        own_first[2u * c] = transpose(k_quads(ra, c));
        own_first[2u * c + 1u] = transpose(k_quads(rb, c));
        own_second[2u * c] = transpose(v_quads(ra, c));
        own_second[2u * c + 1u] = transpose(v_quads(rb, c));
    }
}
fn walk_limit(n: u32) -> u32 { return subgroupMax(n); }
fn walk_start(i: u32) -> u32 { return subgroupMin(i); }

fn own_q(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(own_first[2u * c], own_first[2u * c + 1u]);
}
fn own_do(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(own_second[2u * c], own_second[2u * c + 1u]);
}
fn own_k(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(own_first[2u * c], own_first[2u * c + 1u]);
}
fn own_v(ra: vec4<u32>, rb: vec4<u32>, c: u32) -> Quads8 {
    return Quads8(own_second[2u * c], own_second[2u * c + 1u]);
}
fn fetch_q(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(q[mine * DV + c]);
}
fn fetch_do(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(d_o[mine * DV + c]);
}
fn fetch_k(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(k[mine * DV + c]);
}
fn fetch_v(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(v[mine * DV + c]);
}
// Lane x loads query i0 + x's key limit (0 past the last query), lse and delta.
fn fetch_query_stats(b: u32, i0: u32, qa: vec4<u32>, qb: vec4<u32>, lane: u32) -> QueryStats {
    let row = select(qa, qb, lane >= 4u)[lane % 4u];
    let lim = select(0u, key_limit(b, min(i0 + lane, p.tq - 1u)), i0 + lane < p.tq);
    let lse8 = share8_scalar(lse[row]);
    let delta8 = share8_scalar(delta[row]);
    return QueryStats(vec4(subgroupBroadcast(lim, 0u), subgroupBroadcast(lim, 1u),
                           subgroupBroadcast(lim, 2u), subgroupBroadcast(lim, 3u)),
                      vec4(subgroupBroadcast(lim, 4u), subgroupBroadcast(lim, 5u),
                           subgroupBroadcast(lim, 6u), subgroupBroadcast(lim, 7u)),
                      lse8[0], lse8[1], delta8[0], delta8[1]);
}

// The 64-row group of workgroup `wid`: (bh, first row of lane `lane`'s block); bh = batch *
// heads past the last group. Uniform over the workgroup but for the row.
fn lane_block(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, n: u32) -> vec2<u32> {
    let groups = (n + 63u) / 64u;
    let g = group_index(wid, nwg);
    return vec2(g / groups, g % groups * 64u + lane * 8u);
}

@compute @workgroup_size(ROWS_WG)
fn forward_rows_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tq);
    forward_rows_body(blk.x, blk.y, lane);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dq_rows_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tq);
    backward_dq_rows_body(blk.x, blk.y, lane);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dkdv_rows_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tk);
    backward_dkdv_rows_body(blk.x, blk.y, lane);
}
