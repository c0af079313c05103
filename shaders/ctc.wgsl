// CTC loss by the forward-backward recursions in log space, and its gradient. Launched by
// src/ops/ctc.rs; the same math in plain Rust (f64, with the definitions spelled out) is
// src/reference/ctc.rs.
//
// Layout: logits, lp, dlogits [B, T, V]; targets [B, S] u32; input_lengths, target_lengths,
// loss, log_p, dloss [B]. Utterance b has F = min(input_lengths[b], T) frames and
// n = 2 * min(target_lengths[b], S) + 1 extended states (blank, l1, blank, ..., lS, blank);
// buffers are laid out for the largest case, states = 2S + 1.
//   lattice [2, B, T, states]: alpha (first half) and beta (second half), in log space:
//     alpha[t, s] = log P(path prefixes emitting frames 0..=t, in state s at frame t)
//     beta[t, s]  = log P(path suffixes from state s at frame t emitting frames t+1..F-1)
//   so exp(alpha + beta) at (t, s) is the probability of all paths through it.
//   links [B, V + S] u32: head[v] (first target position holding label v) then next[i] (the
//     next position holding the same label as position i), NONE ending a list: the backward
//     finds the states of label v without scanning the whole target.
//
// "Probability 0" is NEG = -1e30, not -inf: adding log-probabilities (<= 0) keeps it <= NEG
// and finite, so no inf - inf = NaN can arise; log_add returns NEG when both inputs are.
//
// `log_softmax`: ONE WORKGROUP PER ROW (b, t), reductions through workgroup_reduce.wgsl.
// `alpha_beta`:  2B workgroups: workgroup b runs alpha over utterance b, workgroup B + b runs
//   beta, both at once. Invocations cover the states (strided by WG when n > WG); the loop over
//   frames keeps the lattice in global memory with a storageBarrier between frames (frame t
//   reads only frame t -+ 1). The alpha workgroup also writes links, log_p and the loss, where
//   an utterance with no path (too few frames), a label >= V or a blank label gets log_p = NEG
//   and loss 0 (PyTorch's zero_infinity).
// `backward`: one invocation per element of dlogits:
//   dlogits[b, t, v] = dloss[b] * (softmax[b, t, v] - sum_{s: state s emits v} exp(alpha + beta - log_p))
//   on the utterance's frames; 0 on padded frames and where log_p is NEG.

struct Params {
    batch: u32,
    time: u32,
    vocab: u32,
    max_target: u32,
    blank: u32,
    states: u32,   // 2 * max_target + 1
}

@group(0) @binding(0) var<uniform> p: Params;
// log_softmax
@group(0) @binding(1) var<storage, read_write> lp: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
// alpha_beta
@group(0) @binding(3) var<storage, read_write> lattice: array<f32>;
@group(0) @binding(4) var<storage, read_write> log_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read_write> links: array<u32>;
@group(0) @binding(7) var<storage, read> lp_in: array<f32>;
@group(0) @binding(8) var<storage, read> input_lengths: array<u32>;
@group(0) @binding(9) var<storage, read> targets: array<u32>;
@group(0) @binding(10) var<storage, read> target_lengths: array<u32>;
// backward (also reads lp_in, input_lengths, target_lengths)
@group(0) @binding(11) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(12) var<storage, read> lattice_in: array<f32>;
@group(0) @binding(13) var<storage, read> log_p_in: array<f32>;
@group(0) @binding(14) var<storage, read> links_in: array<u32>;
@group(0) @binding(15) var<storage, read> dloss: array<f32>;

// workgroup_sum2 / workgroup_max: shaders/workgroup_reduce.wgsl (prepended).

const NEG: f32 = -1e30;
const NONE: u32 = 0xffffffffu;

fn log_add(a: f32, b: f32) -> f32 {
    let m = max(a, b);
    if (m <= NEG) { return NEG; }
    return m + log(exp(a - m) + exp(b - m));
}

fn frames_of(b: u32) -> u32 {
    return min(input_lengths[b], p.time);
}

fn labels_of(b: u32) -> u32 {
    return min(target_lengths[b], p.max_target);
}

// Extended state s of utterance b emits this class (an invalid label is clamped into range
// for reading; the utterance's loss is zeroed anyway).
fn state_label(b: u32, s: u32) -> u32 {
    if (s % 2u == 0u) { return p.blank; }
    return min(targets[b * p.max_target + s / 2u], p.vocab - 1u);
}

// May a path move from state s - 2 straight to s? Not onto a blank, not between equal labels.
fn can_skip(b: u32, s: u32) -> bool {
    return s >= 2u && s % 2u == 1u && state_label(b, s) != state_label(b, s - 2u);
}

fn log_prob(b: u32, t: u32, s: u32) -> f32 {
    return lp_in[(b * p.time + t) * p.vocab + state_label(b, s)];
}

// Index of (half, b, t, s) in lattice; half 0 is alpha, 1 is beta.
fn at(half: u32, b: u32, t: u32, s: u32) -> u32 {
    return ((half * p.batch + b) * p.time + t) * p.states + s;
}

@compute @workgroup_size(WG)
fn log_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.batch * p.time) { return; }
    let base = row * p.vocab;
    var m = -0x1.fffffep+127f;
    for (var v = lid; v < p.vocab; v += WG) {
        m = max(m, logits[base + v]);
    }
    let row_max = workgroup_max(lid, m);
    var s = 0.0;
    for (var v = lid; v < p.vocab; v += WG) {
        s += exp(logits[base + v] - row_max);
    }
    let lse = row_max + log(workgroup_sum2(lid, vec2(s, 0.0)).x);
    for (var v = lid; v < p.vocab; v += WG) {
        lp[base + v] = logits[base + v] - lse;
    }
}

// Lists of the target positions of each label (see links above).
fn write_links(b: u32, lid: u32) {
    let labels = labels_of(b);
    let row = b * (p.vocab + p.max_target);
    let tb = b * p.max_target;
    for (var v = lid; v < p.vocab; v += WG) {
        var head = NONE;
        for (var i = 0u; i < labels; i++) {
            if (targets[tb + i] == v) {
                head = i;
                break;
            }
        }
        links[row + v] = head;
    }
    for (var i = lid; i < labels; i += WG) {
        var next = NONE;
        for (var j = i + 1u; j < labels; j++) {
            if (targets[tb + j] == targets[tb + i]) {
                next = j;
                break;
            }
        }
        links[row + p.vocab + i] = next;
    }
}

fn run_alpha(b: u32, lid: u32) {
    let frames = frames_of(b);
    let labels = labels_of(b);
    let n = 2u * labels + 1u;
    write_links(b, lid);
    if (frames > 0u) {
        // A path starts in the leading blank or the first label.
        for (var s = lid; s < n; s += WG) {
            var a = NEG;
            if (s < 2u) { a = log_prob(b, 0u, s); }
            lattice[at(0u, b, 0u, s)] = a;
        }
        storageBarrier();
        for (var t = 1u; t < frames; t++) {
            for (var s = lid; s < n; s += WG) {
                var a = lattice[at(0u, b, t - 1u, s)];
                if (s >= 1u) { a = log_add(a, lattice[at(0u, b, t - 1u, s - 1u)]); }
                if (can_skip(b, s)) { a = log_add(a, lattice[at(0u, b, t - 1u, s - 2u)]); }
                lattice[at(0u, b, t, s)] = a + log_prob(b, t, s);
            }
            storageBarrier();
        }
    }
    if (lid != 0u) { return; }
    // A path ends in the last label or the trailing blank; with no frames only the empty
    // target has one (the empty path, probability 1).
    var lp_total = select(NEG, 0.0, labels == 0u);
    if (frames > 0u) {
        lp_total = lattice[at(0u, b, frames - 1u, n - 1u)];
        if (n >= 2u) { lp_total = log_add(lp_total, lattice[at(0u, b, frames - 1u, n - 2u)]); }
    }
    for (var i = 0u; i < labels; i++) {
        let l = targets[b * p.max_target + i];
        if (l >= p.vocab || l == p.blank) { lp_total = NEG; }
    }
    log_p[b] = lp_total;
    loss[b] = select(-lp_total, 0.0, lp_total <= NEG);
}

fn run_beta(b: u32, lid: u32) {
    let frames = frames_of(b);
    let n = 2u * labels_of(b) + 1u;
    if (frames == 0u) { return; }
    let last = frames - 1u;
    // Nothing is left to emit after the last frame, from either final state.
    for (var s = lid; s < n; s += WG) {
        lattice[at(1u, b, last, s)] = select(NEG, 0.0, s + 2u >= n);
    }
    storageBarrier();
    for (var t = last; t > 0u; t--) {
        // beta[t - 1, s] from beta[t, s'] and frame t's emission in s'.
        for (var s = lid; s < n; s += WG) {
            var a = lattice[at(1u, b, t, s)] + log_prob(b, t, s);
            if (s + 1u < n) {
                a = log_add(a, lattice[at(1u, b, t, s + 1u)] + log_prob(b, t, s + 1u));
            }
            if (s + 2u < n && can_skip(b, s + 2u)) {
                a = log_add(a, lattice[at(1u, b, t, s + 2u)] + log_prob(b, t, s + 2u));
            }
            lattice[at(1u, b, t - 1u, s)] = a;
        }
        storageBarrier();
    }
}

@compute @workgroup_size(WG)
fn alpha_beta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= 2u * p.batch) { return; }
    if (g < p.batch) {
        run_alpha(g, lid);
    } else {
        run_beta(g - p.batch, lid);
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid;
    if (e >= p.batch * p.time * p.vocab) { return; }
    let v = e % p.vocab;
    let t = (e / p.vocab) % p.time;
    let b = e / (p.vocab * p.time);
    let total = log_p_in[b];
    if (t >= frames_of(b) || total <= NEG) {
        dlogits[e] = 0.0;
        return;
    }
    let labels = labels_of(b);
    // Occupancy of class v at frame t: the probability of the paths that emit v there.
    var occupancy = 0.0;
    if (v == p.blank) {
        for (var s = 0u; s < 2u * labels + 1u; s += 2u) {
            occupancy += exp(lattice_in[at(0u, b, t, s)] + lattice_in[at(1u, b, t, s)] - total);
        }
    } else {
        let row = b * (p.vocab + p.max_target);
        // Positions only grow along a list, so it ends within `labels` steps.
        for (var i = links_in[row + v]; i < labels; i = links_in[row + p.vocab + i]) {
            let s = 2u * i + 1u;
            occupancy += exp(lattice_in[at(0u, b, t, s)] + lattice_in[at(1u, b, t, s)] - total);
        }
    }
    dlogits[e] = dloss[b] * (exp(lp_in[e]) - occupancy);
}
