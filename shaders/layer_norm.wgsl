// LayerNorm over the last dim, forward and backward. Launched by src/ops/layer_norm.rs.
//
// Layout: x, y, dy, dx are row-major [rows, cols]; gamma, beta [cols]; mean, rstd [rows].
//
// `forward` and `backward_input`: ONE WORKGROUP PER ROW (WG invocations, WG a power of two).
// Invocation `lid` walks the columns lid, lid + WG, ... (neighbouring invocations touch
// neighbouring addresses); row sums go through a tree in workgroup memory, so the result is
// deterministic.
//   forward:        mean = sum(x) / cols, var = sum((x - mean)^2) / cols (biased, as PyTorch;
//                   two passes rather than E[x^2] - mean^2, which cancels badly),
//                   rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * gamma + beta.
//                   Saves mean and rstd per row for the backward.
//   backward_input: with xhat = (x - mean) * rstd and g = dy * gamma,
//                   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), plus (has_acc) the
//                   gradient x gathered from its other uses (the residual path around a
//                   pre-LN branch), which spares the tape an add.
//
// dgamma = sum_rows dy * xhat and dbeta = sum_rows dy need sums over rows, and there are no
// float atomics to let row workgroups add into one [cols] vector. So `param_partials` sums
// blocks of ROWS_PER_BLOCK rows: one invocation per (block, column) writes
// part[block, column] (shape [blocks, cols]), neighbouring invocations reading neighbouring
// columns; then `param_finish` sums both partials over the blocks, one invocation per
// column, blocks in order: deterministic, and two dispatches for both parameters.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    blocks: u32,   // param_partials: ceil(rows / ROWS_PER_BLOCK)
    has_acc: u32,  // backward_input: 1 adds dx_acc to dx
}

@group(0) @binding(0) var<uniform> p: Params;
// forward
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
// backward (also reads x and gamma)
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read> dy: array<f32>;
@group(0) @binding(9) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(10) var<storage, read> saved_rstd: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma_part: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta_part: array<f32>;
// Shaped like x; read only when has_acc (otherwise dy is bound here).
@group(0) @binding(17) var<storage, read> dx_acc: array<f32>;
// param_finish
@group(0) @binding(13) var<storage, read> dgamma_part_in: array<f32>;
@group(0) @binding(14) var<storage, read> dbeta_part_in: array<f32>;
@group(0) @binding(15) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(16) var<storage, read_write> dbeta: array<f32>;

// workgroup_sum / workgroup_sum2 / workgroup_max: shaders/workgroup_reduce.wgsl (prepended).

fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let n = f32(p.cols);

    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        s += x[base + c];
    }
    let mu = workgroup_sum2(lid, vec2(s, 0.0)).x / n;

    var sq = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        let d = x[base + c] - mu;
        sq += d * d;
    }
    let r = inverseSqrt(workgroup_sum2(lid, vec2(sq, 0.0)).x / n + p.eps);

    for (var c = lid; c < p.cols; c += WG) {
        y[base + c] = (x[base + c] - mu) * r * gamma[c] + beta[c];
    }
    if (lid == 0u) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = workgroup_index(wid, nwg);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let mu = saved_mean[row];
    let r = saved_rstd[row];

    // (sum g, sum g * xhat) in one reduction.
    var acc = vec2(0.0, 0.0);
    for (var c = lid; c < p.cols; c += WG) {
        let g = dy[base + c] * gamma[c];
        let xhat = (x[base + c] - mu) * r;
        acc += vec2(g, g * xhat);
    }
    let means = workgroup_sum2(lid, acc) / f32(p.cols);

    for (var c = lid; c < p.cols; c += WG) {
        let g = dy[base + c] * gamma[c];
        let xhat = (x[base + c] - mu) * r;
        let acc = select(0.0, dx_acc[base + c], p.has_acc != 0u);
        dx[base + c] = r * (g - means.x - xhat * means.y) + acc;
    }
}

@compute @workgroup_size(WG)
fn param_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let e = workgroup_index(wid, nwg) * WG + lid;
    if (e >= p.blocks * p.cols) { return; }
    let block = e / p.cols;
    let c = e % p.cols;
    let first = block * ROWS_PER_BLOCK;
    let last = min(first + ROWS_PER_BLOCK, p.rows);
    var dg = 0.0;
    var db = 0.0;
    for (var row = first; row < last; row++) {
        let i = row * p.cols + c;
        let g = dy[i];
        dg += g * (x[i] - saved_mean[row]) * saved_rstd[row];
        db += g;
    }
    dgamma_part[e] = dg;
    dbeta_part[e] = db;
}

@compute @workgroup_size(WG)
fn param_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let c = workgroup_index(wid, nwg) * WG + lid;
    if (c >= p.cols) { return; }
    var dg = 0.0;
    var db = 0.0;
    for (var block = 0u; block < p.blocks; block++) {
        dg += dgamma_part_in[block * p.cols + c];
        db += dbeta_part_in[block * p.cols + c];
    }
    dgamma[c] = dg;
    dbeta[c] = db;
}
