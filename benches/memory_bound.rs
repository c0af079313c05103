//! The memory-bound kernels (layer norm, fused softmax + cross-entropy, AdamW) in GB/s, each
//! next to the simplest kernel that moves the same data: an elementwise scale (one read, one
//! write per element). The ratio says how close each op comes to what the adapter can stream.
//! The row kernels run in both their shapes (`ops::RowWidth`): 8 lanes per row, the CPU
//! default, and 64 lanes per row reduced in workgroup memory, the GPU default.
//!
//!     cargo bench --bench memory_bound       (WGFORMER_BENCH_QUICK=1 for a shorter run)
//!
//! Bytes are the ones each kernel must move (inputs read once, outputs written once); each
//! timing records REPS calls and waits once, best of 3.

use std::time::Instant;
use wgformer::ops::{self, AdamWParams, KernelPolicy, RowWidth};
use wgformer::{no_grad, Gpu, Tensor};

fn time(
    gpu: &Gpu,
    reps: usize,
    mut f: impl FnMut() -> wgformer::Result<()>,
) -> wgformer::Result<f64> {
    f()?;
    gpu.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        gpu.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    Ok(best)
}

fn main() -> wgformer::Result<()> {
    let gpu = Gpu::shared()?;
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok();
    let reps = if quick { 3 } else { 10 };
    println!("adapter: {}", gpu.adapter_name());
    let _g = no_grad();
    // The reference CLM's shapes: 2,048 rows of 256 (activations), 2,048 x 1,024 logits.
    let (rows, cols, vocab) = (2048usize, 256usize, 1024usize);
    let n = rows * cols;
    let x = Tensor::randn(&gpu, &[rows, cols], 1.0, 1)?;
    let gamma = Tensor::ones(&gpu, &[cols])?;
    let beta = Tensor::zeros(&gpu, &[cols])?;
    let logits = Tensor::randn(&gpu, &[rows, vocab], 1.0, 2)?;
    let targets: Vec<u32> = (0..rows as u32)
        .map(|i| 4 + i % (vocab as u32 - 4))
        .collect();
    let targets = Tensor::from_u32(&gpu, &targets, &[rows])?;
    // A 1 M-parameter AdamW update.
    let p = 1 << 20;
    let (param, grad) = (
        Tensor::randn(&gpu, &[p], 0.1, 3)?,
        Tensor::randn(&gpu, &[p], 0.1, 4)?,
    );
    let (m, v) = (Tensor::zeros(&gpu, &[p])?, Tensor::zeros(&gpu, &[p])?);
    let big = Tensor::randn(&gpu, &[p], 1.0, 5)?;

    let gbps = |bytes: usize, secs: f64| bytes as f64 / secs / 1e9;
    let copy_small = time(&gpu, reps, || ops::scale(&x, 1.0).map(|_| ()))?;
    let copy_logits = time(&gpu, reps, || ops::scale(&logits, 1.0).map(|_| ()))?;
    let copy_big = time(&gpu, reps, || ops::scale(&big, 1.0).map(|_| ()))?;
    let rows_out = [
        ("scale (baseline) [2048x256]", 8 * n, copy_small, copy_small),
        (
            "layer_norm forward [2048x256], 8 lanes/row",
            8 * n,
            with_width(&gpu, RowWidth::Narrow, || {
                time(&gpu, reps, || {
                    ops::layer_norm(&x, &gamma, &beta, 1e-5).map(|_| ())
                })
            })?,
            copy_small,
        ),
        (
            "layer_norm forward [2048x256], 64 lanes/row",
            8 * n,
            with_width(&gpu, RowWidth::Wide, || {
                time(&gpu, reps, || {
                    ops::layer_norm(&x, &gamma, &beta, 1e-5).map(|_| ())
                })
            })?,
            copy_small,
        ),
        (
            "scale (baseline) [2048x1024]",
            8 * rows * vocab,
            copy_logits,
            copy_logits,
        ),
        (
            "softmax + CE forward [2048x1024], 8 lanes/row",
            4 * rows * vocab,
            with_width(&gpu, RowWidth::Narrow, || {
                time(&gpu, reps, || {
                    ops::cross_entropy(&logits, &targets, 0, 0.0).map(|_| ())
                })
            })?,
            copy_logits,
        ),
        (
            "softmax + CE forward [2048x1024], 64 lanes/row",
            4 * rows * vocab,
            with_width(&gpu, RowWidth::Wide, || {
                time(&gpu, reps, || {
                    ops::cross_entropy(&logits, &targets, 0, 0.0).map(|_| ())
                })
            })?,
            copy_logits,
        ),
        ("scale (baseline) [1M]", 8 * p, copy_big, copy_big),
        (
            "adamw_update [1M params]",
            28 * p,
            time(&gpu, reps, || adamw(&param, &grad, &m, &v))?,
            copy_big,
        ),
    ];
    println!(
        "{:<46} {:>9} {:>9} {:>12}",
        "kernel", "ms", "GB/s", "vs baseline"
    );
    for (name, bytes, secs, base) in rows_out {
        let base_bytes = if name.contains("1M") {
            8 * p
        } else if name.contains("1024") {
            8 * rows * vocab
        } else {
            8 * n
        };
        println!(
            "{name:<46} {:>9.3} {:>9.2} {:>11.2}x",
            secs * 1e3,
            gbps(bytes, secs),
            gbps(bytes, secs) / gbps(base_bytes, base)
        );
    }
    Ok(())
}

/// `f` with every row kernel of `gpu` forced to `width` (both row-kernel shapes, side by side).
fn with_width<T>(gpu: &Gpu, width: RowWidth, f: impl FnOnce() -> T) -> T {
    let before = gpu.policy();
    gpu.set_policy(KernelPolicy {
        row_width: Some(width),
        ..before.clone()
    });
    let out = f();
    gpu.set_policy(before);
    out
}

fn adamw(param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor) -> wgformer::Result<()> {
    let h = AdamWParams::default();
    ops::adamw_update(param, grad, m, v, &h, 1, None)
}
