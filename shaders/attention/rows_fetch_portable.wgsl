// The row fetch of `Rows` (needs common.wgsl and rows.wgsl): every invocation loads all 8
// streamed rows itself, and its own rows again per block.

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
                      vec4(lse(qa.x), lse(qa.y), lse(qa.z), lse(qa.w)),
                      vec4(lse(qb.x), lse(qb.y), lse(qb.z), lse(qb.w)),
                      vec4(delta(qa.x), delta(qa.y), delta(qa.z), delta(qa.w)),
                      vec4(delta(qb.x), delta(qb.y), delta(qb.z), delta(qb.w)));
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
