//! ops::linear (matmul with the bias added in the kernel's epilogue), ops::linear_add (a
//! residual added there too) and ops::linear_act (an activation applied there): forward and
//! every gradient against the reference, for every matmul variant and for shapes that take the skinny (one token), tiny and tiled paths;
//! finite differences on small cases.
mod common;
use common::*;
use wgformer::ops::{self, Activation, KernelPolicy, MatmulVariant};
use wgformer::reference::finite_diff::{dot, numerical_grad};
use wgformer::reference::matmul::matmul;

/// y = x W^T + b on the CPU: x [rows, k], w [n, k].
fn reference_linear(x: &[f64], w: &[f64], b: &[f64], rows: usize, k: usize, n: usize) -> Vec<f64> {
    let mut y = matmul(x, w, 1, rows, k, n, false, true, true);
    for (i, v) in y.iter_mut().enumerate() {
        *v += b[i % n];
    }
    y
}

/// `linear` and `linear_add` (with a residual) against the reference, forward and every
/// gradient.
fn check(rows: usize, k: usize, n: usize, seed: u64, what: &str) {
    check_one(rows, k, n, seed, what, false);
    check_one(rows, k, n, seed, &format!("{what} + residual"), true);
}

fn check_one(rows: usize, k: usize, n: usize, seed: u64, what: &str, with_residual: bool) {
    let (xv, wv, bv) = (
        values(rows * k, seed),
        values(n * k, seed + 1),
        values(n, seed + 2),
    );
    let dyv = values(rows * n, seed + 3);
    let rv = values(rows * n, seed + 4);
    let (x, w, b) = (leaf(&xv, &[rows, k]), leaf(&wv, &[n, k]), leaf(&bv, &[n]));
    let r = leaf(&rv, &[rows, n]);
    let y = match with_residual {
        true => ops::linear_add(&x, &w, Some(&b), &r).unwrap(),
        false => ops::linear(&x, &w, Some(&b)).unwrap(),
    };
    assert_eq!(y.shape(), &[rows, n]);
    let mut want = reference_linear(&f64s(&xv), &f64s(&wv), &f64s(&bv), rows, k, n);
    if with_residual {
        want.iter_mut().zip(&rv).for_each(|(y, &r)| *y += r as f64);
    }
    assert_close(
        &format!("{what} forward {rows}x{k}x{n}"),
        &y.to_vec().unwrap(),
        &want,
        1e-4,
    );
    y.backward_with(tensor(&dyv, &[rows, n])).unwrap();
    let (dx, dw) = linear_backward(&f64s(&xv), &f64s(&wv), &f64s(&dyv), rows, k, n);
    let db: Vec<f64> = (0..n)
        .map(|j| (0..rows).map(|i| dyv[i * n + j] as f64).sum())
        .collect();
    let g = |t: &wgformer::Tensor| t.grad().unwrap().to_vec().unwrap();
    assert_close(&format!("{what} dx"), &g(&x), &dx, 1e-4);
    assert_close(&format!("{what} dW"), &g(&w), &dw, 1e-4);
    assert_close(&format!("{what} db"), &g(&b), &db, 1e-4);
    if with_residual {
        // The residual's gradient is the output's, as it is.
        assert_eq!(g(&r), dyv, "{what} d residual");
    }
}

#[test]
fn linear_matches_the_reference_for_every_variant_and_path() {
    // (rows, k, n): one token (skinny, K a multiple of 4 and not), tiny, tile-straddling.
    let shapes = [
        (1, 32, 20),
        (1, 13, 7),
        (3, 8, 5),
        (37, 36, 70),
        (70, 33, 65),
    ];
    for (i, &(rows, k, n)) in shapes.iter().enumerate() {
        check(rows, k, n, 10 + i as u64, "default");
    }
    for_every_variant(|name| {
        for (i, &(rows, k, n)) in shapes.iter().enumerate() {
            check(rows, k, n, 20 + i as u64, name);
        }
    });
}

/// `f(variant name)` on a device of its own forced to each matmul variant in turn (and to
/// fuse activations, which CPU adapters otherwise do not).
fn for_every_variant(f: impl Fn(&str)) {
    let device = device_with(KernelPolicy::default());
    for v in MatmulVariant::ALL {
        device.set_policy(KernelPolicy {
            matmul: Some(v),
            fuse_activation: Some(true),
            ..KernelPolicy::default()
        });
        let _on = use_device(&device);
        f(v.name());
    }
}

#[test]
fn linear_without_bias_is_matmul_nt_and_leading_dims_are_kept() {
    let (xv, wv) = (values(2 * 3 * 8, 1), values(5 * 8, 2));
    let x = tensor(&xv, &[2, 3, 8]);
    let w = tensor(&wv, &[5, 8]);
    let y = ops::linear(&x, &w, None).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    let want = ops::matmul_nt(&x, &w).unwrap().to_vec().unwrap();
    assert_eq!(y.to_vec().unwrap(), want);
    let bad = ops::linear(&x, &w, Some(&tensor(&[0.0; 4], &[4])));
    assert!(bad.unwrap_err().to_string().contains("bias"));
}

#[test]
fn linear_add_refuses_a_residual_of_another_shape() {
    let x = tensor(&values(2 * 8, 1), &[2, 8]);
    let w = tensor(&values(5 * 8, 2), &[5, 8]);
    let r = tensor(&values(2 * 4, 3), &[2, 4]);
    let e = ops::linear_add(&x, &w, None, &r).unwrap_err().to_string();
    assert!(
        e.contains("linear_add") && e.contains("residual") && e.contains("[2, 5]"),
        "{e}"
    );
}

/// x W^T + b + residual: every input's gradient against finite differences of the reference.
#[test]
fn linear_add_gradients_match_finite_differences() {
    let (rows, k, n) = (3, 4, 2);
    let (xv, wv, bv) = (values(rows * k, 15), values(n * k, 16), values(n, 17));
    let (rv, dyv) = (values(rows * n, 18), values(rows * n, 19));
    let (xs, ws, bs, rs) = (f64s(&xv), f64s(&wv), f64s(&bv), f64s(&rv));
    let f = |x: &[f64], w: &[f64], b: &[f64], r: &[f64]| -> Vec<f64> {
        let y = reference_linear(x, w, b, rows, k, n);
        y.iter().zip(r).map(|(y, r)| y + r).collect()
    };
    let (x, w, b) = (leaf(&xv, &[rows, k]), leaf(&wv, &[n, k]), leaf(&bv, &[n]));
    let r = leaf(&rv, &[rows, n]);
    let y = ops::linear_add(&x, &w, Some(&b), &r).unwrap();
    y.backward_with(tensor(&dyv, &[rows, n])).unwrap();
    let g = |t: &wgformer::Tensor| t.grad().unwrap().to_vec().unwrap();
    let dy = f64s(&dyv);
    assert_matches_finite_differences("dx", &g(&x), &xs, &dy, |v| f(v, &ws, &bs, &rs), 1e-4);
    assert_matches_finite_differences("dW", &g(&w), &ws, &dy, |v| f(&xs, v, &bs, &rs), 1e-4);
    assert_matches_finite_differences("db", &g(&b), &bs, &dy, |v| f(&xs, &ws, v, &rs), 1e-4);
    assert_matches_finite_differences("dr", &g(&r), &rs, &dy, |v| f(&xs, &ws, &bs, v), 1e-4);
}

#[test]
fn linear_gradients_match_finite_differences() {
    let (rows, k, n) = (2, 3, 2);
    let (xv, wv, bv, rv) = (values(6, 5), values(6, 6), values(2, 7), values(4, 8));
    let loss =
        |x: &[f64], w: &[f64], b: &[f64]| dot(&reference_linear(x, w, b, rows, k, n), &f64s(&rv));
    let (x, w, b) = (leaf(&xv, &[rows, k]), leaf(&wv, &[n, k]), leaf(&bv, &[n]));
    let y = ops::linear(&x, &w, Some(&b)).unwrap();
    y.backward_with(tensor(&rv, &[rows, n])).unwrap();
    let (xs, ws, bs) = (f64s(&xv), f64s(&wv), f64s(&bv));
    let g = |t: &wgformer::Tensor| t.grad().unwrap().to_vec().unwrap();
    assert_close(
        "dx",
        &g(&x),
        &numerical_grad(|v| loss(v, &ws, &bs), &xs, 1e-6),
        1e-4,
    );
    assert_close(
        "dW",
        &g(&w),
        &numerical_grad(|v| loss(&xs, v, &bs), &ws, 1e-6),
        1e-4,
    );
    assert_close(
        "db",
        &g(&b),
        &numerical_grad(|v| loss(&xs, &ws, v), &bs, 1e-6),
        1e-4,
    );
}

/// The reference activation of `act` and its backward (x, dy) -> dx.
type ActRef = (fn(&[f64]) -> Vec<f64>, fn(&[f64], &[f64]) -> Vec<f64>);

fn reference_act(act: Activation) -> ActRef {
    use wgformer::reference::elementwise as r;
    match act {
        Activation::Gelu => (r::gelu, r::gelu_backward),
        Activation::GeluTanh => (r::gelu_tanh, r::gelu_tanh_backward),
        Activation::Relu => (r::relu, r::relu_backward),
    }
}

/// `linear_act` against the reference act(x W^T + b), forward and every gradient.
fn check_act(rows: usize, k: usize, n: usize, seed: u64, act: Activation, what: &str) {
    let (xv, wv, bv, dyv) = (
        values(rows * k, seed),
        values(n * k, seed + 1),
        values(n, seed + 2),
        values(rows * n, seed + 3),
    );
    let (x, w, b) = (leaf(&xv, &[rows, k]), leaf(&wv, &[n, k]), leaf(&bv, &[n]));
    let y = ops::linear_act(&x, &w, Some(&b), act).unwrap();
    let (forward, backward) = reference_act(act);
    let pre = reference_linear(&f64s(&xv), &f64s(&wv), &f64s(&bv), rows, k, n);
    let what = format!("{what} {act:?} {rows}x{k}x{n}");
    assert_close(
        &format!("{what} forward"),
        &y.to_vec().unwrap(),
        &forward(&pre),
        1e-4,
    );
    y.backward_with(tensor(&dyv, &[rows, n])).unwrap();
    let d_pre = backward(&pre, &f64s(&dyv));
    let (dx, dw) = linear_backward(&f64s(&xv), &f64s(&wv), &d_pre, rows, k, n);
    let db: Vec<f64> = (0..n)
        .map(|j| (0..rows).map(|i| d_pre[i * n + j]).sum())
        .collect();
    let g = |t: &wgformer::Tensor| t.grad().unwrap().to_vec().unwrap();
    assert_close(&format!("{what} dx"), &g(&x), &dx, 1e-4);
    assert_close(&format!("{what} dW"), &g(&w), &dw, 1e-4);
    assert_close(&format!("{what} db"), &g(&b), &db, 1e-4);
}

#[test]
fn linear_act_matches_the_reference_for_every_variant_and_activation() {
    let shapes = [(1, 13, 7), (3, 8, 5), (37, 36, 70)];
    for_every_variant(|name| {
        for (i, &(rows, k, n)) in shapes.iter().enumerate() {
            for act in [Activation::Gelu, Activation::GeluTanh, Activation::Relu] {
                check_act(rows, k, n, 40 + i as u64, act, name);
            }
        }
    });
}

#[test]
fn linear_act_is_one_dispatch_forward_and_equals_linear_then_activation() {
    // A device of the test's own: the counts must not see the dispatches of tests beside it.
    let gpu = device_with(KernelPolicy {
        fuse_activation: Some(true),
        ..KernelPolicy::default()
    });
    let _on = use_device(&gpu);
    let (rows, k, n) = (70, 33, 65);
    let (xv, wv, bv) = (values(rows * k, 51), values(n * k, 52), values(n, 53));
    let (x, w, b) = (
        tensor(&xv, &[rows, k]),
        tensor(&wv, &[n, k]),
        tensor(&bv, &[n]),
    );
    let separate = ops::gelu(&ops::linear(&x, &w, Some(&b)).unwrap()).unwrap();
    let (before, _guard) = (gpu.counters().dispatches, wgformer::no_grad());
    let fused = ops::linear_act(&x, &w, Some(&b), Activation::Gelu).unwrap();
    let linear_alone = {
        let d = gpu.counters().dispatches;
        let _ = ops::linear(&x, &w, Some(&b)).unwrap();
        gpu.counters().dispatches - d
    };
    assert_eq!(
        gpu.counters().dispatches - before - linear_alone,
        linear_alone,
        "the activation costs no dispatch of its own"
    );
    assert_eq!(
        fused.to_vec().unwrap(),
        separate.to_vec().unwrap(),
        "the epilogue computes what the GELU kernel computes"
    );
}

/// gelu(x W^T + b), fused: every input's gradient against finite differences of the reference.
#[test]
fn linear_act_gradients_match_finite_differences() {
    let gpu = device_with(KernelPolicy {
        fuse_activation: Some(true),
        ..KernelPolicy::default()
    });
    let _on = use_device(&gpu);
    let (rows, k, n) = (3, 5, 4);
    let (xv, wv, bv, dyv) = (
        values(rows * k, 61),
        values(n * k, 62),
        values(n, 63),
        values(rows * n, 64),
    );
    let (xs, ws, bs, dy) = (f64s(&xv), f64s(&wv), f64s(&bv), f64s(&dyv));
    let f = |x: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
        wgformer::reference::elementwise::gelu(&reference_linear(x, w, b, rows, k, n))
    };
    let (x, w, b) = (leaf(&xv, &[rows, k]), leaf(&wv, &[n, k]), leaf(&bv, &[n]));
    let y = ops::linear_act(&x, &w, Some(&b), Activation::Gelu).unwrap();
    y.backward_with(tensor(&dyv, &[rows, n])).unwrap();
    let g = |t: &wgformer::Tensor| t.grad().unwrap().to_vec().unwrap();
    assert_matches_finite_differences("dx", &g(&x), &xs, &dy, |v| f(v, &ws, &bs), 1e-4);
    assert_matches_finite_differences("dW", &g(&w), &ws, &dy, |v| f(&xs, v, &bs), 1e-4);
    assert_matches_finite_differences("db", &g(&b), &bs, &dy, |v| f(&xs, &ws, v), 1e-4);
}
