//! Scaled dot-product attention with causal and key-length masks.

/// Whether query `i` may attend to key `j`.
///
/// - `key_len`: keys at `j >= key_len` are padding and masked.
/// - `causal`: masks `j > i + (tk - tq)`. The mask is aligned to the
///   bottom-right corner, so with `tq < tk` (queries are the last `tq`
///   positions, e.g. incremental decoding with `tq = 1`) the last query
///   sees every key. Written as `j + tq > i + tk` to avoid negative numbers.
pub fn key_visible(
    i: usize,
    j: usize,
    tq: usize,
    tk: usize,
    causal: bool,
    key_len: Option<usize>,
) -> bool {
    if let Some(len) = key_len {
        if j >= len {
            return false;
        }
    }
    !(causal && j + tq > i + tk)
}

/// Attention over `b` batches and `h` heads.
///
/// Shapes: `q` `[b, h, tq, d]`, `k` and `v` `[b, h, tk, d]`;
/// `key_lens` (optional) `[b]`, one valid key length per batch.
///
/// Per `(batch, head)`: `s[i, j] = q_i . k_j / sqrt(d)`; masked keys get
/// probability 0 and the rest share a softmax: `p[i, :] = softmax(s[i, visible])`;
/// `out_i = sum_j p[i, j] v_j`. A query with every key masked gets all-zero
/// probabilities and a zero output (not NaN).
///
/// Returns `(out [b, h, tq, d], probs [b, h, tq, tk])`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    causal: bool,
    key_lens: Option<&[usize]>,
) -> (Vec<f64>, Vec<f64>) {
    check_sizes(q, k, v, b, h, tq, tk, d);
    if let Some(lens) = key_lens {
        assert_eq!(
            lens.len(),
            b,
            "attention: key_lens must have one entry per batch"
        );
    }
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; b * h * tq * d];
    let mut probs = vec![0.0; b * h * tq * tk];
    for bi in 0..b {
        let key_len = key_lens.map(|lens| lens[bi]);
        for hi in 0..h {
            let bh = bi * h + hi;
            let (q_base, kv_base) = (bh * tq * d, bh * tk * d);
            for i in 0..tq {
                let q_row = &q[q_base + i * d..q_base + (i + 1) * d];
                let p_row = &mut probs[(bh * tq + i) * tk..(bh * tq + i + 1) * tk];
                // Scores of the visible keys; masked keys stay at probability 0.
                let mut max = f64::NEG_INFINITY;
                for (j, p) in p_row.iter_mut().enumerate() {
                    if key_visible(i, j, tq, tk, causal, key_len) {
                        let k_row = &k[kv_base + j * d..kv_base + (j + 1) * d];
                        *p = scale * q_row.iter().zip(k_row).map(|(a, c)| a * c).sum::<f64>();
                        max = max.max(*p);
                    }
                }
                // Stable softmax over the visible keys only.
                let mut total = 0.0;
                for (j, p) in p_row.iter_mut().enumerate() {
                    if key_visible(i, j, tq, tk, causal, key_len) {
                        *p = (*p - max).exp();
                        total += *p;
                    }
                }
                if total == 0.0 {
                    continue; // every key masked: probabilities and output stay zero
                }
                for p in p_row.iter_mut() {
                    *p /= total;
                }
                // out_i = sum_j p[i, j] v_j
                let o_row = &mut out[q_base + i * d..q_base + (i + 1) * d];
                for (j, &p) in p_row.iter().enumerate() {
                    let v_row = &v[kv_base + j * d..kv_base + (j + 1) * d];
                    for (o, &vv) in o_row.iter_mut().zip(v_row) {
                        *o += p * vv;
                    }
                }
            }
        }
    }
    (out, probs)
}

/// Gradients of [`attention`] from the saved `probs` and `dout` (`[b, h, tq, d]`).
///
/// Per `(batch, head)`, with `c = 1 / sqrt(d)`:
/// ```text
/// dv_j   = sum_i p[i, j] dout_i
/// dp[i,j] = dout_i . v_j
/// ds[i,j] = p[i, j] (dp[i, j] - sum_l p[i, l] dp[i, l])     (softmax backward)
/// dq_i   = c sum_j ds[i, j] k_j
/// dk_j   = c sum_i ds[i, j] q_i
/// ```
/// Masked keys have `p = 0`, hence `ds = 0`, so the mask needs no separate
/// handling and fully-masked rows contribute nothing.
///
/// Returns `(dq, dk, dv)` with the shapes of `q`, `k`, `v`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    probs: &[f64],
    dout: &[f64],
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    check_sizes(q, k, v, b, h, tq, tk, d);
    assert_eq!(
        probs.len(),
        b * h * tq * tk,
        "attention_backward: probs size"
    );
    assert_eq!(dout.len(), b * h * tq * d, "attention_backward: dout size");
    let scale = 1.0 / (d as f64).sqrt();
    let mut dq = vec![0.0; q.len()];
    let mut dk = vec![0.0; k.len()];
    let mut dv = vec![0.0; v.len()];
    for bh in 0..b * h {
        let (q_base, kv_base) = (bh * tq * d, bh * tk * d);
        for i in 0..tq {
            let p_row = &probs[(bh * tq + i) * tk..(bh * tq + i + 1) * tk];
            let q_row = q_base + i * d..q_base + (i + 1) * d;
            let do_row = &dout[q_row.clone()];
            // dp[i, j] = dout_i . v_j, and dv_j += p[i, j] dout_i
            let mut dp = vec![0.0; tk];
            for j in 0..tk {
                let v_row = kv_base + j * d..kv_base + (j + 1) * d;
                dp[j] = do_row
                    .iter()
                    .zip(&v[v_row.clone()])
                    .map(|(a, c)| a * c)
                    .sum();
                for (dvv, &g) in dv[v_row].iter_mut().zip(do_row) {
                    *dvv += p_row[j] * g;
                }
            }
            let weighted: f64 = p_row.iter().zip(&dp).map(|(p, g)| p * g).sum();
            for j in 0..tk {
                let ds = p_row[j] * (dp[j] - weighted) * scale;
                let k_row = kv_base + j * d..kv_base + (j + 1) * d;
                for c in 0..d {
                    dq[q_row.start + c] += ds * k[k_row.start + c];
                    dk[k_row.start + c] += ds * q[q_row.start + c];
                }
            }
        }
    }
    (dq, dk, dv)
}

#[allow(clippy::too_many_arguments)]
fn check_sizes(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
) {
    assert_eq!(q.len(), b * h * tq * d, "attention: q size");
    assert_eq!(k.len(), b * h * tk * d, "attention: k size");
    assert_eq!(v.len(), b * h * tk * d, "attention: v size");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn single_key_copies_value_and_rows_sum_to_one() {
        // One key: probability 1, output = v.
        let (out, probs) = attention(
            &[0.3, -0.2],
            &[1.0, 2.0],
            &[5.0, 7.0],
            1,
            1,
            1,
            1,
            2,
            false,
            None,
        );
        assert_eq!(probs, vec![1.0]);
        assert_close(&out, &[5.0, 7.0], 1e-12);
        let (b, h, tq, tk, d) = (2, 2, 3, 4, 3);
        let q = test_values(b * h * tq * d, 1);
        let k = test_values(b * h * tk * d, 2);
        let v = test_values(b * h * tk * d, 3);
        let (_, probs) = attention(&q, &k, &v, b, h, tq, tk, d, true, None);
        for row in probs.chunks(tk) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn masks() {
        let (tq, tk, d) = (2, 4, 2);
        let q = test_values(tq * d, 4);
        let k = test_values(tk * d, 5);
        let v = test_values(tk * d, 6);
        // Causal, bottom-right aligned: query 0 sees keys 0..=2, query 1 sees all.
        let (_, p) = attention(&q, &k, &v, 1, 1, tq, tk, d, true, None);
        assert!(p[3] == 0.0 && p[2] > 0.0 && p[4..].iter().all(|&x| x > 0.0));
        // Key length 1 with causal: only key 0 is visible.
        let (out, p) = attention(&q, &k, &v, 1, 1, tq, tk, d, true, Some(&[1]));
        assert_eq!(p, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_close(&out, &[v[0], v[1], v[0], v[1]], 1e-12);
        // Key length 0: everything masked gives zeros, not NaN.
        let (out, p) = attention(&q, &k, &v, 1, 1, tq, tk, d, false, Some(&[0]));
        assert!(out.iter().chain(&p).all(|&x| x == 0.0));
        // Incremental decoding (tq = 1) sees every key under the causal mask.
        let (_, p) = attention(&q[..d], &k, &v, 1, 1, 1, tk, d, true, None);
        assert!(p.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (b, h, tq, tk, d) = (2, 2, 3, 4, 3);
        let q = test_values(b * h * tq * d, 7);
        let k = test_values(b * h * tk * d, 8);
        let v = test_values(b * h * tk * d, 9);
        let w = test_values(b * h * tq * d, 10);
        // Batch 1 has key length 0: fully masked rows must give zero gradients.
        for (causal, lens) in [(false, None), (true, None), (true, Some(&[3usize, 0][..]))] {
            let run = |q: &[f64], k: &[f64], v: &[f64]| {
                attention(q, k, v, b, h, tq, tk, d, causal, lens).0
            };
            let (_, probs) = attention(&q, &k, &v, b, h, tq, tk, d, causal, lens);
            let (dq, dk, dv) = attention_backward(&q, &k, &v, &probs, &w, b, h, tq, tk, d);
            assert_close(
                &dq,
                &numerical_grad(|q| dot(&w, &run(q, &k, &v)), &q, 1e-5),
                1e-6,
            );
            assert_close(
                &dk,
                &numerical_grad(|k| dot(&w, &run(&q, k, &v)), &k, 1e-5),
                1e-6,
            );
            assert_close(
                &dv,
                &numerical_grad(|v| dot(&w, &run(&q, &k, v)), &v, 1e-5),
                1e-6,
            );
            if lens.is_some() {
                let half = q.len() / 2;
                assert!(dq[half..].iter().all(|&x| x == 0.0));
            }
        }
    }
}
