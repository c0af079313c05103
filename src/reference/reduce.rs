//! Sum and mean along one axis.

/// Splits `shape` around `axis` into `(outer, len, inner)`:
/// the tensor is viewed as `[outer, len, inner]` with `len = shape[axis]`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    assert!(
        axis < shape.len(),
        "reduce: axis {axis} out of range for rank {}",
        shape.len()
    );
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Sum over `axis`. `x` has shape `shape`; the output has `shape` with that
/// axis removed: viewing `x` as `[outer, len, inner]`,
/// `out[o, i] = sum_a x[o, a, i]`.
pub fn sum_axis(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let (outer, len, inner) = split(shape, axis);
    assert_eq!(
        x.len(),
        outer * len * inner,
        "sum_axis: x does not match shape"
    );
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for a in 0..len {
            for i in 0..inner {
                out[o * inner + i] += x[(o * len + a) * inner + i];
            }
        }
    }
    out
}

/// Mean over `axis` (sum divided by `shape[axis]`; NaN if that axis is empty).
pub fn mean_axis(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let len = shape[axis] as f64;
    sum_axis(x, shape, axis)
        .into_iter()
        .map(|v| v / len)
        .collect()
}

/// Gradient of [`sum_axis`]: every input element contributed once to its
/// output, so `dx[o, a, i] = dout[o, i]` (broadcast back along `axis`).
/// Returns a tensor of shape `shape`.
pub fn sum_axis_backward(dout: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let (outer, len, inner) = split(shape, axis);
    assert_eq!(dout.len(), outer * inner, "sum_axis_backward: dout size");
    let mut dx = vec![0.0; outer * len * inner];
    for o in 0..outer {
        for a in 0..len {
            for i in 0..inner {
                dx[(o * len + a) * inner + i] = dout[o * inner + i];
            }
        }
    }
    dx
}

/// Gradient of [`mean_axis`]: `dx[o, a, i] = dout[o, i] / shape[axis]`.
pub fn mean_axis_backward(dout: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let len = shape[axis] as f64;
    sum_axis_backward(dout, shape, axis)
        .into_iter()
        .map(|v| v / len)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn known_values() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        assert_eq!(sum_axis(&x, &[2, 3], 0), vec![5.0, 7.0, 9.0]);
        assert_eq!(sum_axis(&x, &[2, 3], 1), vec![6.0, 15.0]);
        assert_eq!(mean_axis(&x, &[2, 3], 1), vec![2.0, 5.0]);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let shape = [2, 3, 4];
        let x = test_values(24, 1);
        for axis in 0..3 {
            let out_len = 24 / shape[axis];
            let w = test_values(out_len, 2 + axis as u64);
            let num = numerical_grad(|x| dot(&w, &sum_axis(x, &shape, axis)), &x, 1e-5);
            assert_close(&sum_axis_backward(&w, &shape, axis), &num, 1e-6);
            let num = numerical_grad(|x| dot(&w, &mean_axis(x, &shape, axis)), &x, 1e-5);
            assert_close(&mean_axis_backward(&w, &shape, axis), &num, 1e-6);
        }
    }
}
