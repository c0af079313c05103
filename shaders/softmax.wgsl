// Softmax over the last dim, and its backward. Launched by src/ops/softmax.rs.
//
// Layout: x, y, dy, dx are row-major [rows, cols]; one row per contiguous run of `cols`.
// Tiling: ONE WORKGROUP PER ROW (WG invocations, WG a power of two). Invocation `lid` walks
// the columns lid, lid + WG, ... (neighbouring invocations touch neighbouring addresses) and
// the row's reductions go through a tree in workgroup memory, so results do not depend on
// timing: the same input always gives the same bits.
//
// `forward`:  y[r, c] = exp(x[r, c] - max_r) / sum_j exp(x[r, j] - max_r). Subtracting the row
//             max keeps exp() <= 1, so rows of huge logits (1e4) neither overflow nor give NaN.
// `backward`: dx[r, c] = y[r, c] * (dy[r, c] - sum_j dy[r, j] * y[r, j]), from the saved y.

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read> y_saved: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;

// workgroup_sum / workgroup_sum2 / workgroup_max: shaders/workgroup_reduce.wgsl (prepended).

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) { return; }
    let base = row * p.cols;

    // -f32::MAX (in hex: Chromium refuses its decimal forms, which round above it) rather
    // than -inf: WGSL has no infinity literal. Lanes with no column keep it and
    // lose every max against a real value.
    var m = -0x1.fffffep+127f;
    for (var c = lid; c < p.cols; c += WG) {
        m = max(m, x[base + c]);
    }
    let row_max = workgroup_max(lid, m);

    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += exp(x[base + c] - row_max);
    }
    // s >= 1 (the max element contributes exp(0)), so the division is safe.
    let inv_sum = 1.0 / workgroup_sum(lid, s);

    for (var c = lid; c < p.cols; c += WG) {
        y[base + c] = exp(x[base + c] - row_max) * inv_sum;
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) { return; }
    let base = row * p.cols;

    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += dy[base + c] * y_saved[base + c];
    }
    let inner = workgroup_sum(lid, s);

    for (var c = lid; c < p.cols; c += WG) {
        dx[base + c] = y_saved[base + c] * (dy[base + c] - inner);
    }
}
