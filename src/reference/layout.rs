//! Data-movement ops: permute (general transpose), concat and slice.

/// Row-major strides of `shape`: `strides[i] = prod(shape[i+1..])`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Panics unless `perm` is a permutation of `0..rank`.
fn check_perm(shape: &[usize], perm: &[usize]) {
    assert_eq!(
        perm.len(),
        shape.len(),
        "permute: perm rank {} != shape rank {}",
        perm.len(),
        shape.len()
    );
    let mut seen = vec![false; perm.len()];
    for &p in perm {
        assert!(
            p < perm.len() && !seen[p],
            "permute: {perm:?} is not a permutation"
        );
        seen[p] = true;
    }
}

/// Reorders the axes of `x` (shape `shape`): output axis `i` is input axis
/// `perm[i]`, so the output shape is `[shape[perm[0]], shape[perm[1]], ...]`
/// and `out[j_0, .., j_{r-1}] = x[i]` where `i[perm[a]] = j_a`.
/// Works for any rank (the GPU kernel supports up to 6).
pub fn permute(x: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    check_perm(shape, perm);
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "permute: x does not match shape"
    );
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    // Stride in `x` for a unit step along each output axis.
    let step: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(x.len());
    let mut index = vec![0usize; shape.len()]; // current output multi-index
    for _ in 0..x.len() {
        let src: usize = index.iter().zip(&step).map(|(j, s)| j * s).sum();
        out.push(x[src]);
        // Advance the output multi-index like an odometer (last axis fastest).
        for a in (0..index.len()).rev() {
            index[a] += 1;
            if index[a] < out_shape[a] {
                break;
            }
            index[a] = 0;
        }
    }
    out
}

/// Gradient of [`permute`]: moving data is undone by the inverse permutation.
/// `dout` has the permuted shape; the result has the input shape `shape`.
pub fn permute_backward(dout: &[f64], shape: &[usize], perm: &[usize]) -> Vec<f64> {
    check_perm(shape, perm);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    permute(dout, &out_shape, &inverse)
}

/// Views `shape` as `[outer, shape[axis], inner]` and returns `(outer, inner)`.
fn outer_inner(shape: &[usize], axis: usize) -> (usize, usize) {
    assert!(
        axis < shape.len(),
        "layout: axis {axis} out of range for rank {}",
        shape.len()
    );
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

/// Concatenates `parts` along `axis`. `shapes[i]` is the shape of
/// `parts[i]`; all shapes must agree except along `axis`. The output shape
/// is the common shape with `axis` length = sum of the parts' lengths.
pub fn concat(parts: &[&[f64]], shapes: &[Vec<usize>], axis: usize) -> Vec<f64> {
    assert_eq!(
        parts.len(),
        shapes.len(),
        "concat: parts and shapes differ in count"
    );
    let Some(first) = shapes.first() else {
        return Vec::new();
    };
    for (part, shape) in parts.iter().zip(shapes) {
        assert_eq!(shape.len(), first.len(), "concat: rank mismatch");
        for a in 0..shape.len() {
            assert!(
                a == axis || shape[a] == first[a],
                "concat: shapes {first:?} and {shape:?} differ off axis"
            );
        }
        assert_eq!(
            part.len(),
            shape.iter().product::<usize>(),
            "concat: part does not match shape"
        );
    }
    let (outer, inner) = outer_inner(first, axis);
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    // For each outer index, append each part's contiguous [len_i, inner] block.
    for o in 0..outer {
        for (part, shape) in parts.iter().zip(shapes) {
            let block = shape[axis] * inner;
            out.extend_from_slice(&part[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Gradient of [`concat()`]: each part receives its own slice of `dout`.
pub fn concat_backward(dout: &[f64], shapes: &[Vec<usize>], axis: usize) -> Vec<Vec<f64>> {
    let Some(first) = shapes.first() else {
        return Vec::new();
    };
    let mut out_shape = first.clone();
    out_shape[axis] = shapes.iter().map(|s| s[axis]).sum();
    let mut start = 0;
    shapes
        .iter()
        .map(|s| {
            let part = slice(dout, &out_shape, axis, start, s[axis]);
            start += s[axis];
            part
        })
        .collect()
}

/// `concat([x's rows in the order `rows`, y], axis)`: row r of the first part is row
/// `rows[r]` of x (shape `x_shape`, rows along axis 0); y (shape `y_shape`) has `rows.len()`
/// rows already in the output's order.
pub fn gather_concat(
    x: &[f64],
    x_shape: &[usize],
    rows: &[usize],
    y: &[f64],
    y_shape: &[usize],
    axis: usize,
) -> Vec<f64> {
    let per_row: usize = x_shape[1..].iter().product();
    let gathered: Vec<f64> = rows
        .iter()
        .flat_map(|&r| x[r * per_row..(r + 1) * per_row].iter().copied())
        .collect();
    let mut gathered_shape = x_shape.to_vec();
    gathered_shape[0] = rows.len();
    concat(&[&gathered, y], &[gathered_shape, y_shape.to_vec()], axis)
}

/// Gradients of [`gather_concat()`] for x and y: y's is its slice of `dout`; row i of x's sums
/// the gradient rows of every output row that took it.
pub fn gather_concat_backward(
    dout: &[f64],
    x_shape: &[usize],
    rows: &[usize],
    y_shape: &[usize],
    axis: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut gathered_shape = x_shape.to_vec();
    gathered_shape[0] = rows.len();
    let parts = concat_backward(dout, &[gathered_shape, y_shape.to_vec()], axis);
    let per_row: usize = x_shape[1..].iter().product();
    let mut dx = vec![0.0; x_shape[0] * per_row];
    for (r, &source) in rows.iter().enumerate() {
        for (d, g) in dx[source * per_row..(source + 1) * per_row]
            .iter_mut()
            .zip(&parts[0][r * per_row..(r + 1) * per_row])
        {
            *d += g;
        }
    }
    (dx, parts[1].clone())
}

/// Elements `start..start + len` along `axis` of `x` (shape `shape`); the
/// output has `shape` with `axis` length `len`.
pub fn slice(x: &[f64], shape: &[usize], axis: usize, start: usize, len: usize) -> Vec<f64> {
    let (outer, inner) = outer_inner(shape, axis);
    let full = shape[axis];
    assert!(
        start + len <= full,
        "slice: {start}..{} exceeds axis length {full}",
        start + len
    );
    assert_eq!(
        x.len(),
        outer * full * inner,
        "slice: x does not match shape"
    );
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let begin = (o * full + start) * inner;
        out.extend_from_slice(&x[begin..begin + len * inner]);
    }
    out
}

/// Gradient of [`slice()`]: `dout` is written back into its place in a tensor
/// of the input shape `shape`; everything outside the slice is zero.
pub fn slice_backward(
    dout: &[f64],
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
) -> Vec<f64> {
    let (outer, inner) = outer_inner(shape, axis);
    let full = shape[axis];
    assert!(
        start + len <= full,
        "slice_backward: {start}..{} exceeds axis length {full}",
        start + len
    );
    assert_eq!(dout.len(), outer * len * inner, "slice_backward: dout size");
    let mut dx = vec![0.0; outer * full * inner];
    for o in 0..outer {
        let begin = (o * full + start) * inner;
        dx[begin..begin + len * inner]
            .copy_from_slice(&dout[o * len * inner..(o + 1) * len * inner]);
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn permute_transpose_and_round_trip() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        assert_eq!(
            permute(&x, &[2, 3], &[1, 0]),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        let shape = [2, 3, 1, 4, 2, 3];
        let perm = [3, 0, 5, 2, 1, 4];
        let x = test_values(shape.iter().product(), 1);
        let y = permute(&x, &shape, &perm);
        assert_eq!(permute_backward(&y, &shape, &perm), x);
        // Spot-check one element: out[j] = x[i] with i[perm[a]] = j[a].
        // Output shape [4, 2, 3, 1, 3, 2]; j = [1, 1, 2, 0, 0, 1] -> i = [1, 0, 0, 1, 1, 2].
        let j = [1, 1, 2, 0, 0, 1];
        let out_strides = strides(&[4, 2, 3, 1, 3, 2]);
        let i = [1, 0, 0, 1, 1, 2];
        let in_strides = strides(&shape);
        let oj: usize = j.iter().zip(&out_strides).map(|(a, b)| a * b).sum();
        let xi: usize = i.iter().zip(&in_strides).map(|(a, b)| a * b).sum();
        assert_eq!(y[oj], x[xi]);
    }

    #[test]
    fn permute_backward_matches_finite_differences() {
        let shape = [2, 3, 4];
        let perm = [2, 0, 1];
        let x = test_values(24, 2);
        let w = test_values(24, 3);
        let num = numerical_grad(|x| dot(&w, &permute(x, &shape, &perm)), &x, 1e-5);
        assert_close(&permute_backward(&w, &shape, &perm), &num, 1e-6);
    }

    #[test]
    fn concat_and_slice_are_inverse() {
        let a = [1.0, 2.0, 3.0, 4.0]; // [2, 2]
        let b = [5.0, 6.0]; // [2, 1]
        let shapes = vec![vec![2, 2], vec![2, 1]];
        let c = concat(&[&a, &b], &shapes, 1);
        assert_eq!(c, vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
        assert_eq!(slice(&c, &[2, 3], 1, 0, 2), a.to_vec());
        assert_eq!(slice(&c, &[2, 3], 1, 2, 1), b.to_vec());
        assert_eq!(
            concat(&[&a, &b[..]], &[vec![2, 2], vec![1, 2]], 0),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(
            concat_backward(&c, &shapes, 1),
            vec![a.to_vec(), b.to_vec()]
        );
    }

    #[test]
    fn slice_and_concat_backward_match_finite_differences() {
        let shape = [2, 5, 3];
        let x = test_values(30, 4);
        let w = test_values(2 * 2 * 3, 5);
        let num = numerical_grad(|x| dot(&w, &slice(x, &shape, 1, 2, 2)), &x, 1e-5);
        assert_close(&slice_backward(&w, &shape, 1, 2, 2), &num, 1e-6);

        let shapes = vec![vec![2, 1, 3], vec![2, 2, 3]];
        let a = test_values(6, 6);
        let b = test_values(12, 7);
        let w = test_values(18, 8);
        let grads = concat_backward(&w, &shapes, 1);
        let num_a = numerical_grad(|a| dot(&w, &concat(&[a, &b], &shapes, 1)), &a, 1e-5);
        let num_b = numerical_grad(|b| dot(&w, &concat(&[&a, b], &shapes, 1)), &b, 1e-5);
        assert_close(&grads[0], &num_a, 1e-6);
        assert_close(&grads[1], &num_b, 1e-6);
    }
}
