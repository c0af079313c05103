//! Elementwise ops vs the CPU reference (forward) and vs the reference gradient and finite
//! differences (backward), on sizes that are not multiples of the 256-wide workgroup.
mod common;
use common::*;
use wgformer::ops;
use wgformer::reference::elementwise as reference;

const SIZES: [usize; 4] = [1, 7, 257, 1000];

#[test]
fn add_with_broadcast_bias_matches_reference_forward_and_backward() {
    // (5, 12): a whole-vec4 bias, the wide kernel.
    for (rows, cols) in [(1, 1), (7, 33), (65, 3), (3, 130), (5, 12)] {
        let xv = values(rows * cols, 1);
        let bv = values(cols, 2);
        let wv = values(rows * cols, 3);
        let x = leaf(&xv, &[rows, cols]);
        let b = leaf(&bv, &[cols]);
        let y = ops::add(&x, &b).unwrap();
        assert_close(
            "add forward",
            &y.to_vec().unwrap(),
            &reference::add(&f64s(&xv), &f64s(&bv)),
            1e-6,
        );
        y.backward_with(tensor(&wv, &[rows, cols])).unwrap();
        let (dx, db) = reference::add_backward(&f64s(&wv), cols);
        assert_close("add dx", &grad_of(&x), &dx, 1e-6);
        assert_close("add dbias", &grad_of(&b), &db, 1e-5);
    }
}

#[test]
fn mul_with_broadcast_matches_reference_and_finite_differences() {
    // (5, 12): a whole-vec4 factor, the wide kernel.
    for (rows, cols) in [(7, 33), (5, 12)] {
        let (xv, yv, wv) = (
            values(rows * cols, 4),
            values(cols, 5),
            values(rows * cols, 6),
        );
        let x = leaf(&xv, &[rows, cols]);
        let y = leaf(&yv, &[cols]);
        let out = ops::mul(&x, &y).unwrap();
        assert_close(
            "mul forward",
            &out.to_vec().unwrap(),
            &reference::mul(&f64s(&xv), &f64s(&yv)),
            1e-6,
        );
        out.backward_with(tensor(&wv, &[rows, cols])).unwrap();
        let (dx, dy) = reference::mul_backward(&f64s(&xv), &f64s(&yv), &f64s(&wv));
        assert_close("mul dx", &grad_of(&x), &dx, 1e-5);
        assert_close("mul dy", &grad_of(&y), &dy, 1e-5);
        let yf = f64s(&yv);
        assert_matches_finite_differences(
            "mul dx vs fd",
            &grad_of(&x),
            &f64s(&xv),
            &f64s(&wv),
            |x| reference::mul(x, &yf),
            1e-4,
        );
    }
}

/// Forward vs reference and backward vs reference + finite differences for a unary op.
fn check_unary(
    name: &str,
    op: impl Fn(&wgformer::Tensor) -> wgformer::Result<wgformer::Tensor>,
    forward: impl Fn(&[f64]) -> Vec<f64>,
    backward: impl Fn(&[f64], &[f64]) -> Vec<f64>,
) {
    for n in SIZES {
        let xv: Vec<f32> = values(n, 7 + n as u64).iter().map(|v| v * 3.0).collect();
        let wv = values(n, 8);
        let x = leaf(&xv, &[n]);
        let y = op(&x).unwrap();
        assert_close(
            &format!("{name} forward n={n}"),
            &y.to_vec().unwrap(),
            &forward(&f64s(&xv)),
            1e-5,
        );
        y.backward_with(tensor(&wv, &[n])).unwrap();
        let g = grad_of(&x);
        assert_close(
            &format!("{name} backward n={n}"),
            &g,
            &backward(&f64s(&xv), &f64s(&wv)),
            1e-5,
        );
        if n <= 257 {
            assert_matches_finite_differences(
                &format!("{name} fd n={n}"),
                &g,
                &f64s(&xv),
                &f64s(&wv),
                &forward,
                1e-3,
            );
        }
    }
}

#[test]
fn gelu_matches_reference_and_finite_differences() {
    check_unary("gelu", ops::gelu, reference::gelu, reference::gelu_backward);
}

#[test]
fn gelu_tanh_matches_reference_and_finite_differences() {
    check_unary(
        "gelu_tanh",
        ops::gelu_tanh,
        reference::gelu_tanh,
        reference::gelu_tanh_backward,
    );
}

#[test]
fn gelu_is_the_exact_erf_form_not_the_tanh_approximation() {
    // At x = -2 the two forms differ by ~1e-4, far above the kernels' error: a kernel that
    // computed the tanh form here would fail.
    let xs = [-3.0f32, -2.0, -1.0, 0.5, 1.5];
    let x = tensor(&xs, &[xs.len()]);
    let exact = ops::gelu(&x).unwrap().to_vec().unwrap();
    let approx = ops::gelu_tanh(&x).unwrap().to_vec().unwrap();
    assert_close("gelu", &exact, &reference::gelu(&f64s(&xs)), 1e-6);
    assert_close(
        "gelu_tanh",
        &approx,
        &reference::gelu_tanh(&f64s(&xs)),
        1e-6,
    );
    let gap = exact
        .iter()
        .zip(&approx)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(gap > 1e-4, "the two forms should differ, max gap {gap}");
}

#[test]
fn relu_matches_reference_and_its_gradient() {
    check_unary("relu", ops::relu, reference::relu, reference::relu_backward);
}

#[test]
fn scale_matches_reference_and_finite_differences() {
    check_unary(
        "scale",
        |x| ops::scale(x, -2.5),
        |x| reference::scale(x, -2.5),
        |_, d| reference::scale(d, -2.5),
    );
}

#[test]
fn gelu_stays_finite_for_huge_inputs() {
    let x = tensor(&[-1e4, -50.0, 50.0, 1e4], &[4]);
    for gelu in [ops::gelu, ops::gelu_tanh] {
        let y = gelu(&x).unwrap().to_vec().unwrap();
        assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
        assert_close("gelu tails", &y, &[0.0, 0.0, 50.0, 1e4], 1e-6);
    }
}

#[test]
fn dropout_mask_is_bit_exact_with_the_reference_rng_and_backward_reuses_it() {
    let n = 1000;
    let (p, seed) = (0.3, 1234);
    let (xv, wv) = (values(n, 9), values(n, 10));
    let x = leaf(&xv, &[n]);
    let y = ops::dropout(&x, p, seed).unwrap();
    assert_close(
        "dropout forward",
        &y.to_vec().unwrap(),
        &reference::dropout(&f64s(&xv), p, seed),
        1e-6,
    );
    y.backward_with(tensor(&wv, &[n])).unwrap();
    assert_close(
        "dropout backward",
        &grad_of(&x),
        &reference::dropout_backward(&f64s(&wv), p, seed),
        1e-6,
    );
    let kept = y.to_vec().unwrap().iter().filter(|v| **v != 0.0).count();
    assert!((600..800).contains(&kept), "kept {kept} of {n} at p = {p}");
}

#[test]
fn bad_shapes_and_probabilities_are_errors_not_panics() {
    let a = tensor(&values(6, 1), &[2, 3]);
    let b = tensor(&values(2, 1), &[2]);
    assert!(
        ops::add(&a, &b).is_err(),
        "[2] does not broadcast over [2, 3]"
    );
    assert!(ops::mul(&b, &a).is_err());
    assert!(ops::dropout(&a, 1.0, 0).is_err());
    assert!(a.reshape(&[4, 2]).is_err());
    assert!(wgformer::Tensor::from_slice(&gpu(), &[1.0, 2.0], &[3]).is_err());
}
