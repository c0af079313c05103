//! x @ W^T + bias with W rounded to half precision, and the gradient of x: the twin of
//! `ops::matmul_half` (W frozen, so no gradient for it).

/// W's values as the kernel sees them: each rounded to the nearest IEEE half.
pub fn round_to_half(w: &[f64]) -> Vec<f64> {
    w.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect()
}

/// x [m, k], w [n, k], bias [n] -> [m, n]: out[i, j] = sum_kk x[i, kk] half(w[j, kk]) + bias[j].
pub fn matmul_half(
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    let w = round_to_half(w);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|kk| x[i * k + kk] * w[j * k + kk]).sum();
            out[i * n + j] = dot + bias.map_or(0.0, |b| b[j]);
        }
    }
    out
}

/// dx [m, k] from dout [m, n]: dx[i, kk] = sum_j dout[i, j] half(w[j, kk]).
pub fn matmul_half_backward(dout: &[f64], w: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let w = round_to_half(w);
    let mut dx = vec![0.0; m * k];
    for i in 0..m {
        for kk in 0..k {
            dx[i * k + kk] = (0..n).map(|j| dout[i * n + j] * w[j * k + kk]).sum();
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::numerical_grad;

    #[test]
    fn backward_matches_finite_differences() {
        let (m, k, n) = (2, 3, 4);
        let x: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let w: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.91).cos()).collect();
        let dout: Vec<f64> = (0..m * n).map(|i| (i as f64 * 0.53).sin()).collect();
        let loss = |x: &[f64]| -> f64 {
            let y = matmul_half(x, &w, None, m, k, n);
            y.iter().zip(&dout).map(|(a, b)| a * b).sum()
        };
        let want = numerical_grad(loss, &x, 1e-6);
        let got = matmul_half_backward(&dout, &w, m, k, n);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn weights_are_rounded_to_half() {
        // 1 + 2^-12 is not a half: it rounds to 1.
        let y = matmul_half(&[1.0], &[1.0 + 2f64.powi(-12)], Some(&[0.5]), 1, 1, 1);
        assert_eq!(y, vec![1.5]);
    }
}
