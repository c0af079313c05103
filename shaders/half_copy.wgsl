// f32 values <-> IEEE halves packed two per u32 word (value 2w in word w's low 16 bits),
// through WGSL's pack2x16float / unpack2x16float, so no `shader-f16` feature is needed. In
// mixed precision a backward keeps its activations this way: half the bytes of f32.
// Launched by `to_half` / `from_half` in src/ops/half_copy.rs; one invocation per word.
//
// pack2x16float leaves a value past the f16 range undefined, so values are clamped to
// +-65504 (the largest finite half) first.

struct Params {
    n: u32, // values (the f32 side)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const HALF_MAX: f32 = 65504.0;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> halves_out: array<u32>;
@group(0) @binding(2) var<storage, read> values_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> values_out: array<f32>;
@group(0) @binding(4) var<storage, read> halves_in: array<u32>;

fn word_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn to_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let w = word_index(wid, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) { return; }
    var pair = vec2<f32>(values_in[i], 0.0);
    if (i + 1u < p.n) { pair.y = values_in[i + 1u]; }
    halves_out[w] = pack2x16float(clamp(pair, vec2<f32>(-HALF_MAX), vec2<f32>(HALF_MAX)));
}

@compute @workgroup_size(WG)
fn from_half(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let w = word_index(wid, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) { return; }
    let pair = unpack2x16float(halves_in[w]);
    values_out[i] = pair.x;
    if (i + 1u < p.n) { values_out[i + 1u] = pair.y; }
}
