// The matmul kernel `dot4_subgroup` (needs common.wgsl and Features::SUBGROUP): dot4 with the
// row of A shared through the subgroup: every lane of a subgroup computes an
// output of the same row of A (the Rust side checks that N and the workgroup are whole
// subgroups), so lane x loads k-quad q + x of that row and the 8 k-quads are broadcast: per
// k-quad one load of B and an eighth of a load of A instead of two loads. On lavapipe every
// load is a per-lane loop, so this nearly halves the work of a one-token product.
@compute @workgroup_size(WG)
fn dot4_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let total = p.batch * p.m * p.n;
    let id = linear_id(wid, nwg, lid, WG);
    // Lanes past the end compute the last output again instead of returning: the broadcasts
    // need every lane of the subgroup.
    let e = min(id, total - 1u);
    let at = output_at(e);
    let quads = p.k / 4u;
    let a0 = (at.x * p.a_stride + at.y * p.k) / 4u;
    let b0 = (at.x * p.b_stride + at.z * p.k) / 4u;
    let whole = quads / 8u * 8u;
    var acc0 = vec4(0.0);
    var acc1 = vec4(0.0);
    for (var q = 0u; q < whole; q += 8u) {
        let av = a4[a0 + q + lane % 8u];
        let b = b0 + q;
        acc0 = fma(subgroupBroadcast(av, 0u), b4[b], acc0);
        acc1 = fma(subgroupBroadcast(av, 1u), b4[b + 1u], acc1);
        acc0 = fma(subgroupBroadcast(av, 2u), b4[b + 2u], acc0);
        acc1 = fma(subgroupBroadcast(av, 3u), b4[b + 3u], acc1);
        acc0 = fma(subgroupBroadcast(av, 4u), b4[b + 4u], acc0);
        acc1 = fma(subgroupBroadcast(av, 5u), b4[b + 5u], acc1);
        acc0 = fma(subgroupBroadcast(av, 6u), b4[b + 6u], acc0);
        acc1 = fma(subgroupBroadcast(av, 7u), b4[b + 7u], acc1);
    }
    for (var q = whole; q < quads; q++) {
        acc0 = fma(a4[a0 + q], b4[b0 + q], acc0);
    }
    let acc = acc0 + acc1;
    if (id < total) {
        c[e] = epilogue(e, at.z, (acc.x + acc.y) + (acc.z + acc.w));
    }
}
