//! Mean cross-entropy loss over rows of logits, with ignore index and
//! label smoothing (PyTorch's `F.cross_entropy` conventions).

/// Target of row `r` as a class index, or `None` if the row is ignored.
/// Panics on a target that is neither `ignore_index` nor in `0..vocab`.
fn row_target(targets: &[i64], r: usize, vocab: usize, ignore_index: i64) -> Option<usize> {
    let t = targets[r];
    if t == ignore_index {
        return None;
    }
    assert!(
        t >= 0 && (t as u64) < vocab as u64,
        "cross_entropy: target {t} of row {r} outside 0..{vocab}"
    );
    Some(t as usize)
}

/// Log-softmax of one row: `logp[j] = x[j] - log(sum_i exp(x[i]))`,
/// computed with the max subtracted for stability.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
    row.iter().map(|v| v - log_sum).collect()
}

/// Mean cross-entropy of `logits` (`[rows, vocab]`) against `targets` (`[rows]`).
///
/// With label smoothing `ls`, the target distribution is
/// `q = (1 - ls) * onehot(t) + ls / vocab` and the row loss is
/// `-sum_j q_j logp_j = -(1 - ls) logp[t] - ls / vocab * sum_j logp[j]`.
/// Rows whose target equals `ignore_index` are skipped, and the mean is over
/// the remaining rows. If every row is ignored, the loss is 0.
pub fn cross_entropy(
    logits: &[f64],
    targets: &[i64],
    rows: usize,
    vocab: usize,
    ignore_index: i64,
    label_smoothing: f64,
) -> f64 {
    check_sizes(logits, targets, rows, vocab);
    let ls = label_smoothing;
    let mut total = 0.0;
    let mut count = 0usize;
    for r in 0..rows {
        let Some(t) = row_target(targets, r, vocab, ignore_index) else {
            continue;
        };
        let logp = log_softmax(&logits[r * vocab..(r + 1) * vocab]);
        let sum_logp: f64 = logp.iter().sum();
        total += -(1.0 - ls) * logp[t] - ls / vocab as f64 * sum_logp;
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

/// Gradient of [`cross_entropy`] with respect to the logits (`[rows, vocab]`),
/// scaled by `dloss = dL/dloss`:
/// `dlogits[r] = dloss / count * (softmax(logits[r]) - q_r)`, and zero for
/// ignored rows (`count` = number of non-ignored rows).
pub fn cross_entropy_backward(
    logits: &[f64],
    targets: &[i64],
    rows: usize,
    vocab: usize,
    ignore_index: i64,
    label_smoothing: f64,
    dloss: f64,
) -> Vec<f64> {
    check_sizes(logits, targets, rows, vocab);
    let ls = label_smoothing;
    let count = (0..rows)
        .filter(|&r| row_target(targets, r, vocab, ignore_index).is_some())
        .count();
    let mut dlogits = vec![0.0; rows * vocab];
    if count == 0 {
        return dlogits;
    }
    let row_scale = dloss / count as f64;
    for r in 0..rows {
        let Some(t) = row_target(targets, r, vocab, ignore_index) else {
            continue;
        };
        let logp = log_softmax(&logits[r * vocab..(r + 1) * vocab]);
        let out = &mut dlogits[r * vocab..(r + 1) * vocab];
        for (j, (o, lp)) in out.iter_mut().zip(&logp).enumerate() {
            let onehot = if j == t { 1.0 } else { 0.0 };
            let q = (1.0 - ls) * onehot + ls / vocab as f64;
            *o = row_scale * (lp.exp() - q);
        }
    }
    dlogits
}

fn check_sizes(logits: &[f64], targets: &[i64], rows: usize, vocab: usize) {
    assert_eq!(logits.len(), rows * vocab, "cross_entropy: logits size");
    assert_eq!(targets.len(), rows, "cross_entropy: targets size");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, numerical_grad, test_values};

    #[test]
    fn known_values() {
        // Uniform logits: loss = ln(vocab) whatever the target or smoothing.
        let loss = cross_entropy(&[0.0; 8], &[1, 3], 2, 4, -100, 0.0);
        assert!((loss - 4f64.ln()).abs() < 1e-12);
        let loss = cross_entropy(&[0.0; 8], &[1, 3], 2, 4, -100, 0.3);
        assert!((loss - 4f64.ln()).abs() < 1e-12);
        // Ignored rows do not count; all ignored gives 0.
        let logits = [2.0, 0.0, 0.0, 0.0, 5.0, -1.0];
        let one = cross_entropy(&logits[..3], &[0], 1, 3, -100, 0.0);
        let both = cross_entropy(&logits, &[0, -100], 2, 3, -100, 0.0);
        assert!((one - both).abs() < 1e-12);
        let expected = -(2f64.exp() / (2f64.exp() + 2.0)).ln();
        assert!((one - expected).abs() < 1e-12);
        assert_eq!(cross_entropy(&logits, &[-100, -100], 2, 3, -100, 0.0), 0.0);
        assert_eq!(
            cross_entropy_backward(&logits, &[-100, -100], 2, 3, -100, 0.0, 1.0),
            vec![0.0; 6]
        );
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (rows, vocab) = (4, 5);
        let logits: Vec<f64> = test_values(rows * vocab, 1)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let targets = [2, -1, 0, 4];
        for &ls in &[0.0, 0.1] {
            let f = |x: &[f64]| 1.7 * cross_entropy(x, &targets, rows, vocab, -1, ls);
            let num = numerical_grad(f, &logits, 1e-5);
            let grad = cross_entropy_backward(&logits, &targets, rows, vocab, -1, ls, 1.7);
            assert_close(&grad, &num, 1e-6);
            // The ignored row has exactly zero gradient.
            assert!(grad[vocab..2 * vocab].iter().all(|&g| g == 0.0));
        }
    }
}
