//! Row-wise softmax.

/// Softmax over the last axis of `x` (`[rows, cols]`):
/// `y[r, c] = exp(x[r, c] - max_r) / sum_j exp(x[r, j] - max_r)`.
/// Subtracting the row max changes nothing mathematically but keeps `exp`
/// from overflowing.
pub fn softmax(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(x.len(), rows * cols, "softmax: x size");
    let mut y = vec![0.0; x.len()];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let out = &mut y[r * cols..(r + 1) * cols];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v - max).exp();
            total += *o;
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    }
    y
}

/// Gradient of [`softmax`] from its output `y` and `dy = dL/dy`.
///
/// The Jacobian is `dy_i/dx_j = y_i (delta_ij - y_j)`, which gives
/// `dx = y * (dy - sum_j dy_j y_j)` per row.
pub fn softmax_backward(y: &[f64], dy: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(y.len(), rows * cols, "softmax_backward: y size");
    assert_eq!(dy.len(), rows * cols, "softmax_backward: dy size");
    let mut dx = vec![0.0; y.len()];
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let (y_row, dy_row) = (&y[span.clone()], &dy[span.clone()]);
        let inner: f64 = y_row.iter().zip(dy_row).map(|(a, b)| a * b).sum();
        for ((d, &yv), &g) in dx[span].iter_mut().zip(y_row).zip(dy_row) {
            *d = yv * (g - inner);
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn rows_sum_to_one_and_stable() {
        let x: Vec<f64> = test_values(12, 1).iter().map(|v| 5.0 * v).collect();
        let y = softmax(&x, 3, 4);
        for r in 0..3 {
            let s: f64 = y[r * 4..(r + 1) * 4].iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        // Huge inputs do not overflow; equal inputs give a uniform row.
        assert_close(&softmax(&[1000.0, 1000.0], 1, 2), &[0.5, 0.5], 1e-12);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (rows, cols) = (3, 5);
        let x = test_values(rows * cols, 2);
        let w = test_values(rows * cols, 3);
        let y = softmax(&x, rows, cols);
        let num = numerical_grad(|x| dot(&w, &softmax(x, rows, cols)), &x, 1e-5);
        assert_close(&softmax_backward(&y, &w, rows, cols), &num, 1e-6);
    }
}
