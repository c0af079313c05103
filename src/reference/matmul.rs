//! Batched matrix multiply with optional transposes and a shared right operand.

/// Position of logical element `A[i, p]` (A is `[m, k]`) in storage.
/// Stored as `[m, k]` normally, or as `[k, m]` when `trans`.
fn a_index(i: usize, p: usize, m: usize, k: usize, trans: bool) -> usize {
    if trans {
        p * m + i
    } else {
        i * k + p
    }
}

/// Position of logical element `B[p, j]` (B is `[k, n]`) in storage.
/// Stored as `[k, n]` normally, or as `[n, k]` when `trans`.
fn b_index(p: usize, j: usize, k: usize, n: usize, trans: bool) -> usize {
    if trans {
        j * k + p
    } else {
        p * n + j
    }
}

/// `C[bi] = op(A[bi]) @ op(B[bi])` for `bi` in `0..batch`.
///
/// - `a`: `batch` matrices, each logically `[m, k]` (stored `[k, m]` if `trans_a`).
/// - `b`: `batch` matrices (or one if `broadcast_b`), each logically `[k, n]`
///   (stored `[n, k]` if `trans_b`).
/// - returns `C`: `[batch, m, n]`, `C[i, j] = sum_p A[i, p] * B[p, j]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f64],
    b: &[f64],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    broadcast_b: bool,
) -> Vec<f64> {
    check_sizes(a, b, batch, m, k, n, broadcast_b);
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let a_mat = &a[bi * m * k..(bi + 1) * m * k];
        let b_off = if broadcast_b { 0 } else { bi * k * n };
        let b_mat = &b[b_off..b_off + k * n];
        let c_mat = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    acc +=
                        a_mat[a_index(i, p, m, k, trans_a)] * b_mat[b_index(p, j, k, n, trans_b)];
                }
                c_mat[i * n + j] = acc;
            }
        }
    }
    c
}

/// Gradients of [`matmul`] given `dc = dL/dC` (`[batch, m, n]`).
///
/// Logically `dA = dC @ B^T` and `dB = A^T @ dC`; each element is written
/// back to wherever it lives in storage, so `da` has the layout of `a` and
/// `db` the layout of `b`. With `broadcast_b`, the single `B` was used by
/// every batch, so its gradient is summed over the batch.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward(
    a: &[f64],
    b: &[f64],
    dc: &[f64],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    broadcast_b: bool,
) -> (Vec<f64>, Vec<f64>) {
    check_sizes(a, b, batch, m, k, n, broadcast_b);
    assert_eq!(dc.len(), batch * m * n, "matmul_backward: dc size");
    let mut da = vec![0.0; a.len()];
    let mut db = vec![0.0; b.len()];
    for bi in 0..batch {
        let a_off = bi * m * k;
        let b_off = if broadcast_b { 0 } else { bi * k * n };
        let c_off = bi * m * n;
        // C[i, j] = sum_p A[i, p] B[p, j], so each product term contributes
        // dC[i, j] * B[p, j] to dA[i, p] and A[i, p] * dC[i, j] to dB[p, j].
        for i in 0..m {
            for j in 0..n {
                let g = dc[c_off + i * n + j];
                for p in 0..k {
                    let ai = a_off + a_index(i, p, m, k, trans_a);
                    let bj = b_off + b_index(p, j, k, n, trans_b);
                    da[ai] += g * b[bj];
                    db[bj] += a[ai] * g;
                }
            }
        }
    }
    (da, db)
}

fn check_sizes(
    a: &[f64],
    b: &[f64],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    broadcast_b: bool,
) {
    assert_eq!(a.len(), batch * m * k, "matmul: a has wrong size");
    let b_count = if broadcast_b { 1 } else { batch };
    assert_eq!(b.len(), b_count * k * n, "matmul: b has wrong size");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    /// Plain transpose of a `[rows, cols]` matrix.
    fn transpose(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        let mut t = vec![0.0; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    #[test]
    fn identity_and_known_values() {
        let a = test_values(6, 1); // [2, 3]
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_close(
            &matmul(&a, &eye, 1, 2, 3, 3, false, false, false),
            &a,
            1e-12,
        );
        // [[1, 2], [3, 4]] @ [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
        let c = matmul(
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            1,
            2,
            2,
            2,
            false,
            false,
            false,
        );
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn transposed_storage_matches_explicit_transpose() {
        let (m, k, n) = (2, 3, 4);
        let a = test_values(m * k, 2);
        let b = test_values(k * n, 3);
        let plain = matmul(&a, &b, 1, m, k, n, false, false, false);
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        assert_close(
            &matmul(&at, &bt, 1, m, k, n, true, true, false),
            &plain,
            1e-12,
        );
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (batch, m, k, n) = (2, 2, 3, 4);
        for &trans_a in &[false, true] {
            for &trans_b in &[false, true] {
                for &broadcast_b in &[false, true] {
                    let a = test_values(batch * m * k, 4);
                    let b_len = if broadcast_b { k * n } else { batch * k * n };
                    let b = test_values(b_len, 5);
                    let w = test_values(batch * m * n, 6);
                    let run = |a: &[f64], b: &[f64]| {
                        matmul(a, b, batch, m, k, n, trans_a, trans_b, broadcast_b)
                    };
                    let (da, db) =
                        matmul_backward(&a, &b, &w, batch, m, k, n, trans_a, trans_b, broadcast_b);
                    let num_da = numerical_grad(|a| dot(&w, &run(a, &b)), &a, 1e-5);
                    let num_db = numerical_grad(|b| dot(&w, &run(&a, b)), &b, 1e-5);
                    assert_close(&da, &num_da, 1e-6);
                    assert_close(&db, &num_db, 1e-6);
                }
            }
        }
    }
}
