//! Softmax over the last dim vs the CPU reference (forward) and vs the reference gradient and
//! finite differences (backward), on row lengths that are not multiples of the workgroup size.
mod common;
use common::*;
use wgformer::ops;
use wgformer::reference::softmax as reference;
use wgformer::Tensor;

/// (rows, cols): cols of 1 and 1000, around the 64-wide workgroup, and up to 50 rows.
const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (1, 7),
    (3, 33),
    (7, 65),
    (5, 130),
    (2, 1000),
    (50, 7),
    (13, 64),
];

fn logits(n: usize, seed: u64) -> Vec<f32> {
    values(n, seed).iter().map(|v| 4.0 * v).collect()
}

#[test]
fn softmax_forward_matches_reference_on_odd_shapes() {
    for (rows, cols) in SHAPES {
        let xv = logits(rows * cols, 1 + cols as u64);
        let y = ops::softmax(&tensor(&xv, &[rows, cols])).unwrap();
        assert_eq!(y.shape(), &[rows, cols]);
        let want = reference::softmax(&f64s(&xv), rows, cols);
        assert_close(
            &format!("softmax forward {rows}x{cols}"),
            &y.to_vec().unwrap(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn softmax_runs_over_the_last_dim_of_a_3d_tensor() {
    let shape = [2usize, 5, 33];
    let xv = logits(2 * 5 * 33, 2);
    let y = ops::softmax(&tensor(&xv, &shape)).unwrap();
    assert_eq!(y.shape(), &shape);
    let want = reference::softmax(&f64s(&xv), 10, 33);
    assert_close("softmax 3-D", &y.to_vec().unwrap(), &want, 1e-5);
}

#[test]
fn softmax_backward_matches_reference_and_finite_differences() {
    for (rows, cols) in SHAPES {
        let xv = logits(rows * cols, 3 + cols as u64);
        let wv = values(rows * cols, 4);
        let x = leaf(&xv, &[rows, cols]);
        let y = ops::softmax(&x).unwrap();
        y.backward_with(tensor(&wv, &[rows, cols])).unwrap();
        let g = grad_of(&x);
        let y_ref = reference::softmax(&f64s(&xv), rows, cols);
        let want = reference::softmax_backward(&y_ref, &f64s(&wv), rows, cols);
        assert_close(&format!("softmax backward {rows}x{cols}"), &g, &want, 1e-5);
        if rows * cols <= 1000 {
            assert_matches_finite_differences(
                &format!("softmax fd {rows}x{cols}"),
                &g,
                &f64s(&xv),
                &f64s(&wv),
                |x| reference::softmax(x, rows, cols),
                1e-4,
            );
        }
    }
}

#[test]
fn softmax_of_huge_logits_is_finite_and_matches_reference() {
    // A row dominated by 1e4, a row with two tied huge values, and a row of -1e4.
    let cols = 33;
    let mut xv = logits(3 * cols, 5);
    xv[4] = 1e4;
    xv[cols] = 1e4;
    xv[cols + 32] = 1e4;
    xv[2 * cols..].iter_mut().for_each(|v| *v -= 1e4);
    let x = leaf(&xv, &[3, cols]);
    let y = ops::softmax(&x).unwrap();
    let got = y.to_vec().unwrap();
    assert!(
        got.iter().all(|v| v.is_finite()),
        "non-finite softmax: {got:?}"
    );
    let want = reference::softmax(&f64s(&xv), 3, cols);
    assert_close("softmax huge", &got, &want, 1e-6);
    assert!((got[cols] - 0.5).abs() < 1e-6 && (got[cols + 32] - 0.5).abs() < 1e-6);

    let wv = values(3 * cols, 6);
    y.backward_with(tensor(&wv, &[3, cols])).unwrap();
    let g = grad_of(&x);
    assert!(
        g.iter().all(|v| v.is_finite()),
        "non-finite softmax gradient"
    );
    assert_close(
        "softmax huge backward",
        &g,
        &reference::softmax_backward(&want, &f64s(&wv), 3, cols),
        1e-5,
    );
}

#[test]
fn softmax_rejects_u32_and_an_empty_last_dim() {
    let ids = Tensor::from_u32(&gpu(), &[1, 2, 3], &[3]).unwrap();
    assert!(ops::softmax(&ids).is_err());
    let empty = tensor(&[], &[3, 0]);
    assert!(ops::softmax(&empty).is_err());
}
