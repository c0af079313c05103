// The row-block kernel `rowblock_subgroup` (needs common.wgsl, packed.wgsl, rowblock.wgsl and
// Features::SUBGROUP): A shared through the subgroup. Every lane of a subgroup needs the same
// 32 vec4 of A per k-quad, so lane x loads rows x, x + 8, x + 16, x + 24 and each group of 8
// is broadcast: 4 loads of A per lane instead of 32. Needs subgroups of at least 8 lanes
// (checked by the Rust side); wider subgroups just repeat the first 8 lanes' loads.
fn a_rows(at: u32, step: u32, lane: u32) -> Rows8 {
    let v = ap_load(at + lane % 8u * step);
    return Rows8(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
                 subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
                 subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

@compute @workgroup_size(RB_WG)
fn rowblock_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane: u32) {
    rowblock_main(wid, nwg, lid, lane);
}
