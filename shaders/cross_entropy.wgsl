// Fused log-softmax + NLL cross-entropy with ignore_index and label smoothing (PyTorch's
// conventions), forward and backward. Launched by src/ops/cross_entropy.rs.
//
// Layout: logits and dlogits are row-major [rows, vocab]; targets [rows] u32; row_loss [rows];
// lse [rows] pairs (m, log(sum_j exp(x_j - m))) whose sum is the row's logsumexp; loss, count
// and dloss hold one value each.
//
// A row counts when its target t is not ignore_index AND t < vocab: a target out of range
// cannot be checked on the CPU without a readback, so it is treated as ignored here rather
// than read out of bounds.
//
// `row_loss_forward`: ONE WORKGROUP PER ROW (WG invocations, WG a power of two), columns
//   strided by WG, reductions through a tree in workgroup memory (deterministic).
//   With m = max_j x_j and z_j = x_j - m (so exp(z_j) <= 1 and huge logits cannot overflow):
//     lse  = m + log(sum_j exp(z_j)), saved as the pair (m, log(sum_j exp(z_j)))
//     nll  = lse - x_t             = log(sum exp z) - z_t
//     mean_j(-logp_j) = lse - mean_j(x_j) = log(sum exp z) - mean_j(z_j)
//     row_loss = (1 - ls) * nll + ls * mean_j(-logp_j), 0 for a row that does not count.
//   Working with z keeps the subtractions between numbers of the loss's size, not of the
//   logits' size; that is also why lse is saved in two parts (with logits near 1e4, m + log_sum
//   rounded to f32 would be off by ~1e-3, and so would every probability in the backward).
// `finish`: ONE workgroup sums row_loss and the number of counted rows over all rows (strided,
//   then a tree: deterministic) and writes loss = sum / count, or 0 when no row counts, and
//   count (as f32; exact below 2^24 rows) for the backward. Nothing is read back.
// `backward`: one invocation per element of [rows, vocab]:
//     dlogits = dloss / count * (exp((x - m) - log_sum) - ((1 - ls) * onehot_t + ls / vocab)),
//   0 in rows that do not count.

struct Params {
    rows: u32,
    vocab: u32,
    ignore_index: u32,
    label_smoothing: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// row_loss_forward
@group(0) @binding(1) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<u32>;
// finish (also reads targets)
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> count: array<f32>;
@group(0) @binding(7) var<storage, read> row_loss_in: array<f32>;
// backward (also reads logits and targets)
@group(0) @binding(8) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(9) var<storage, read> lse_in: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read> count_in: array<f32>;
@group(0) @binding(11) var<storage, read> dloss: array<f32>;

// workgroup_sum / workgroup_sum2 / workgroup_max: shaders/workgroup_reduce.wgsl (prepended).

fn counts(t: u32) -> bool {
    return t != p.ignore_index && t < p.vocab;
}

@compute @workgroup_size(WG)
fn row_loss_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) { return; }
    let base = row * p.vocab;

    // -f32::MAX (in hex: Chromium refuses its decimal forms, which round above it) rather
    // than -inf: WGSL has no infinity literal.
    var m = -0x1.fffffep+127f;
    for (var j = lid; j < p.vocab; j += WG) {
        m = max(m, logits[base + j]);
    }
    let row_max = workgroup_max(lid, m);

    // (sum exp z, sum z)
    var acc = vec2(0.0, 0.0);
    for (var j = lid; j < p.vocab; j += WG) {
        let z = logits[base + j] - row_max;
        acc += vec2(exp(z), z);
    }
    let sums = workgroup_sum2(lid, acc);

    if (lid == 0u) {
        // sums.x >= 1 (the max contributes exp(0)), so the log is finite.
        let log_sum = log(sums.x);
        let t = targets[row];
        var l = 0.0;
        if (counts(t)) {
            let nll = log_sum - (logits[base + t] - row_max);
            let uniform_nll = log_sum - sums.y / f32(p.vocab);
            l = (1.0 - p.label_smoothing) * nll + p.label_smoothing * uniform_nll;
        }
        row_loss[row] = l;
        lse[row] = vec2(row_max, log_sum);
    }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_index) lid: u32) {
    // (sum of row losses, rows counted)
    var acc = vec2(0.0, 0.0);
    for (var r = lid; r < p.rows; r += WG) {
        acc += vec2(row_loss_in[r], select(0.0, 1.0, counts(targets[r])));
    }
    let total = workgroup_sum2(lid, acc);
    if (lid == 0u) {
        loss[0] = select(0.0, total.x / total.y, total.y > 0.0);
        count[0] = total.y;
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    if (e >= p.rows * p.vocab) { return; }
    let row = e / p.vocab;
    let j = e % p.vocab;
    let t = targets[row];
    // Only counted rows divide by count, and any counted row makes count >= 1.
    if (!counts(t)) {
        dlogits[e] = 0.0;
        return;
    }
    let ls = p.label_smoothing;
    let q = select(0.0, 1.0 - ls, j == t) + ls / f32(p.vocab);
    let stats = lse_in[row];
    dlogits[e] = dloss[0] / count_in[0] * (exp((logits[e] - stats.x) - stats.y) - q);
}
