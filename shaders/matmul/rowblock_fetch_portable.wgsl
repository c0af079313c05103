// The row-block kernel `rowblock` (needs common.wgsl, packed.wgsl, rowblock.wgsl): every
// lane loads the 8 rows of A itself.

fn a_rows(at: u32, step: u32, lane: u32) -> Rows8 {
    return Rows8(ap_load(at), ap_load(at + step), ap_load(at + 2u * step), ap_load(at + 3u * step), ap_load(at + 4u * step),
                 ap_load(at + 5u * step), ap_load(at + 6u * step), ap_load(at + 7u * step));
}

@compute @workgroup_size(RB_WG)
fn rowblock(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    rowblock_main(wid, nwg, lid, 0u);
}
