//! LayerNorm over the last dim vs the CPU reference (forward, with the saved statistics used
//! by the backward) and vs the reference gradients and finite differences (backward), on row
//! lengths that are not multiples of the workgroup size and row counts that are not multiples
//! of the dgamma / dbeta row block.
mod common;
use common::*;
use wgformer::ops::{self, RowWidth};
use wgformer::reference::layer_norm as reference;
use wgformer::Tensor;

const EPS: f32 = 1e-5;

/// (rows, cols): cols of 1 and 1000, around the 64-wide workgroup; rows past one and two
/// 32-row blocks of the dgamma / dbeta partial sums.
const SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (1, 7),
    (3, 33),
    (7, 65),
    (5, 130),
    (2, 1000),
    (50, 7),
    (33, 33),
    (70, 65),
];

struct Case {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Case {
    fn new(rows: usize, cols: usize, seed: u64) -> Case {
        Case {
            rows,
            cols,
            x: values(rows * cols, seed)
                .iter()
                .map(|v| 2.0 * v + 0.5)
                .collect(),
            gamma: values(cols, seed + 1)
                .iter()
                .map(|v| 1.0 + 0.5 * v)
                .collect(),
            beta: values(cols, seed + 2),
        }
    }

    fn reference(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        reference::layer_norm(
            &f64s(&self.x),
            &f64s(&self.gamma),
            &f64s(&self.beta),
            self.rows,
            self.cols,
            EPS as f64,
        )
    }
}

/// Both shapes of the row kernel (8 lanes per row on CPU adapters, 64 on GPUs) run here on
/// whatever adapter the tests have.
const WIDTHS: [RowWidth; 2] = [RowWidth::Narrow, RowWidth::Wide];

#[test]
fn layer_norm_forward_matches_reference_on_odd_shapes() {
    let devices = row_width_devices();
    for ((rows, cols), width) in SHAPES.into_iter().flat_map(|s| WIDTHS.map(|w| (s, w))) {
        let _on = use_device(of_width(&devices, width));
        let c = Case::new(rows, cols, 10 + cols as u64);
        let y = ops::layer_norm(
            &tensor(&c.x, &[rows, cols]),
            &tensor(&c.gamma, &[cols]),
            &tensor(&c.beta, &[cols]),
            EPS,
        )
        .unwrap();
        assert_eq!(y.shape(), &[rows, cols]);
        assert_close(
            &format!("layer_norm forward {rows}x{cols} {width:?}"),
            &y.to_vec().unwrap(),
            &c.reference().0,
            1e-5,
        );
    }
}

#[test]
fn layer_norm_normalizes_the_last_dim_of_a_3d_tensor() {
    let c = Case::new(2 * 5, 33, 3);
    let y = ops::layer_norm(
        &tensor(&c.x, &[2, 5, 33]),
        &tensor(&c.gamma, &[33]),
        &tensor(&c.beta, &[33]),
        EPS,
    )
    .unwrap();
    assert_eq!(y.shape(), &[2, 5, 33]);
    assert_close(
        "layer_norm 3-D",
        &y.to_vec().unwrap(),
        &c.reference().0,
        1e-5,
    );
}

#[test]
fn layer_norm_is_accurate_for_rows_with_a_large_offset() {
    // Mean 1000, spread 1: E[x^2] - mean^2 in f32 would lose the variance entirely.
    let mut c = Case::new(4, 130, 4);
    c.x.iter_mut().for_each(|v| *v += 1000.0);
    let y = ops::layer_norm(
        &tensor(&c.x, &[4, 130]),
        &tensor(&c.gamma, &[130]),
        &tensor(&c.beta, &[130]),
        EPS,
    )
    .unwrap();
    assert_close(
        "layer_norm offset",
        &y.to_vec().unwrap(),
        &c.reference().0,
        2e-3,
    );
}

#[test]
fn layer_norm_backward_matches_reference_on_odd_shapes() {
    let devices = row_width_devices();
    for ((rows, cols), width) in SHAPES.into_iter().flat_map(|s| WIDTHS.map(|w| (s, w))) {
        let _on = use_device(of_width(&devices, width));
        let c = Case::new(rows, cols, 20 + cols as u64);
        let wv = values(rows * cols, 5);
        let (x, gamma, beta) = (
            leaf(&c.x, &[rows, cols]),
            leaf(&c.gamma, &[cols]),
            leaf(&c.beta, &[cols]),
        );
        let y = ops::layer_norm(&x, &gamma, &beta, EPS).unwrap();
        y.backward_with(tensor(&wv, &[rows, cols])).unwrap();
        let (_, mean, rstd) = c.reference();
        let (dx, dgamma, dbeta) = reference::layer_norm_backward(
            &f64s(&c.x),
            &f64s(&c.gamma),
            &mean,
            &rstd,
            &f64s(&wv),
            rows,
            cols,
        );
        let what = format!("{rows}x{cols} {width:?}");
        assert_close(&format!("layer_norm dx {what}"), &grad_of(&x), &dx, 1e-4);
        assert_close(
            &format!("layer_norm dgamma {what}"),
            &grad_of(&gamma),
            &dgamma,
            1e-4,
        );
        assert_close(
            &format!("layer_norm dbeta {what}"),
            &grad_of(&beta),
            &dbeta,
            1e-5,
        );
        assert_eq!(grad_of(&gamma).len(), cols);
    }
}

#[test]
fn layer_norm_backward_matches_finite_differences() {
    for (rows, cols) in [(3, 7), (7, 33), (35, 5)] {
        let c = Case::new(rows, cols, 30 + cols as u64);
        let wv = values(rows * cols, 6);
        let (x, gamma, beta) = (
            leaf(&c.x, &[rows, cols]),
            leaf(&c.gamma, &[cols]),
            leaf(&c.beta, &[cols]),
        );
        ops::layer_norm(&x, &gamma, &beta, EPS)
            .unwrap()
            .backward_with(tensor(&wv, &[rows, cols]))
            .unwrap();
        let (xf, gf, bf, wf) = (f64s(&c.x), f64s(&c.gamma), f64s(&c.beta), f64s(&wv));
        let eps = EPS as f64;
        let what = format!("{rows}x{cols}");
        assert_matches_finite_differences(
            &format!("dx fd {what}"),
            &grad_of(&x),
            &xf,
            &wf,
            |x| reference::layer_norm(x, &gf, &bf, rows, cols, eps).0,
            1e-3,
        );
        assert_matches_finite_differences(
            &format!("dgamma fd {what}"),
            &grad_of(&gamma),
            &gf,
            &wf,
            |g| reference::layer_norm(&xf, g, &bf, rows, cols, eps).0,
            1e-3,
        );
        assert_matches_finite_differences(
            &format!("dbeta fd {what}"),
            &grad_of(&beta),
            &bf,
            &wf,
            |b| reference::layer_norm(&xf, &gf, b, rows, cols, eps).0,
            1e-3,
        );
    }
}

#[test]
fn layer_norm_without_trainable_gamma_and_beta_still_gives_dx() {
    let c = Case::new(7, 33, 7);
    let wv = values(7 * 33, 8);
    let x = leaf(&c.x, &[7, 33]);
    let y = ops::layer_norm(&x, &tensor(&c.gamma, &[33]), &tensor(&c.beta, &[33]), EPS).unwrap();
    y.backward_with(tensor(&wv, &[7, 33])).unwrap();
    let (_, mean, rstd) = c.reference();
    let (dx, _, _) = reference::layer_norm_backward(
        &f64s(&c.x),
        &f64s(&c.gamma),
        &mean,
        &rstd,
        &f64s(&wv),
        7,
        33,
    );
    assert_close("layer_norm dx only", &grad_of(&x), &dx, 1e-4);
}

#[test]
fn layer_norm_rejects_mismatched_gamma_beta_and_non_f32_input() {
    let x = tensor(&values(21, 9), &[3, 7]);
    let ok = tensor(&values(7, 10), &[7]);
    let short = tensor(&values(6, 11), &[6]);
    let two_d = tensor(&values(7, 12), &[1, 7]);
    assert!(ops::layer_norm(&x, &ok, &ok, EPS).is_ok());
    assert!(ops::layer_norm(&x, &short, &ok, EPS).is_err());
    assert!(ops::layer_norm(&x, &ok, &short, EPS).is_err());
    assert!(ops::layer_norm(&x, &two_d, &ok, EPS).is_err());
    let ids = Tensor::from_u32(&gpu(), &[0; 21], &[3, 7]).unwrap();
    assert!(ops::layer_norm(&ids, &ok, &ok, EPS).is_err());
    let msg = ops::layer_norm(&x, &short, &ok, EPS)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[7]"),
        "the error should name the expected shape: {msg}"
    );
}
