//! Layer normalization over the last axis.

/// LayerNorm of `x` (`[rows, cols]`) with per-column `gamma` and `beta` (`[cols]`):
///
/// `mean = (1/cols) sum_c x[c]`, `var = (1/cols) sum_c (x[c] - mean)^2`
/// (biased, as in PyTorch), `rstd = 1 / sqrt(var + eps)`,
/// `xhat = (x - mean) * rstd`, `y = xhat * gamma + beta`.
///
/// Returns `(y [rows, cols], mean [rows], rstd [rows])`; the backward pass
/// reuses `mean` and `rstd`.
pub fn layer_norm(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    rows: usize,
    cols: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    assert_eq!(x.len(), rows * cols, "layer_norm: x size");
    assert_eq!(gamma.len(), cols, "layer_norm: gamma size");
    assert_eq!(beta.len(), cols, "layer_norm: beta size");
    let mut y = vec![0.0; rows * cols];
    let mut means = vec![0.0; rows];
    let mut rstds = vec![0.0; rows];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for c in 0..cols {
            let xhat = (row[c] - mean) * rstd;
            y[r * cols + c] = xhat * gamma[c] + beta[c];
        }
        means[r] = mean;
        rstds[r] = rstd;
    }
    (y, means, rstds)
}

/// Gradients of [`layer_norm`] given `dy` (`[rows, cols]`).
///
/// With `g = dy * gamma` (gradient w.r.t. `xhat`), per row:
/// `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`;
/// summed over rows: `dgamma = sum dy * xhat`, `dbeta = sum dy`.
///
/// Returns `(dx [rows, cols], dgamma [cols], dbeta [cols])`.
pub fn layer_norm_backward(
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    rstd: &[f64],
    dy: &[f64],
    rows: usize,
    cols: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    assert_eq!(x.len(), rows * cols, "layer_norm_backward: x size");
    assert_eq!(dy.len(), rows * cols, "layer_norm_backward: dy size");
    assert_eq!(gamma.len(), cols, "layer_norm_backward: gamma size");
    assert_eq!(mean.len(), rows, "layer_norm_backward: mean size");
    assert_eq!(rstd.len(), rows, "layer_norm_backward: rstd size");
    let mut dx = vec![0.0; rows * cols];
    let mut dgamma = vec![0.0; cols];
    let mut dbeta = vec![0.0; cols];
    for r in 0..rows {
        let base = r * cols;
        let xhat: Vec<f64> = (0..cols)
            .map(|c| (x[base + c] - mean[r]) * rstd[r])
            .collect();
        let g: Vec<f64> = (0..cols).map(|c| dy[base + c] * gamma[c]).collect();
        let mean_g = g.iter().sum::<f64>() / cols as f64;
        let mean_g_xhat = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for c in 0..cols {
            dx[base + c] = rstd[r] * (g[c] - mean_g - xhat[c] * mean_g_xhat);
            dgamma[c] += dy[base + c] * xhat[c];
            dbeta[c] += dy[base + c];
        }
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn normalizes_rows() {
        let x = test_values(12, 1);
        let (y, mean, rstd) = layer_norm(&x, &[1.0; 4], &[0.0; 4], 3, 4, 0.0);
        for r in 0..3 {
            let row = &y[r * 4..(r + 1) * 4];
            let m = row.iter().sum::<f64>() / 4.0;
            let var = row.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 4.0;
            assert!(m.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
            assert!(rstd[r] > 0.0 && mean[r].is_finite());
        }
        // gamma and beta apply per column.
        let (y2, _, _) = layer_norm(&x, &[2.0; 4], &[1.0; 4], 3, 4, 0.0);
        let expected: Vec<f64> = y.iter().map(|v| 2.0 * v + 1.0).collect();
        assert_close(&y2, &expected, 1e-12);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (rows, cols, eps) = (3, 5, 1e-5);
        let x = test_values(rows * cols, 2);
        let gamma = test_values(cols, 3);
        let beta = test_values(cols, 4);
        let w = test_values(rows * cols, 5);
        let (_, mean, rstd) = layer_norm(&x, &gamma, &beta, rows, cols, eps);
        let (dx, dgamma, dbeta) = layer_norm_backward(&x, &gamma, &mean, &rstd, &w, rows, cols);
        let loss =
            |x: &[f64], g: &[f64], b: &[f64]| dot(&w, &layer_norm(x, g, b, rows, cols, eps).0);
        assert_close(
            &dx,
            &numerical_grad(|x| loss(x, &gamma, &beta), &x, 1e-5),
            1e-6,
        );
        assert_close(
            &dgamma,
            &numerical_grad(|g| loss(&x, g, &beta), &gamma, 1e-5),
            1e-6,
        );
        assert_close(
            &dbeta,
            &numerical_grad(|b| loss(&x, &gamma, b), &beta, 1e-5),
            1e-6,
        );
    }
}
