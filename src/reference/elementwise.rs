//! Elementwise ops: broadcast add/mul, scale, GELU, ReLU, dropout.

/// `out = x + y` with `y` broadcast over the leading dimensions of `x`.
///
/// `x` is viewed as `[rows, cols]` with `cols = y.len()`, `rows = x.len() / cols`;
/// `out[r, c] = x[r, c] + y[c]`. Typical use: adding a bias.
pub fn add(x: &[f64], y: &[f64]) -> Vec<f64> {
    check_broadcast(x.len(), y.len());
    x.iter()
        .enumerate()
        .map(|(i, xv)| xv + y[i % y.len()])
        .collect()
}

/// Gradients of [`add`]: `dx = dout`, and `dy[c] = sum_r dout[r, c]`
/// because every row used the same `y`.
pub fn add_backward(dout: &[f64], y_len: usize) -> (Vec<f64>, Vec<f64>) {
    check_broadcast(dout.len(), y_len);
    (dout.to_vec(), sum_rows(dout, y_len))
}

/// `out = x * y` with `y` broadcast like in [`add`]:
/// `out[r, c] = x[r, c] * y[c]`.
pub fn mul(x: &[f64], y: &[f64]) -> Vec<f64> {
    check_broadcast(x.len(), y.len());
    x.iter()
        .enumerate()
        .map(|(i, xv)| xv * y[i % y.len()])
        .collect()
}

/// Gradients of [`mul`]: `dx[r, c] = dout[r, c] * y[c]` and
/// `dy[c] = sum_r dout[r, c] * x[r, c]`.
pub fn mul_backward(x: &[f64], y: &[f64], dout: &[f64]) -> (Vec<f64>, Vec<f64>) {
    check_broadcast(x.len(), y.len());
    assert_eq!(x.len(), dout.len(), "mul_backward: dout size");
    let dx = mul(dout, y);
    let dout_x: Vec<f64> = dout.iter().zip(x).map(|(g, xv)| g * xv).collect();
    (dx, sum_rows(&dout_x, y.len()))
}

/// `out = s * x`. The op is linear, so its backward is the same op:
/// `dx = scale(dout, s)`.
pub fn scale(x: &[f64], s: f64) -> Vec<f64> {
    x.iter().map(|v| v * s).collect()
}

/// GELU, exact (PyTorch's `nn.GELU()`): `gelu(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`.
pub fn gelu(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| 0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2)))
        .collect()
}

/// Derivative of [`gelu`] times `dout`: `d/dx = Phi(x) + x phi(x)`, where
/// `phi(x) = exp(-x^2 / 2) / sqrt(2 pi)` is the normal density.
pub fn gelu_backward(x: &[f64], dout: &[f64]) -> Vec<f64> {
    assert_eq!(x.len(), dout.len(), "gelu_backward: dout size");
    let inv_sqrt_2pi = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    x.iter()
        .zip(dout)
        .map(|(&v, &g)| {
            let cdf = 0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
            g * (cdf + v * inv_sqrt_2pi * (-0.5 * v * v).exp())
        })
        .collect()
}

/// `sqrt(2 / pi)`, the constant inside the tanh GELU approximation.
const GELU_C: f64 = 0.797_884_560_802_865_4;
/// Cubic coefficient of the tanh GELU approximation.
const GELU_A: f64 = 0.044715;

/// GELU, tanh approximation (GPT-2; PyTorch's `nn.GELU(approximate="tanh")`):
/// `gelu(x) = 0.5 x (1 + tanh(u))`, `u = sqrt(2/pi) (x + 0.044715 x^3)`.
pub fn gelu_tanh(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            let u = GELU_C * (v + GELU_A * v * v * v);
            0.5 * v * (1.0 + u.tanh())
        })
        .collect()
}

/// Exact derivative of [`gelu_tanh`], times `dout`:
/// `d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)`,
/// where `t = tanh(u)`.
pub fn gelu_tanh_backward(x: &[f64], dout: &[f64]) -> Vec<f64> {
    assert_eq!(x.len(), dout.len(), "gelu_tanh_backward: dout size");
    x.iter()
        .zip(dout)
        .map(|(&v, &g)| {
            let t = (GELU_C * (v + GELU_A * v * v * v)).tanh();
            let du_dx = GELU_C * (1.0 + 3.0 * GELU_A * v * v);
            g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du_dx)
        })
        .collect()
}

/// `relu(x) = max(x, 0)`.
pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// `dx = dout` where `x > 0`, else `0` (the gradient at exactly 0 is taken as 0).
pub fn relu_backward(x: &[f64], dout: &[f64]) -> Vec<f64> {
    assert_eq!(x.len(), dout.len(), "relu_backward: dout size");
    x.iter()
        .zip(dout)
        .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
        .collect()
}

/// PCG-style integer hash (Jarzynski & Olano, "Hash Functions for GPU
/// Rendering", 2020). Pure 32-bit wrapping arithmetic, so the WGSL shader
/// reproduces it bit for bit.
pub fn pcg_hash(x: u32) -> u32 {
    let state = x.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// Whether element `index` survives dropout with drop probability `p`.
///
/// Counter-based: the decision depends only on `(seed, index)`, so forward
/// and backward (and CPU and GPU) agree without storing a mask. The top 24
/// bits of the hash give a uniform `u` in `[0, 1)`, exact in `f32`; the
/// element is kept when `u >= p`.
pub fn dropout_keep(seed: u32, index: u32, p: f32) -> bool {
    let u = pcg_hash(pcg_hash(seed) ^ index);
    ((u >> 8) as f32) * (1.0 / 16777216.0) >= p
}

/// Inverted dropout: kept elements are scaled by `1 / (1 - p)` so the
/// expected value is unchanged; dropped elements become 0.
/// Element `i` uses `dropout_keep(seed, i as u32, p)`.
pub fn dropout(x: &[f64], p: f32, seed: u32) -> Vec<f64> {
    let keep_scale = 1.0 / (1.0 - f64::from(p));
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout_keep(seed, i as u32, p) {
                v * keep_scale
            } else {
                0.0
            }
        })
        .collect()
}

/// Dropout is linear in `x` for a fixed mask, so the backward applies the
/// same mask and scale to `dout`.
pub fn dropout_backward(dout: &[f64], p: f32, seed: u32) -> Vec<f64> {
    dropout(dout, p, seed)
}

/// `x` viewed as `[len / cols, cols]`; returns the `[cols]` column sums.
fn sum_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; cols];
    for (i, v) in x.iter().enumerate() {
        out[i % cols] += v;
    }
    out
}

fn check_broadcast(x_len: usize, y_len: usize) {
    assert!(
        y_len > 0 && x_len.is_multiple_of(y_len),
        "broadcast: y length {y_len} must divide x length {x_len}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn add_and_mul_known_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        let y = [10.0, 20.0, 30.0];
        assert_eq!(add(&x, &y), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        assert_eq!(mul(&x, &y), vec![10.0, 40.0, 90.0, 40.0, 100.0, 180.0]);
    }

    #[test]
    fn add_broadcast_backward_matches_finite_differences() {
        let x = test_values(12, 1);
        let y = test_values(4, 2);
        let w = test_values(12, 3);
        let (dx, dy) = add_backward(&w, 4);
        assert_close(
            &dx,
            &numerical_grad(|x| dot(&w, &add(x, &y)), &x, 1e-5),
            1e-6,
        );
        assert_close(
            &dy,
            &numerical_grad(|y| dot(&w, &add(&x, y)), &y, 1e-5),
            1e-6,
        );
    }

    #[test]
    fn mul_broadcast_backward_matches_finite_differences() {
        let x = test_values(12, 4);
        let y = test_values(3, 5);
        let w = test_values(12, 6);
        let (dx, dy) = mul_backward(&x, &y, &w);
        assert_close(
            &dx,
            &numerical_grad(|x| dot(&w, &mul(x, &y)), &x, 1e-5),
            1e-6,
        );
        assert_close(
            &dy,
            &numerical_grad(|y| dot(&w, &mul(&x, y)), &y, 1e-5),
            1e-6,
        );
    }

    #[test]
    fn scale_backward_is_scale() {
        let x = test_values(5, 7);
        let w = test_values(5, 8);
        let num = numerical_grad(|x| dot(&w, &scale(x, -2.5)), &x, 1e-5);
        assert_close(&scale(&w, -2.5), &num, 1e-6);
    }

    #[test]
    fn gelu_known_values_and_gradient() {
        // x Phi(x): gelu(1) = Phi(1) = 0.8413447461, gelu(-1) = -Phi(-1) = -0.1586552539
        // (torch.nn.functional.gelu gives the same).
        let y = gelu(&[0.0, 1.0, -1.0, 10.0]);
        // Exact GELU, x Phi(x): gelu(1) = Phi(1) = 0.8413447461, gelu(-1) = -Phi(-1).
        assert_close(&y, &[0.0, 0.841_344_746_1, -0.158_655_253_9, 10.0], 1e-9);
        // The tanh approximation: 0.8411919906 and -0.1588080094.
        let t = gelu_tanh(&[1.0, -1.0]);
        assert_close(&t, &[0.841_191_990_6, -0.158_808_009_4], 1e-9);
        let x: Vec<f64> = test_values(9, 9).iter().map(|v| 3.0 * v).collect();
        let w = test_values(9, 10);
        let num = numerical_grad(|x| dot(&w, &gelu(x)), &x, 1e-5);
        assert_close(&gelu_backward(&x, &w), &num, 1e-6);
    }

    #[test]
    fn gelu_tanh_known_values_and_gradient() {
        // Known tanh-GELU values: gelu(1) = 0.8411919906, gelu(-1) = -0.1588080094.
        let y = gelu_tanh(&[0.0, 1.0, -1.0, 10.0]);
        assert_close(&y, &[0.0, 0.841_191_990_6, -0.158_808_009_4, 10.0], 1e-9);
        let x: Vec<f64> = test_values(9, 9).iter().map(|v| 3.0 * v).collect();
        let w = test_values(9, 10);
        let num = numerical_grad(|x| dot(&w, &gelu_tanh(x)), &x, 1e-5);
        assert_close(&gelu_tanh_backward(&x, &w), &num, 1e-6);
    }

    #[test]
    fn relu_values_and_gradient() {
        assert_eq!(relu(&[-1.0, 0.0, 2.0]), vec![0.0, 0.0, 2.0]);
        assert_eq!(
            relu_backward(&[-1.0, 0.0, 2.0], &[5.0, 5.0, 5.0]),
            vec![0.0, 0.0, 5.0]
        );
        // Finite differences are fine away from the kink at 0.
        let x: Vec<f64> = test_values(10, 11)
            .into_iter()
            .filter(|v| v.abs() > 1e-3)
            .collect();
        let w = test_values(x.len(), 12);
        let num = numerical_grad(|x| dot(&w, &relu(x)), &x, 1e-5);
        assert_close(&relu_backward(&x, &w), &num, 1e-6);
    }

    #[test]
    fn pcg_hash_pinned_values() {
        // Pinned so the WGSL port can be checked bit for bit
        // (values computed independently in Python).
        assert_eq!(pcg_hash(0), 129708002);
        assert_eq!(pcg_hash(1), 2831084092);
        assert_eq!(pcg_hash(12345), 4099845390);
        assert_eq!(pcg_hash(pcg_hash(42) ^ 7), 1940953008);
        let mask: Vec<bool> = (0..8).map(|i| dropout_keep(42, i, 0.5)).collect();
        assert_eq!(
            mask,
            vec![true, false, false, true, true, false, true, false]
        );
    }

    #[test]
    fn dropout_properties() {
        let x = vec![1.0; 20000];
        // p = 0 keeps everything unscaled.
        assert_eq!(dropout(&x, 0.0, 3), x);
        // About (1 - p) of elements survive, each scaled to 1 / (1 - p).
        let y = dropout(&x, 0.25, 3);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / x.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept fraction {kept}");
        assert!(y
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
        // Different seeds give different masks.
        assert_ne!(y, dropout(&x, 0.25, 4));
        // Backward uses the same mask: it is the Jacobian-transpose of a linear map.
        let xs = test_values(16, 13);
        let w = test_values(16, 14);
        let num = numerical_grad(|x| dot(&w, &dropout(x, 0.5, 9)), &xs, 1e-5);
        assert_close(&dropout_backward(&w, 0.5, 9), &num, 1e-6);
    }
}
