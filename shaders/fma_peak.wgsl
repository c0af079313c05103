// FMA-only kernel: the compute ceiling of the adapter as seen through WGSL, measured by
// benches/matmul.rs next to the matmul variants (and checked by tests/matmul.rs).
//
// Each invocation runs `iters` rounds of CHAINS independent vec4 FMAs, x = x * mul + add,
// entirely in registers: no loads in the loop, enough independent chains to hide the FMA
// latency. Flops per dispatch = invocations * iters * CHAINS * 4 * 2. The final values are
// summed into out[invocation] so that nothing is optimised away.

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
    let m = vec4(p.mul);
    let c = vec4(p.add);
    var x: array<vec4<f32>, CHAINS>;
    for (var j = 0u; j < CHAINS; j++) {
        x[j] = vec4(f32(j), f32(j) + 0.25, f32(j) + 0.5, f32(j) + 0.75);
    }
    for (var i = 0u; i < p.iters; i++) {
        for (var j = 0u; j < CHAINS; j++) {
            x[j] = fma(x[j], m, c);
        }
    }
    var total = vec4(0.0);
    for (var j = 0u; j < CHAINS; j++) {
        total += x[j];
    }
    out[e] = total.x + total.y + total.z + total.w;
}
