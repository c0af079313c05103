// FMA-only kernel: the compute ceiling of the adapter as seen through WGSL, measured by
// benches/matmul.rs next to the matmul variants (and checked by tests/matmul.rs).
//
// Each invocation runs `iters` rounds of 16 independent vec4 FMAs, x = x * mul + add, in
// registers: no loads in the loop, and enough independent chains to hide the FMA latency
// (fewer chains measure latency instead of throughput on lavapipe). The chains are named
// variables because a dynamically indexed array would live in memory. Flops per invocation =
// iters * 16 * 4 * 2. The final values are summed into out[invocation] so that nothing is
// optimised away.

struct Params {
    iters: u32,
    // Runtime values, so that the compiler cannot fold the recurrence.
    mul: f32,
    add: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;


@compute @workgroup_size(WG)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    // Read once: a uniform load inside the loop would cost as much as the FMAs.
    let m = vec4(p.mul);
    let c = vec4(p.add);
    // Chain j starts at f32(e) + j + (0, 0.25, 0.5, 0.75).
    let s = vec4(f32(e)) + vec4(0.0, 0.25, 0.5, 0.75);
    var x0 = s;
    var x1 = s + 1.0;
    var x2 = s + 2.0;
    var x3 = s + 3.0;
    var x4 = s + 4.0;
    var x5 = s + 5.0;
    var x6 = s + 6.0;
    var x7 = s + 7.0;
    var x8 = s + 8.0;
    var x9 = s + 9.0;
    var x10 = s + 10.0;
    var x11 = s + 11.0;
    var x12 = s + 12.0;
    var x13 = s + 13.0;
    var x14 = s + 14.0;
    var x15 = s + 15.0;
    for (var i = 0u; i < p.iters; i++) {
        x0 = fma(x0, m, c);
        x1 = fma(x1, m, c);
        x2 = fma(x2, m, c);
        x3 = fma(x3, m, c);
        x4 = fma(x4, m, c);
        x5 = fma(x5, m, c);
        x6 = fma(x6, m, c);
        x7 = fma(x7, m, c);
        x8 = fma(x8, m, c);
        x9 = fma(x9, m, c);
        x10 = fma(x10, m, c);
        x11 = fma(x11, m, c);
        x12 = fma(x12, m, c);
        x13 = fma(x13, m, c);
        x14 = fma(x14, m, c);
        x15 = fma(x15, m, c);
    }
    let total = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7))
        + (((x8 + x9) + (x10 + x11)) + ((x12 + x13) + (x14 + x15)));
    out[e] = (total.x + total.y) + (total.z + total.w);
}
