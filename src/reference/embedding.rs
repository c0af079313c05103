//! Embedding lookup (gather rows of a table) and its scatter-add backward.

/// `out[r] = table[ids[r]]`: `table` is `[vocab, dim]`, `ids` is `[n]`,
/// output is `[n, dim]`. Panics if an id is outside the table.
pub fn embedding(table: &[f64], ids: &[u32], dim: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        let start = id as usize * dim;
        out.extend_from_slice(&table[start..start + dim]);
    }
    out
}

/// Gradient of [`embedding`] w.r.t. the table (`[vocab, dim]`): each row of
/// `dout` (`[n, dim]`) is added into the row it was read from. Ids that
/// appear several times accumulate; unused rows stay zero.
pub fn embedding_backward(ids: &[u32], dout: &[f64], vocab: usize, dim: usize) -> Vec<f64> {
    assert_eq!(dout.len(), ids.len() * dim, "embedding_backward: dout size");
    let mut dtable = vec![0.0; vocab * dim];
    for (r, &id) in ids.iter().enumerate() {
        let start = id as usize * dim;
        for c in 0..dim {
            dtable[start + c] += dout[r * dim + c];
        }
    }
    dtable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn gathers_rows() {
        let table = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]; // [3, 2]
        assert_eq!(
            embedding(&table, &[2, 0, 2], 2),
            vec![20.0, 21.0, 0.0, 1.0, 20.0, 21.0]
        );
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (vocab, dim) = (5, 3);
        let ids = [1, 4, 1, 0];
        let table = test_values(vocab * dim, 1);
        let w = test_values(ids.len() * dim, 2);
        let num = numerical_grad(|t| dot(&w, &embedding(t, &ids, dim)), &table, 1e-5);
        assert_close(&embedding_backward(&ids, &w, vocab, dim), &num, 1e-6);
    }
}
