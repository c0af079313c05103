// Sum over one axis, and its backward (broadcast along that axis). Launched by src/ops/reduce.rs.
// The tensor is viewed as [outer, len, inner] with the reduced axis in the middle; one
// invocation per output element loops over `chunk` rows of it, so neighbouring invocations
// read neighbouring addresses (the inner dim is contiguous). `alpha` scales the result (1/len
// for a mean).
//
// With chunk < len the kernel writes partial sums [outer, ceil(len / chunk), inner], which a
// second launch sums: a bias gradient (a few hundred outputs over thousands of rows) would
// otherwise run a few hundred long loops, and on a GPU leave all but one multiprocessor idle.
// `sum_axis_columns` does the same in one launch where inner >= COLS (on GPUs: the wide row
// kernels' shape): a workgroup per COLS neighbouring outputs, its WG / COLS lanes per output
// splitting the rows, summed in workgroup memory.

struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    alpha: f32,
    chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// out[o, c, i] = alpha * sum over a in chunk c of x[o, a, i]   (one chunk: out[o, i])
@compute @workgroup_size(WG)
fn sum_axis(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    let chunks = (p.len + p.chunk - 1u) / p.chunk;
    if (e >= p.outer * chunks * p.inner) { return; }
    let i = e % p.inner;
    let c = e / p.inner % chunks;
    let o = e / (p.inner * chunks);
    var acc = 0.0;
    for (var a = c * p.chunk; a < min(p.len, (c + 1u) * p.chunk); a++) {
        acc += x[(o * p.len + a) * p.inner + i];
    }
    out[e] = acc * p.alpha;
}

// out[o, a, i] = alpha * x[o, i]   (the backward of sum_axis)
@compute @workgroup_size(WG)
fn broadcast_axis(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.outer * p.len * p.inner) { return; }
    let i = e % p.inner;
    let o = e / (p.len * p.inner);
    out[e] = x[o * p.inner + i] * p.alpha;
}

const COLS: u32 = 8u;
var<workgroup> column_sums: array<f32, WG>;

// out[o, i] = alpha * sum over a of x[o, a, i], outputs i0 .. i0 + COLS of one o per workgroup:
// lane lid sums rows lid / COLS, + WG / COLS, ... of output i0 + lid % COLS (neighbouring lanes
// read neighbouring addresses), then a tree over the lanes of each output.
@compute @workgroup_size(WG)
fn sum_axis_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let blocks = (p.inner + COLS - 1u) / COLS;
    let w = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so every invocation reaches the barriers below.
    if (w >= p.outer * blocks) { return; }
    let o = w / blocks;
    let i = w % blocks * COLS + lid % COLS;
    var acc = 0.0;
    if (i < p.inner) {
        for (var a = lid / COLS; a < p.len; a += WG / COLS) {
            acc += x[(o * p.len + a) * p.inner + i];
        }
    }
    column_sums[lid] = acc;
    workgroupBarrier();
    // Lanes stride apart (a multiple of COLS) belong to the same output.
    for (var stride = WG / 2u; stride >= COLS; stride /= 2u) {
        if (lid < stride) {
            column_sums[lid] += column_sums[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid < COLS && i < p.inner) {
        out[o * p.inner + i] = column_sums[lid] * p.alpha;
    }
}
