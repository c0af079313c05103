//! Connectionist temporal classification (CTC) loss, by the forward-backward recursions in log
//! space (Graves et al. 2006), with PyTorch's `zero_infinity=True`.
//!
//! An utterance with labels `l` (length S) is scored on its "extended" label sequence
//! `l' = [blank, l1, blank, l2, ..., lS, blank]` of 2S + 1 states. A path emits one state per
//! frame, starting in state 0 or 1 and ending in state 2S or 2S - 1, and from state s moves to
//! s, s + 1, or s + 2 when `l'[s + 2]` is neither blank nor equal to `l'[s]` (so a repeated
//! label must have a blank between its copies).

/// Sizes of a batch: logits `[batch, time, vocab]`, targets `[batch, max_target]`.
#[derive(Clone, Copy, Debug)]
pub struct CtcShape {
    pub batch: usize,
    pub time: usize,
    pub vocab: usize,
    pub max_target: usize,
    pub blank: usize,
}

/// log(exp(a) + exp(b)), exact for -inf arguments.
fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// One utterance after log-softmax: `lp[t][v]` for its frames only.
struct Lattice {
    /// alpha[t][s]: log of the summed probability of path prefixes that emit frames 0..=t and
    /// are in state s at frame t (frame t's emission included).
    alpha: Vec<Vec<f64>>,
    /// beta[t][s]: log of the summed probability of path suffixes that are in state s at frame
    /// t and emit frames t+1.. to the end (frame t's emission NOT included), so that
    /// exp(alpha[t][s] + beta[t][s]) is the probability of all paths through (t, s).
    beta: Vec<Vec<f64>>,
    /// log p(labels | logits); -inf when no path fits in the frames.
    log_p: f64,
}

fn lattice(lp: &[Vec<f64>], labels: &[usize], blank: usize) -> Lattice {
    let states: Vec<usize> = (0..2 * labels.len() + 1)
        .map(|s| if s % 2 == 0 { blank } else { labels[s / 2] })
        .collect();
    let n = states.len();
    // May a path skip from s - 2 to s?
    let skip = |s: usize| s >= 2 && states[s] != blank && states[s] != states[s - 2];
    let frames = lp.len();
    let mut alpha = vec![vec![f64::NEG_INFINITY; n]; frames];
    let mut beta = vec![vec![f64::NEG_INFINITY; n]; frames];
    if frames == 0 {
        // No frame can emit anything: only an empty target has a path (the empty one).
        let log_p = if labels.is_empty() {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        return Lattice { alpha, beta, log_p };
    }
    for s in 0..n.min(2) {
        alpha[0][s] = lp[0][states[s]];
    }
    for t in 1..frames {
        for s in 0..n {
            let mut a = alpha[t - 1][s];
            if s >= 1 {
                a = log_add(a, alpha[t - 1][s - 1]);
            }
            if skip(s) {
                a = log_add(a, alpha[t - 1][s - 2]);
            }
            alpha[t][s] = a + lp[t][states[s]];
        }
    }
    let last = frames - 1;
    for b in &mut beta[last][n.saturating_sub(2)..] {
        *b = 0.0;
    }
    for t in (0..last).rev() {
        for s in 0..n {
            let mut b = beta[t + 1][s] + lp[t + 1][states[s]];
            if s + 1 < n {
                b = log_add(b, beta[t + 1][s + 1] + lp[t + 1][states[s + 1]]);
            }
            if s + 2 < n && skip(s + 2) {
                b = log_add(b, beta[t + 1][s + 2] + lp[t + 1][states[s + 2]]);
            }
            beta[t][s] = b;
        }
    }
    let mut log_p = alpha[last][n - 1];
    if n >= 2 {
        log_p = log_add(log_p, alpha[last][n - 2]);
    }
    Lattice { alpha, beta, log_p }
}

/// The log-softmax over the vocabulary of each of utterance `b`'s first `frames` frames.
fn log_softmax(logits: &[f64], sh: &CtcShape, b: usize, frames: usize) -> Vec<Vec<f64>> {
    (0..frames)
        .map(|t| {
            let row = &logits[(b * sh.time + t) * sh.vocab..][..sh.vocab];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            row.iter().map(|x| x - lse).collect()
        })
        .collect()
}

/// Each utterance's log-softmax frames and labels.
fn utterances<'a>(
    logits: &'a [f64],
    sh: &'a CtcShape,
    input_lengths: &'a [u32],
    targets: &'a [u32],
    target_lengths: &'a [u32],
) -> impl Iterator<Item = (Vec<Vec<f64>>, Vec<usize>)> + 'a {
    assert_eq!(
        logits.len(),
        sh.batch * sh.time * sh.vocab,
        "ctc: logits size"
    );
    assert_eq!(targets.len(), sh.batch * sh.max_target, "ctc: targets size");
    assert_eq!(input_lengths.len(), sh.batch, "ctc: input_lengths size");
    assert_eq!(target_lengths.len(), sh.batch, "ctc: target_lengths size");
    (0..sh.batch).map(move |b| {
        let frames = input_lengths[b] as usize;
        let labels = &targets[b * sh.max_target..][..target_lengths[b] as usize];
        assert!(
            frames <= sh.time,
            "ctc: input length {frames} > {}",
            sh.time
        );
        assert!(
            labels
                .iter()
                .all(|&l| (l as usize) < sh.vocab && l as usize != sh.blank),
            "ctc: labels {labels:?} must be < vocab and not blank"
        );
        (
            log_softmax(logits, sh, b, frames),
            labels.iter().map(|&l| l as usize).collect(),
        )
    })
}

/// Per-utterance negative log-likelihood `-log p(labels | logits)`, shape `[batch]`, where
/// utterance b uses frames `0..input_lengths[b]` and labels `targets[b, 0..target_lengths[b]]`.
/// An utterance whose labels cannot fit in its frames (p = 0) gets loss 0 (`zero_infinity`).
pub fn ctc_loss(
    logits: &[f64],
    sh: &CtcShape,
    input_lengths: &[u32],
    targets: &[u32],
    target_lengths: &[u32],
) -> Vec<f64> {
    utterances(logits, sh, input_lengths, targets, target_lengths)
        .map(|(lp, labels)| {
            let log_p = lattice(&lp, &labels, sh.blank).log_p;
            if log_p == f64::NEG_INFINITY {
                0.0
            } else {
                -log_p
            }
        })
        .collect()
}

/// Gradient of `sum_b dloss[b] * ctc_loss[b]` with respect to the logits `[batch, time, vocab]`:
/// `dloss[b] * (softmax[t][v] - sum_{s: l'[s] = v} exp(alpha[t][s] + beta[t][s] - log p))` on
/// the utterance's frames; 0 on padded frames and for an utterance with p = 0.
pub fn ctc_loss_backward(
    logits: &[f64],
    sh: &CtcShape,
    input_lengths: &[u32],
    targets: &[u32],
    target_lengths: &[u32],
    dloss: &[f64],
) -> Vec<f64> {
    assert_eq!(dloss.len(), sh.batch, "ctc_loss_backward: dloss size");
    let mut grad = vec![0.0; logits.len()];
    let all = utterances(logits, sh, input_lengths, targets, target_lengths);
    for (b, (lp, labels)) in all.enumerate() {
        let lat = lattice(&lp, &labels, sh.blank);
        if lat.log_p == f64::NEG_INFINITY {
            continue;
        }
        for (t, lp_t) in lp.iter().enumerate() {
            let g = &mut grad[(b * sh.time + t) * sh.vocab..][..sh.vocab];
            for (v, gv) in g.iter_mut().enumerate() {
                *gv = lp_t[v].exp();
            }
            for s in 0..lat.alpha[t].len() {
                let v = if s % 2 == 0 { sh.blank } else { labels[s / 2] };
                g[v] -= (lat.alpha[t][s] + lat.beta[t][s] - lat.log_p).exp();
            }
            g.iter_mut().for_each(|gv| *gv *= dloss[b]);
        }
    }
    grad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    /// One utterance over `time` frames of the given probabilities (logits = their logs).
    fn single(probs: &[f64], vocab: usize, labels: &[u32]) -> f64 {
        let time = probs.len() / vocab;
        let logits: Vec<f64> = probs.iter().map(|p| p.ln()).collect();
        let sh = CtcShape {
            batch: 1,
            time,
            vocab,
            max_target: labels.len(),
            blank: 0,
        };
        ctc_loss(&logits, &sh, &[time as u32], labels, &[labels.len() as u32])[0]
    }

    #[test]
    fn one_frame_one_label_is_minus_log_its_probability() {
        let loss = single(&[0.2, 0.5, 0.3], 3, &[2]);
        assert_close(&[loss], &[-(0.3f64.ln())], 1e-12);
    }

    #[test]
    fn two_frames_one_label_sums_the_three_paths() {
        // Paths for "a" over 2 frames: (a, a), (a, blank), (blank, a).
        let (b1, a1, b2, a2) = (0.4, 0.6, 0.7, 0.3);
        let loss = single(&[b1, a1, b2, a2], 2, &[1]);
        let p = a1 * a2 + a1 * b2 + b1 * a2;
        assert_close(&[loss], &[-p.ln()], 1e-12);
    }

    #[test]
    fn repeated_label_needs_a_blank_between_its_copies() {
        // "aa" in 2 frames has no path (zero_infinity: loss 0); in 3 frames only (a, blank, a).
        let probs2 = [0.5, 0.5, 0.5, 0.5];
        assert_eq!(single(&probs2, 2, &[1, 1]), 0.0);
        let probs3 = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        assert_close(
            &[single(&probs3, 2, &[1, 1])],
            &[-(0.9f64 * 0.8 * 0.7).ln()],
            1e-12,
        );
        // Distinct labels need no blank: "ab" in 2 frames is the single path (a, b).
        let probs_ab = [0.2, 0.5, 0.3, 0.1, 0.3, 0.6];
        assert_close(
            &[single(&probs_ab, 3, &[1, 2])],
            &[-(0.5f64 * 0.6).ln()],
            1e-12,
        );
    }

    #[test]
    fn empty_target_is_all_blanks() {
        let probs = [0.6, 0.4, 0.9, 0.1, 0.5, 0.5];
        assert_close(
            &[single(&probs, 2, &[])],
            &[-(0.6f64 * 0.9 * 0.5).ln()],
            1e-12,
        );
    }

    #[test]
    fn infeasible_utterance_has_zero_loss_and_zero_gradient() {
        let sh = CtcShape {
            batch: 1,
            time: 2,
            vocab: 3,
            max_target: 3,
            blank: 0,
        };
        let logits = test_values(6, 1);
        let (lens, targets, tlens) = ([2], [1, 2, 1], [3]);
        assert_eq!(ctc_loss(&logits, &sh, &lens, &targets, &tlens), vec![0.0]);
        let grad = ctc_loss_backward(&logits, &sh, &lens, &targets, &tlens, &[1.0]);
        assert!(grad.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn backward_matches_finite_differences() {
        // Varied lengths, a repeat, an empty target and padded frames.
        let sh = CtcShape {
            batch: 3,
            time: 6,
            vocab: 4,
            max_target: 3,
            blank: 0,
        };
        let logits: Vec<f64> = test_values(3 * 6 * 4, 2).iter().map(|x| 2.0 * x).collect();
        let lens = [6, 4, 5];
        let targets = [1, 2, 2, 3, 1, 0, 0, 0, 0];
        let tlens = [3, 2, 0];
        let dloss = [0.7, -1.3, 0.4];
        let grad = ctc_loss_backward(&logits, &sh, &lens, &targets, &tlens, &dloss);
        let numeric = numerical_grad(
            |x| dot(&dloss, &ctc_loss(x, &sh, &lens, &targets, &tlens)),
            &logits,
            1e-5,
        );
        assert_close(&grad, &numeric, 1e-7);
        // Padded frames of utterance 1 (t = 4, 5) get nothing.
        assert!(grad[(6 + 4) * 4..(6 + 6) * 4].iter().all(|&g| g == 0.0));
    }
}
