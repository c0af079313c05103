// Global gradient norm for clipping, without reading anything back.
// Launched by src/ops/grad_norm.rs.
//
// `sum_squares`: ONE workgroup of WG invocations reduces one gradient tensor: each invocation
// sums the squares of a strided slice, then `workgroup_sum` (shaders/workgroup_reduce.wgsl,
// prepended) adds those up; the result
// goes to partials[slot] (one slot per parameter tensor; no atomics, so it is deterministic).
// `finish`: one invocation sums the partials and writes [norm, clip coefficient, loss], where the
// coefficient min(1, max_norm / (norm + 1e-6)) is what the optimizer multiplies gradients by.
// Under loss scaling (mixed precision) the gradients arrive multiplied by the loss scale S:
// `unscale` = 1 / S turns their norm into the true one and is folded into the coefficient, so
// the optimizer's one multiply both unscales and clips.
//
// A step whose gradient norm or loss is not finite (NaN or infinite) must not touch the weights:
// `finish` then writes a coefficient of exactly 0, which the optimizer kernels read as "skip this
// step" (shaders/adamw.wgsl, sgd.wgsl). The trainer learns of it from the same 3 floats, its one
// readback per step, and stops or goes on as configured (src/train/non_finite.rs).

struct Params {
    n: u32,         // elements of x (sum_squares) / number of partials (finish)
    slot: u32,      // where sum_squares writes
    max_norm: f32,  // finish: clip threshold (<= 0 disables clipping)
    unscale: f32,   // finish: 1 / the loss scale the gradients carry (1 without loss scaling)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm_and_coef: array<f32>;
@group(0) @binding(4) var<storage, read> loss: array<f32>; // [1]; a 0 stands in when there is none

// WGSL has no isnan/isinf: a float is finite unless its exponent bits are all ones.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn sum_squares(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        acc += x[i] * x[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials[p.slot] = total;
    }
}

@compute @workgroup_size(1)
fn finish() {
    var total = 0.0;
    for (var i = 0u; i < p.n; i++) {
        total += partials[i];
    }
    let norm = sqrt(total) * p.unscale;
    let coef = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0) * p.unscale;
    norm_and_coef[0] = norm;
    norm_and_coef[1] = select(0.0, coef, is_finite(norm) && is_finite(loss[0]));
    norm_and_coef[2] = loss[0];
}
