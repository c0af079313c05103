// Data movement: permute (general transpose), slice, concat and the slice backward.
// Launched by src/ops/layout.rs. One invocation per element written, WG per workgroup, on a
// 2-D grid of workgroups; no tiling (every element is one load and one store).
//
// Elements are moved as raw bits, so the same kernels serve f32 values and u32 ids, bit for
// bit. A `Word` is one element (u32) or four (vec4<u32>): the Rust side prepends the alias,
// and uses the wide variant when the innermost run of every move is whole vec4 (a head split
// or merge, a batch slice), counting sizes and strides in vec4. The index arithmetic is the
// same; there are a quarter of the invocations, and on lavapipe, where every load, store and
// integer division is a per-lane loop, the wide variant is ~2.5x faster.
//
// permute: the output is contiguous with (collapsed, padded) shape [s0, .., s5], s5 fastest;
// a unit step along output axis a moves t_a elements in the input. The Rust side drops size-1
// axes and merges axes that stay adjacent first (so tensors of any rank whose permutation
// needs at most 6 axes fit), and pads with leading axes of size 1. A head split
// [B, T, H, Dh] -> [B, H, T, Dh] reads contiguous runs of Dh; neighbouring invocations read
// neighbouring addresses within a run.
//
// Window ops view the big tensor as [outer, full, inner] and the window along the middle
// axis as [outer, len, inner], starting at `start`.

struct Params {
    n: u32,      // elements written by this dispatch
    s0: u32,     // permute: output shape, outermost first
    s1: u32,
    s2: u32,
    s3: u32,
    s4: u32,
    s5: u32,
    t0: u32,     // permute: input stride of a step along each output axis
    t1: u32,
    t2: u32,
    t3: u32,
    t4: u32,
    t5: u32,
    full: u32,   // window ops: length of the sliced axis in the big tensor
    len: u32,    // window ops: length of the window
    inner: u32,  // window ops: elements after the sliced axis
    start: u32,  // window ops: first index of the window along the axis
    group: u32,  // gather_concat: outer blocks per gathered row
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<Word>;
@group(0) @binding(2) var<storage, read> x: array<Word>;
// concat_pair and gather_concat only: the second part.
@group(0) @binding(3) var<storage, read> y: array<Word>;
// gather_concat only: the rows of x taken, in their new order.
@group(0) @binding(4) var<storage, read> rows: array<u32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Input index of output element i: peel the output multi-index off i, fastest axis first.
fn permuted_source(i: u32) -> u32 {
    var r = i;
    var src = (r % p.s5) * p.t5;
    r /= p.s5;
    src += (r % p.s4) * p.t4;
    r /= p.s4;
    src += (r % p.s3) * p.t3;
    r /= p.s3;
    src += (r % p.s2) * p.t2;
    r /= p.s2;
    src += (r % p.s1) * p.t1;
    r /= p.s1;
    return src + r * p.t0;
}

// out = x with its axes permuted.
@compute @workgroup_size(WG)
fn permute(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) { out[i] = x[permuted_source(i)]; }
}

// Index in the big [outer, full, inner] tensor of element w of the [outer, len, inner] window.
fn window_to_full(w: u32) -> u32 {
    let block = p.len * p.inner;
    let o = w / block;
    return (o * p.full + p.start) * p.inner + w % block;
}

// slice: out [outer, len, inner] = x [outer, start..start + len, inner].
@compute @workgroup_size(WG)
fn slice_window(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let w = element(wid, nwg, lid);
    if (w < p.n) { out[w] = x[window_to_full(w)]; }
}

// concat, one dispatch per part: out [outer, start..start + len, inner] = x [outer, len, inner].
@compute @workgroup_size(WG)
fn concat_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = element(wid, nwg, lid);
    if (w < p.n) { out[window_to_full(w)] = x[w]; }
}

// Where output element i of a two-part join lies: outer block o, index a along the joined
// axis (x's part below len, y's from there), offset within the inner run.
struct PairAt {
    o: u32,
    a: u32,
    within: u32,
}

fn pair_at(i: u32) -> PairAt {
    return PairAt(i / (p.full * p.inner), (i / p.inner) % p.full, i % p.inner);
}

// x's element at `at` when x's outer block `block` stands in output block at.o.
fn first_part(at: PairAt, block: u32) -> Word {
    return x[(block * p.len + at.a) * p.inner + at.within];
}

fn second_part(at: PairAt) -> Word {
    return y[(at.o * (p.full - p.len) + at.a - p.len) * p.inner + at.within];
}

// concat of two parts in one dispatch (a key/value cache growing by a step): out is
// [outer, full, inner]; x fills [outer, 0..len, inner] and y [outer, len..full, inner].
@compute @workgroup_size(WG)
fn concat_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let at = pair_at(i);
    if (at.a < p.len) {
        out[i] = first_part(at, at.o);
    } else {
        out[i] = second_part(at);
    }
}

// concat_pair with x's rows re-ordered on the way (a decoding cache after beam search re-ranked
// its sequences, growing by a step): x is [rows_in, group, len, inner] viewed as
// [rows_in * group, len, inner], and output row r takes x's row rows[r]; y is already in
// the output's row order. One dispatch instead of a gather and a concat. `group` is the
// number of outer blocks per row (a cache's heads).
@compute @workgroup_size(WG)
fn gather_concat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let at = pair_at(i);
    if (at.a < p.len) {
        out[i] = first_part(at, rows[at.o / p.group] * p.group + at.o % p.group);
    } else {
        out[i] = second_part(at);
    }
}

// The backward of slice: out [outer, full, inner] holds x [outer, len, inner] in the window
// and zeros elsewhere. Writes every element, so no separate zero fill is needed.
@compute @workgroup_size(WG)
fn slice_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let a = (i / p.inner) % p.full;
    var value = Word(); // zeros: the bits of 0.0f
    if (a >= p.start && a < p.start + p.len) {
        let o = i / (p.full * p.inner);
        value = x[(o * p.len + a - p.start) * p.inner + i % p.inner];
    }
    out[i] = value;
}
