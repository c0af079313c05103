// The unfused attention path's softmax and its backward (needs common.wgsl); the products
// around it are matmuls.

// Unfused path: probs = softmax over the visible keys of (scale * scores), one invocation per
// row of [B * H * Tq, Tk]; masked entries are 0, and so is a row with no visible key.
@compute @workgroup_size(WG)
fn masked_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= p.batch * p.heads * p.tq) { return; }
    let limit = key_limit(row / (p.heads * p.tq), row % p.tq);
    let base = row * p.tk;
    // One pass for the max m and the sum of exp(scale * (s - m)) together (the online
    // softmax): the running sum is rescaled whenever the max grows. scale > 0, so scale * m
    // is the max of the scaled scores.
    var m = NEG_BIG;
    var total = 0.0;
    for (var j = 0u; j < limit; j++) {
        let s = scores[base + j];
        if (s > m) {
            total = total * exp(p.scale * (m - s)) + 1.0;
            m = s;
        } else {
            total += exp(p.scale * (s - m));
        }
    }
    let inv_total = select(0.0, 1.0 / total, limit > 0u);
    for (var j = 0u; j < p.tk; j++) {
        probs_out[base + j] = select(0.0, exp(p.scale * (scores[base + j] - m)) * inv_total, j < limit);
    }
}

// Backward of `masked_softmax` from its saved output y:
// dscores = scale * y * (dy - sum_j dy[j] y[j]). Masked entries have y = 0, hence gradient 0.
@compute @workgroup_size(WG)
fn masked_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * WG + lid;
    if (row >= p.batch * p.heads * p.tq) { return; }
    let base = row * p.tk;
    var weighted = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        weighted += dprobs[base + j] * probs[base + j];
    }
    for (var j = 0u; j < p.tk; j++) {
        dscores_out[base + j] = p.scale * probs[base + j] * (dprobs[base + j] - weighted);
    }
}
