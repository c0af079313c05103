//! matmul_half (x @ W^T + bias with W in half precision), both kernels (portable and, where
//! the adapter has subgroups, x shared through the subgroup): forward vs the CPU reference on
//! shapes that are not multiples of the workgroup (N = 37, 70) or of anything but 8 (K = 24),
//! with and without bias, one row and several (the kernels take them two at a time, then the
//! last one alone); the gradient of x vs the reference; f16-exact weights
//! give what the f32 product gives; bad shapes are errors.
mod common;
use common::*;
use wgformer::ops::{self, HalfMatrix};
use wgformer::reference::matmul_half as reference;
use wgformer::Tensor;

/// The kernels this adapter runs: portable, and with subgroups where it has them.
fn kernels() -> Vec<bool> {
    let g = gpu();
    let mut k = vec![false];
    if g.has_subgroups_of(8) {
        k.push(true);
    }
    k
}

fn check(m: usize, k: usize, n: usize, with_bias: bool) {
    for subgroups in kernels() {
        check_with(m, k, n, with_bias, subgroups);
    }
}

fn check_with(m: usize, k: usize, n: usize, with_bias: bool, subgroups: bool) {
    let g = gpu();
    let x = values(m * k, 1 + k as u64);
    let w = values(n * k, 2 + n as u64);
    let b = values(n, 3);
    let half = HalfMatrix::new(&g, &w, n, k).unwrap();
    let xt = leaf(&x, &[m, k]);
    let bias = with_bias.then(|| tensor(&b, &[n]));
    let out = ops::matmul_half_with(&xt, &half, bias.as_ref(), subgroups).unwrap();
    assert_eq!(out.shape(), [m, n].as_slice());
    let b64 = f64s(&b);
    let want = reference::matmul_half(
        &f64s(&x),
        &f64s(&w),
        with_bias.then_some(b64.as_slice()),
        m,
        k,
        n,
    );
    let what = format!("[{m}, {k}] x [{n}, {k}]^T bias {with_bias} subgroups {subgroups}");
    assert_close(&what, &out.to_vec().unwrap(), &want, 1e-5);

    let dout = values(m * n, 4);
    out.backward_with(tensor(&dout, &[m, n])).unwrap();
    let want_dx = reference::matmul_half_backward(&f64s(&dout), &f64s(&w), m, k, n);
    assert_close(&format!("{what} dx"), &grad_of(&xt), &want_dx, 1e-5);
}

#[test]
fn forward_and_input_gradient_match_reference() {
    check(1, 24, 37, false);
    check(3, 24, 37, true);
    check(2, 64, 70, true);
    // K = 384: six whole blocks of 64 for the subgroup kernel; 520: eight and a remainder.
    check(5, 384, 13, false);
    check(2, 520, 9, true);
    // Two pairs of rows, then two pairs and one alone, past the whole blocks of 64.
    check(4, 520, 70, false);
    check(5, 520, 37, true);
}

#[test]
fn half_exact_weights_give_the_f32_product() {
    let g = gpu();
    let (m, k, n) = (2, 32, 40);
    // Values rounded to halves first: the f16 weights of a checkpoint, widened on load.
    let w: Vec<f32> = values(n * k, 5)
        .into_iter()
        .map(|v| half::f16::from_f32(v).to_f32())
        .collect();
    assert!(HalfMatrix::is_exact(&w));
    assert!(!HalfMatrix::is_exact(&[1.0 + 2f32.powi(-12)]));
    let x = tensor(&values(m * k, 6), &[m, k]);
    let half = ops::matmul_half(&x, &HalfMatrix::new(&g, &w, n, k).unwrap(), None).unwrap();
    let full = ops::matmul_nt(&x, &tensor(&w, &[n, k])).unwrap();
    assert_close(
        "half vs f32 weights",
        &half.to_vec().unwrap(),
        &f64s(&full.to_vec().unwrap()),
        1e-6,
    );
}

#[test]
fn bad_shapes_are_errors() {
    let g = gpu();
    assert!(HalfMatrix::new(&g, &[0.0; 12], 2, 6).is_err()); // K not a multiple of 8
    assert!(HalfMatrix::new(&g, &[0.0; 15], 2, 8).is_err()); // wrong count
    let w = HalfMatrix::new(&g, &[0.0; 16], 2, 8).unwrap();
    let x = Tensor::zeros(&g, &[3, 7]).unwrap();
    let msg = ops::matmul_half(&x, &w, None).unwrap_err().to_string();
    assert!(
        msg.contains("matmul_half") && msg.contains("[..., 8]"),
        "{msg}"
    );
    let x = Tensor::zeros(&g, &[3, 8]).unwrap();
    let bias = Tensor::zeros(&g, &[3]).unwrap();
    assert!(ops::matmul_half(&x, &w, Some(&bias)).is_err());
}
