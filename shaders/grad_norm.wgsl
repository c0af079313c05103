// Global gradient norm for clipping, without reading anything back.
// Launched by src/ops/grad_norm.rs.
//
// `sum_squares`: the squares of up to TENSORS gradient tensors (bound as x0 .. x6) summed in
// chunks of CHUNK elements, one workgroup per chunk: each invocation sums a strided slice of
// its chunk, then `workgroup_sum` (shaders/workgroup_reduce.wgsl, prepended) adds those up, and
// the chunk's sum goes to its own slot of `partials` (no atomics, so it is deterministic).
// Workgroups are numbered through the tensors' chunks in order: tensor t's chunks are
// first_chunk[t] .. first_chunk[t + 1]. One dispatch thus covers seven tensors with as many
// workgroups as the device can use, where one workgroup per tensor left a GPU mostly idle and
// cost a dispatch per parameter.
// `finish`: one workgroup sums the partials and writes [norm, clip coefficient, loss], where the
// coefficient min(1, max_norm / (norm + 1e-6)) is what the optimizer multiplies gradients by.
// Under loss scaling (mixed precision) the gradients arrive multiplied by the loss scale S:
// `unscale` = 1 / S turns their norm into the true one and is folded into the coefficient, so
// the optimizer's one multiply both unscales and clips.
//
// A step whose gradient norm or loss is not finite (NaN or infinite) must not touch the weights:
// `finish` then writes a coefficient of exactly 0, which the optimizer kernels read as "skip this
// step" (shaders/adamw.wgsl, sgd.wgsl). The trainer learns of it from the same 3 floats, its one
// readback per step, and stops or goes on as configured (src/train/non_finite.rs).

const TENSORS: u32 = 7u;

struct Params {
    // sum_squares: elements of each bound tensor (0 for unused bindings).
    n: array<vec4<u32>, 2>,
    // sum_squares: first chunk of each tensor (of this dispatch), and first_chunk[count] = the
    // dispatch's number of chunks.
    first_chunk: array<vec4<u32>, 2>,
    // sum_squares: the slot of partials the dispatch's first chunk writes.
    first_slot: u32,
    // finish: number of partials.
    partials_len: u32,
    max_norm: f32,  // finish: clip threshold (<= 0 disables clipping)
    unscale: f32,   // finish: 1 / the loss scale the gradients carry (1 without loss scaling)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> x0: array<f32>;
@group(0) @binding(3) var<storage, read> x1: array<f32>;
@group(0) @binding(4) var<storage, read> x2: array<f32>;
@group(0) @binding(5) var<storage, read> x3: array<f32>;
@group(0) @binding(6) var<storage, read> x4: array<f32>;
@group(0) @binding(7) var<storage, read> x5: array<f32>;
@group(0) @binding(8) var<storage, read> x6: array<f32>;
@group(0) @binding(9) var<storage, read_write> norm_and_coef: array<f32>;
@group(0) @binding(10) var<storage, read> loss: array<f32>; // [1]; a 0 stands in when there is none

fn n_of(t: u32) -> u32 {
    return p.n[t / 4u][t % 4u];
}

fn first_chunk_of(t: u32) -> u32 {
    return p.first_chunk[t / 4u][t % 4u];
}

// Element i of tensor t (WGSL cannot index bindings, hence the switch).
fn x_at(t: u32, i: u32) -> f32 {
    switch t {
        case 0u: { return x0[i]; }
        case 1u: { return x1[i]; }
        case 2u: { return x2[i]; }
        case 3u: { return x3[i]; }
        case 4u: { return x4[i]; }
        case 5u: { return x5[i]; }
        default: { return x6[i]; }
    }
}

// WGSL has no isnan/isinf: a float is finite unless its exponent bits are all ones.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn sum_squares(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let chunk = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so every invocation reaches workgroup_sum's barriers.
    if (chunk >= first_chunk_of(TENSORS)) { return; }
    var t = 0u;
    while (t + 1u < TENSORS && chunk >= first_chunk_of(t + 1u)) {
        t += 1u;
    }
    let start = (chunk - first_chunk_of(t)) * CHUNK;
    let end = min(start + CHUNK, n_of(t));
    var acc = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        let v = x_at(t, i);
        acc += v * v;
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials[p.first_slot + chunk] = total;
    }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.partials_len; i += WG) {
        acc += partials[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid != 0u) { return; }
    let norm = sqrt(total) * p.unscale;
    let coef = select(1.0, min(1.0, p.max_norm / (norm + 1e-6)), p.max_norm > 0.0) * p.unscale;
    norm_and_coef[0] = norm;
    norm_and_coef[1] = select(0.0, coef, is_finite(norm) && is_finite(loss[0]));
    norm_and_coef[2] = loss[0];
}
