// The GPU-shaped fused attention kernels `forward`, `backward_dkdv`, `backward_dq` (needs
// common.wgsl; `backward_delta` of delta.wgsl runs before the last two).
//
// Tiling of the fused kernels: a workgroup has BLOCK invocations and owns BLOCK rows of one
// (b, h): queries in `forward` and `backward_dq`, keys in `backward_dkdv`. Invocation t owns
// row t of the block and keeps it in registers. The other side streams through workgroup
// memory BLOCK rows at a time (K and V tiles, or Q and dO tiles); invocation t stages row t
// of each tile. BLOCK = min(64, 2048 / D), so two staged tiles take at most 16 KiB. Only a
// BLOCK x BLOCK slice of the Tq x Tk scores exists at any time, in registers; global memory
// never sees it. Each output row is written by one invocation after a loop in a fixed order:
// results are deterministic (no atomics).

// Staged tiles: K and V rows in `forward` / `backward_dq`, Q and dO rows in `backward_dkdv`.
var<workgroup> tile_a: array<vec4<f32>, BLOCK * DV>;
var<workgroup> tile_b: array<vec4<f32>, BLOCK * DV>;

// Stage rows r0 + t of `k` and `v` (rows of head bh) as row t of tile_a / tile_b.
fn stage_kv(bh: u32, r0: u32, t: u32) {
    let r = r0 + t;
    if (r < p.tk) {
        let src = key_row_at(bh * p.tk + r) * DV;
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
        let src = query_row_at(bh * p.tq + r) * DV;
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
    return QueryRow(bh, owns_row, select(0u, key_limit(b, i), owns_row),
                    bh * p.tq + min(i, p.tq - 1u));
}

// Keys the last query of workgroup `group` sees (the most of any in the block): tiles past it
// are skipped. Kept apart from QueryRow because the loops with barriers run up to it: it is the
// same for the whole workgroup, which WGSL's uniformity analysis (strict in Chromium) must see.
fn block_key_limit(group: u32, q_blocks: u32) -> u32 {
    let bh = group / q_blocks;
    let q0 = (group % q_blocks) * BLOCK;
    return key_limit(bh / p.heads, min(q0 + BLOCK, p.tq) - 1u);
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
    let block_limit = block_key_limit(group, q_blocks);

    // The query row, pre-multiplied by c so that q_row . k_j is the score.
    var q_row: array<vec4<f32>, DV>;
    var acc: array<vec4<f32>, DV>;
    let at = query_row_at(row) * DV;
    for (var c = 0u; c < DV; c++) {
        q_row[c] = q[at + c] * p.scale;
        acc[c] = vec4(0.0);
    }
    var m = NEG_BIG;
    var l = 0.0;
    var s: array<f32, BLOCK>;

    for (var k0 = 0u; k0 < block_limit; k0 += BLOCK) {
        stage_kv(r.bh, k0, t);
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

    if (!r.owns_row) { return; }
    // l >= 1 when any key is visible (the max contributes exp(0)); l = 0 for a fully masked row.
    let seen = l > 0.0;
    let inv_l = select(0.0, 1.0 / l, seen);
    for (var c = 0u; c < DV; c++) {
        o_out[at + c] = acc[c] * inv_l;
    }
    lse_out[row] = select(0.0, m + log(l), seen);
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
    let at = key_row_at(key_row) * DV;
    for (var c = 0u; c < DV; c++) {
        k_row[c] = k[at + c] * p.scale;
        v_row[c] = v[at + c];
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
            let pr = select(0.0, exp(score - lse(row)), q0 + r >= first);
            let ds = pr * (dp - delta(row));
            for (var c = 0u; c < DV; c++) {
                dv[c] += pr * do_r[c];
                dk[c] += ds * q_r[c];
            }
        }
        workgroupBarrier();
    }

    if (!owns_row) { return; }
    for (var c = 0u; c < DV; c++) {
        dk_out[at + c] = dk[c] * p.scale;
        dv_out[at + c] = dv[c];
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
    let block_limit = block_key_limit(group, q_blocks);
    let lse_i = lse(row);
    let delta_i = delta(row);

    var q_row: array<vec4<f32>, DV>;
    var do_row: array<vec4<f32>, DV>;
    var dq: array<vec4<f32>, DV>;
    let at = query_row_at(row) * DV;
    for (var c = 0u; c < DV; c++) {
        q_row[c] = q[at + c] * p.scale;
        do_row[c] = d_o[at + c];
        dq[c] = vec4(0.0);
    }

    for (var k0 = 0u; k0 < block_limit; k0 += BLOCK) {
        stage_kv(r.bh, k0, t);
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

    if (!r.owns_row) { return; }
    for (var c = 0u; c < DV; c++) {
        dq_out[at + c] = dq[c] * p.scale;
    }
}
