//! Helpers shared by the integration tests: the device, seeded data, and comparisons that
//! print the worst element on failure.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use wgformer::gpu::{KernelPolicy, RowWidth};
use wgformer::{Gpu, Tensor};

thread_local! {
    /// The device `gpu()` returns on this thread while `on_device` runs.
    static DEVICE: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The device the helpers below use: the process's shared one, or `on_device`'s.
pub fn gpu() -> Gpu {
    if let Some(device) = DEVICE.with(|d| d.borrow().clone()) {
        return device;
    }
    Gpu::shared().expect("no GPU adapter: install mesa-vulkan-drivers (see README)")
}

/// A device of the test's own with `policy`: set its policy to force a kernel without
/// changing the choice for the tests running beside it.
pub fn device_with(policy: KernelPolicy) -> Gpu {
    Gpu::with_policy(policy).expect("no GPU adapter: install mesa-vulkan-drivers (see README)")
}

/// Until the guard drops, `gpu()` (so `tensor`, `leaf`, ...) returns `device` on this thread.
pub fn use_device(device: &Gpu) -> DeviceGuard {
    DeviceGuard(DEVICE.with(|d| d.replace(Some(device.clone()))))
}

/// Puts back the device `gpu()` returned before `use_device`.
pub struct DeviceGuard(Option<Gpu>);

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        DEVICE.with(|d| *d.borrow_mut() = self.0.take());
    }
}

/// Devices of the test's own, one per row-kernel width, for `use_device`.
pub fn row_width_devices() -> Vec<(RowWidth, Gpu)> {
    [RowWidth::Narrow, RowWidth::Wide]
        .into_iter()
        .map(|w| {
            let policy = KernelPolicy {
                row_width: Some(w),
                ..KernelPolicy::default()
            };
            (w, device_with(policy))
        })
        .collect()
}

/// The device of `devices` whose row kernels have `width`.
pub fn of_width(devices: &[(RowWidth, Gpu)], width: RowWidth) -> &Gpu {
    &devices
        .iter()
        .find(|(w, _)| *w == width)
        .expect("both widths")
        .1
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

/// A tiny character-LM run in `dir`: a corpus of one repeated line and `tiny.yaml`, a one-layer
/// model with `dropout`, writing to `dir/run`; `train` holds the `train` keys besides
/// seq_len, batch_size and out_dir (steps, evaluation, seed, logging).
pub fn tiny_clm_config(dir: &Path, dropout: f64, train: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let corpus = dir.join("corpus.txt");
    let text: String = (0..80)
        .map(|i| format!("line {i}: to be or not to be, that is the question.\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let yaml = format!(
        "tokenizer: {{kind: char}}\n\
         data: {{path: {}, val_fraction: 0.1, test_fraction: 0.1}}\n\
         model: {{d_model: 32, d_ff: 64, num_layers: 1, num_heads: 2, dropout: {dropout}, layer_drop_rate: 0.0, weight_tying: true, max_seq_len: 32}}\n\
         train: {{seq_len: 32, batch_size: 4, out_dir: {}, {train}}}\n\
         optimizer: {{kind: adamw, lr: 3e-3}}\n\
         scheduler: {{kind: cosine, warmup_steps: 3, min_lr: 1e-4}}\n",
        corpus.display(),
        dir.join("run").display()
    );
    let path = dir.join("tiny.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A tiny causal LM (vocab 13, d_model 32, 2 layers, 2 heads, no dropout) on `gpu` and its
/// trainer: AdamW at a constant lr of 1e-2 without weight decay, gradients clipped to 1.
pub fn tiny_lm(
    gpu: &Gpu,
    weight_tying: bool,
    seed: u64,
) -> (
    wgformer::models::DecoderOnlyTransformer,
    wgformer::train::Trainer,
) {
    use wgformer::nn::Module;
    let config = wgformer::models::DecoderOnlyConfig {
        vocab_size: 13,
        d_model: 32,
        d_ff: 64,
        num_layers: 2,
        num_heads: 2,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying,
        max_seq_len: 16,
        activation: wgformer::ops::Activation::Gelu,
    };
    let model = wgformer::models::DecoderOnlyTransformer::new(gpu, config, seed).unwrap();
    let hyper = wgformer::ops::AdamWParams {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    };
    let optimizer = wgformer::AdamW::new(model.params(), hyper).unwrap();
    let schedule = wgformer::train::LrSchedule::constant(1e-2);
    (
        model,
        wgformer::train::Trainer::new(optimizer, schedule, 1.0, 0),
    )
}

/// (dx, dW) of y = x W^T on the CPU: x [rows, k], W [n, k] (PyTorch's Linear layout), dy
/// [rows, n].
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    rows: usize,
    k: usize,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    wgformer::reference::matmul::matmul_backward(x, w, dy, 1, rows, k, n, false, true, true)
}
