// The entry `forward_subgroup` of matmul_half (needs matmul_half.wgsl and
// Features::SUBGROUP): `forward` with the row of x shared through the subgroup. Every lane of
// a subgroup works on the same row of x at the same time, so lane l loads oct q + l % 8 of it
// and the 8 octs are broadcast: per 8 weights one load of W and a quarter of a load of x
// instead of two. On lavapipe every load is a per-lane loop: the loads, not the bytes, set
// the speed. Needs subgroups of at least 8 lanes (checked by the Rust side).
@compute @workgroup_size(WG)
fn forward_subgroup(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let id = invocation(gid, nwg);
    // Lanes past the end compute the last column again instead of returning: the broadcasts
    // need every lane of the subgroup.
    let j = min(id, p.n - 1u);
    let octs = p.k / 8u;
    let whole = octs / 8u * 8u;
    let w0 = j * octs;
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[j];
    }
    for (var i = 0u; i < p.m; i++) {
        let x0 = i * octs * 2u;
        var acc0 = vec4(0.0);
        var acc1 = vec4(0.0);
        for (var o = 0u; o < whole; o += 8u) {
            let mine = x0 + 2u * (o + lane % 8u);
            let xa = x4[mine];
            let xb = x4[mine + 1u];
            // subgroupBroadcast takes a constant lane: the 8 steps written out.
            let w = w0 + o;
            acc0 = fma(subgroupBroadcast(xa, 0u), first4(w8[w + 0u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 0u), last4(w8[w + 0u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 1u), first4(w8[w + 1u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 1u), last4(w8[w + 1u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 2u), first4(w8[w + 2u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 2u), last4(w8[w + 2u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 3u), first4(w8[w + 3u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 3u), last4(w8[w + 3u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 4u), first4(w8[w + 4u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 4u), last4(w8[w + 4u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 5u), first4(w8[w + 5u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 5u), last4(w8[w + 5u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 6u), first4(w8[w + 6u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 6u), last4(w8[w + 6u]), acc1);
            acc0 = fma(subgroupBroadcast(xa, 7u), first4(w8[w + 7u]), acc0);
            acc1 = fma(subgroupBroadcast(xb, 7u), last4(w8[w + 7u]), acc1);
        }
        for (var o = whole; o < octs; o++) {
            let w = w8[w0 + o];
            acc0 = fma(x4[x0 + 2u * o], first4(w), acc0);
            acc1 = fma(x4[x0 + 2u * o + 1u], last4(w), acc1);
        }
        let acc = acc0 + acc1;
        if (id < p.n) {
            c[i * p.n + j] = (acc.x + acc.y) + (acc.z + acc.w) + b;
        }
    }
}
