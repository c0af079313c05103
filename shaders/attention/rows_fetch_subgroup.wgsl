// The row fetch of `RowsSubgroup` (needs common.wgsl, rows.wgsl and Features::SUBGROUP with
// subgroups of at least 8 lanes): the row-block kernels with the streamed side shared through
// the subgroup. With the portable fetch every invocation loads all 8 rows of each streamed block itself, and on
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
    return share8(q[query_row_at(mine) * DV + c]);
}
fn fetch_do(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(d_o[query_row_at(mine) * DV + c]);
}
fn fetch_k(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(k[key_row_at(mine) * DV + c]);
}
fn fetch_v(sa: vec4<u32>, sb: vec4<u32>, mine: u32, c: u32) -> Quads8 {
    return share8(v[key_row_at(mine) * DV + c]);
}
// Lane x loads query i0 + x's key limit (0 past the last query), lse and delta.
fn fetch_query_stats(b: u32, i0: u32, qa: vec4<u32>, qb: vec4<u32>, lane: u32) -> QueryStats {
    let row = select(qa, qb, lane >= 4u)[lane % 4u];
    let lim = select(0u, key_limit(b, min(i0 + lane, p.tq - 1u)), i0 + lane < p.tq);
    let lse8 = share8_scalar(lse(row));
    let delta8 = share8_scalar(delta(row));
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
fn forward_rows_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tq);
    forward_rows_body(blk.x, blk.y, lane);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dq_rows_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tq);
    backward_dq_rows_body(blk.x, blk.y, lane);
}

@compute @workgroup_size(ROWS_WG)
fn backward_dkdv_rows_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(subgroup_invocation_id) lane: u32) {
    let blk = lane_block(wid, nwg, lane, p.tk);
    backward_dkdv_rows_body(blk.x, blk.y, lane);
}
