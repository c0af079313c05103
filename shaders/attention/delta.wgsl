// The first pass of the fused attention backward, for every fused kernel family (needs
// common.wgsl).

// delta[r] = dO[r] . o[r], one invocation per query row, into the second half of the lse / delta
// buffer.
@compute @workgroup_size(WG)
fn backward_delta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= query_rows()) { return; }
    var acc = 0.0;
    let at = query_row_at(row) * DV;
    for (var c = 0u; c < DV; c++) {
        acc += dot(d_o[at + c], o[at + c]);
    }
    delta_out[query_rows() + row] = acc;
}
