// The entry `forward_subgroup` of matmul_half (needs matmul_half.wgsl and
// Features::SUBGROUP): `forward` with the rows of x shared through the subgroup, two at a
// time as there (each oct of W loaded and widened once for both). Every lane of
// a subgroup works on the same row of x at the same time, so lane l loads oct q + l % 8 of it
// and the 8 octs are broadcast: per 8 weights one load of W and a quarter of a load of x
// instead of two. On lavapipe every load is a per-lane loop: the loads, not the bytes, set
// the speed. Needs subgroups of at least 8 lanes (checked by the Rust side).

// `one_row_plain` with x shared through the subgroup: lane l loads oct o + l % 8 of the row
// and the 8 are broadcast; the octs past the last whole 8 one by one.
fn row_sums(x0: u32, w0: u32, octs: u32, lane: u32) -> vec4<f32> {
    let whole = octs / 8u * 8u;
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
    return acc0 + acc1 + one_row_plain(x0, w0, whole, octs);
}

// `row_sums` of two rows, x0 and x1, at once: each oct of W is loaded and widened once for
// both (beam search and windows decoded together have several rows).
fn two_row_sums(x0: u32, x1: u32, w0: u32, octs: u32, lane: u32) -> mat2x4<f32> {
    let whole = octs / 8u * 8u;
    var a0 = vec4(0.0);
    var b0 = vec4(0.0);
    var a1 = vec4(0.0);
    var b1 = vec4(0.0);
    for (var o = 0u; o < whole; o += 8u) {
        let mine = 2u * (o + lane % 8u);
        let xa0 = x4[x0 + mine];
        let xb0 = x4[x0 + mine + 1u];
        let xa1 = x4[x1 + mine];
        let xb1 = x4[x1 + mine + 1u];
        let w = w0 + o;
        var f = first4(w8[w + 0u]);
        var l = last4(w8[w + 0u]);
        a0 = fma(subgroupBroadcast(xa0, 0u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 0u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 0u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 0u), l, b1);
        f = first4(w8[w + 1u]);
        l = last4(w8[w + 1u]);
        a0 = fma(subgroupBroadcast(xa0, 1u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 1u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 1u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 1u), l, b1);
        f = first4(w8[w + 2u]);
        l = last4(w8[w + 2u]);
        a0 = fma(subgroupBroadcast(xa0, 2u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 2u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 2u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 2u), l, b1);
        f = first4(w8[w + 3u]);
        l = last4(w8[w + 3u]);
        a0 = fma(subgroupBroadcast(xa0, 3u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 3u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 3u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 3u), l, b1);
        f = first4(w8[w + 4u]);
        l = last4(w8[w + 4u]);
        a0 = fma(subgroupBroadcast(xa0, 4u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 4u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 4u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 4u), l, b1);
        f = first4(w8[w + 5u]);
        l = last4(w8[w + 5u]);
        a0 = fma(subgroupBroadcast(xa0, 5u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 5u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 5u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 5u), l, b1);
        f = first4(w8[w + 6u]);
        l = last4(w8[w + 6u]);
        a0 = fma(subgroupBroadcast(xa0, 6u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 6u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 6u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 6u), l, b1);
        f = first4(w8[w + 7u]);
        l = last4(w8[w + 7u]);
        a0 = fma(subgroupBroadcast(xa0, 7u), f, a0);
        b0 = fma(subgroupBroadcast(xb0, 7u), l, b0);
        a1 = fma(subgroupBroadcast(xa1, 7u), f, a1);
        b1 = fma(subgroupBroadcast(xb1, 7u), l, b1);
    }
    return mat2x4(a0 + b0, a1 + b1) + two_rows_plain(x0, x1, w0, whole, octs);
}

@compute @workgroup_size(WG)
fn forward_subgroup(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let id = invocation(gid, nwg);
    // Lanes past the end compute the last column again instead of returning: the broadcasts
    // need every lane of the subgroup.
    let j = min(id, p.n - 1u);
    let octs = p.k / 8u;
    let w0 = j * octs;
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[j];
    }
    let row = octs * 2u; // vec4 per row of x
    // Rows two at a time while two are left (p.m is uniform: every lane takes the same path).
    var i = 0u;
    for (; i + 1u < p.m; i += 2u) {
        let sums = two_row_sums(i * row, (i + 1u) * row, w0, octs, lane);
        if (id < p.n) {
            c[i * p.n + j] = total(sums[0]) + b;
            c[(i + 1u) * p.n + j] = total(sums[1]) + b;
        }
    }
    if (i < p.m) {
        let sums = row_sums(i * row, w0, octs, lane);
        if (id < p.n) {
            c[i * p.n + j] = total(sums) + b;
        }
    }
}
