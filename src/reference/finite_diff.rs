//! Central finite differences and small helpers for gradient tests.

/// Gradient of the scalar function `f` at `x` by central differences:
/// `df/dx_i ~= (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`.
///
/// The error is O(eps^2) in the step plus O(rounding / eps); `eps = 1e-5`
/// is a good choice for smooth `f64` functions of moderate size.
pub fn numerical_grad(f: impl Fn(&[f64]) -> f64, x: &[f64], eps: f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    let mut grad = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let original = probe[i];
        probe[i] = original + eps;
        let plus = f(&probe);
        probe[i] = original - eps;
        let minus = f(&probe);
        probe[i] = original;
        grad.push((plus - minus) / (2.0 * eps));
    }
    grad
}

/// `n` deterministic pseudo-random values in `[-1, 1]`, from a 64-bit LCG
/// (Knuth's MMIX constants). Different seeds give different sequences.
/// Only meant for making test inputs; not a quality random generator.
pub fn test_values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Top 53 bits -> uniform in [0, 1), then map to [-1, 1).
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            2.0 * unit - 1.0
        })
        .collect()
}

/// Sum of elementwise products. Tests use `dot(weights, f(x))` to turn a
/// vector-valued op into a scalar loss whose gradient with respect to the
/// op's output is exactly `weights`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Panics unless `actual` and `expected` have the same length and every
/// pair satisfies `|a - e| <= tol * max(1, |e|)` (relative error for large
/// values, absolute error near zero).
pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "assert_close: length mismatch"
    );
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let bound = tol * e.abs().max(1.0);
        assert!(
            (a - e).abs() <= bound,
            "element {i}: actual {a}, expected {e}, |diff| {} > {bound}",
            (a - e).abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_of_cubic() {
        // f(x) = sum x^3  =>  df/dx = 3 x^2
        let x = test_values(5, 1);
        let grad = numerical_grad(|x| x.iter().map(|v| v * v * v).sum(), &x, 1e-5);
        let exact: Vec<f64> = x.iter().map(|v| 3.0 * v * v).collect();
        assert_close(&grad, &exact, 1e-8);
    }

    #[test]
    fn test_values_in_range_and_deterministic() {
        let a = test_values(1000, 7);
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(a, test_values(1000, 7));
        assert_ne!(a, test_values(1000, 8));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.1);
    }
}
