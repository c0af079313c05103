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

// One workgroup per BLOCK queries of one (b, h); invocation t owns query q0 + t.
// Online softmax: for each staged K/V tile, the row's running max m, denominator l and
// unnormalised output acc are rescaled by exp(m_old - m_new) and extended by the tile.
@compute @workgroup_size(BLOCK)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32) {
    let q_blocks = (p.tq + BLOCK - 1u) / BLOCK;
    let group = group_index(wid, nwg);
    if (group >= p.batch * p.heads * q_blocks) { return; }
    let bh = group / q_blocks;
    let b = bh / p.heads;
    let q0 = (group % q_blocks) * BLOCK;
    let i = q0 + t;
    let owns_row = i < p.tq;
    // The block's last query sees the most keys; tiles past its limit are skipped.
    let block_limit = key_limit(b, min(q0 + BLOCK, p.tq) - 1u);
    let limit = select(0u, key_limit(b, i), owns_row);
    // Invocations past the last query (limit 0) read the last row and write nothing.
    let row = bh * p.tq + min(i, p.tq - 1u);

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

    for (var k0 = 0u; k0 < block_limit; k0 += BLOCK) {
        stage_kv(bh, k0, t);
        workgroupBarrier();
        // Keys of this tile that some row of the block sees; this row sees those below `limit`.
        let n = min(BLOCK, block_limit - k0);
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

    if (!owns_row) { return; }
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
    let bh = group / q_blocks;
    let b = bh / p.heads;
    let q0 = (group % q_blocks) * BLOCK;
    let i = q0 + t;
    let owns_row = i < p.tq;
    let block_limit = key_limit(b, min(q0 + BLOCK, p.tq) - 1u);
    let limit = select(0u, key_limit(b, i), owns_row);
    // Invocations past the last query (limit 0) read the last row and write nothing.
    let row = bh * p.tq + min(i, p.tq - 1u);
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

    for (var k0 = 0u; k0 < block_limit; k0 += BLOCK) {
        stage_kv(bh, k0, t);
        workgroupBarrier();
        let n = min(BLOCK, block_limit - k0);
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

    if (!owns_row) { return; }
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
