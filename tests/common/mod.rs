//! Helpers shared by the integration tests: the device, seeded data, and comparisons that
//! print the worst element on failure.
#![allow(dead_code)]

use wgformer::{Gpu, Tensor};

pub fn gpu() -> Gpu {
    Gpu::shared().expect("no GPU adapter: install mesa-vulkan-drivers (see README)")
}

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    wgformer::rng::uniform_vec(n, -1.0, 1.0, seed)
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(&gpu(), data, shape).unwrap()
}

/// A leaf that collects a gradient.
pub fn leaf(data: &[f32], shape: &[usize]) -> Tensor {
    tensor(data, shape).requires_grad()
}

/// |got - want| <= tol * (1 + |want|) everywhere; the message names the worst index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64); // NaN counts as the worst error
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (1.0 + w.abs());
        if err.is_nan() || err > worst.1 {
            worst = (i, err);
        }
    }
    let (i, err) = worst;
    assert!(
        err <= tol,
        "{what}: max scaled error {err:.3e} > {tol:.1e} at index {i}: got {} want {}",
        got.get(i).copied().unwrap_or(f32::NAN),
        want.get(i).copied().unwrap_or(f64::NAN)
    );
}

/// The gradient `x` received, as a Vec.
pub fn grad_of(x: &Tensor) -> Vec<f32> {
    x.grad()
        .expect("no gradient reached this tensor")
        .to_vec()
        .unwrap()
}

/// Check a GPU gradient against central finite differences of a reference forward `f`:
/// `gpu_grad` must equal d/dx sum(f(x) * w) (f64 on the reference side).
pub fn assert_matches_finite_differences(
    what: &str,
    gpu_grad: &[f32],
    x: &[f64],
    w: &[f64],
    f: impl Fn(&[f64]) -> Vec<f64>,
    tol: f64,
) {
    use wgformer::reference::finite_diff::{dot, numerical_grad};
    let numeric = numerical_grad(|x| dot(&f(x), w), x, 1e-5);
    assert_close(what, gpu_grad, &numeric, tol);
}
