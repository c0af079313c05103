//! Mixed-precision training (`train.precision: mixed`): the causal LM trained with its matmuls
//! in half precision follows the f32 loss curve, and dynamic loss scaling skips the steps whose
//! scaled gradients overflow f16, halving the scale, without touching the weights.
mod common;
use common::*;
use wgformer::config::{LossScaleConfig, Precision};
use wgformer::data::Batch;
use wgformer::gpu::{KernelPolicy, MatmulVariant};
use wgformer::models::DecoderOnlyTransformer;
use wgformer::nn::Module;
use wgformer::train::clm::lm_loss;
use wgformer::train::{StepStats, Trainer};
use wgformer::Gpu;

/// A device whose matmuls all take the row-block kernel, so that the tiny model's products
/// are packed (and so rounded to f16 in half precision) rather than left to the naive kernel.
fn device() -> Gpu {
    device_with(KernelPolicy {
        matmul: Some(MatmulVariant::RowBlock),
        ..KernelPolicy::default()
    })
}

/// The tiny causal LM, its trainer in `precision` on its own device, and a batch of 4 rows.
fn setup(
    precision: Precision,
    initial_scale: f64,
) -> (Gpu, DecoderOnlyTransformer, Trainer, Batch) {
    let gpu = device();
    let (model, mut trainer) = tiny_lm(&gpu, true, 5);
    let scale = LossScaleConfig {
        initial: initial_scale,
        growth_interval: 2000,
    };
    trainer.set_precision(precision, &scale, false);
    // 4 rows of 12 tokens (windows of 13).
    let tokens: Vec<u32> = (0..4)
        .flat_map(|r| (0..13).map(move |i| 4 + ((i * (r + 2) + r) % 9) as u32))
        .collect();
    let batch = Batch::from_windows(&tokens, 12).unwrap();
    (gpu, model, trainer, batch)
}

fn step(
    gpu: &Gpu,
    model: &DecoderOnlyTransformer,
    trainer: &mut Trainer,
    batch: &Batch,
) -> StepStats {
    let _on = use_device(gpu);
    trainer
        .step(1, |_, ctx| lm_loss(model, batch, ctx, 0.0))
        .unwrap()
}

#[test]
fn mixed_precision_training_follows_the_f32_loss_curve() {
    let (g32, m32, mut t32, batch) = setup(Precision::F32, 65536.0);
    let (g16, m16, mut t16, _) = setup(Precision::Mixed, 65536.0);
    assert!(t32.loss_scale.is_none());
    let (mut worst, mut differs) = (0.0f32, false);
    let (mut first, mut last) = ((0.0, 0.0), (0.0, 0.0));
    for i in 0..60 {
        let a = step(&g32, &m32, &mut t32, &batch);
        let b = step(&g16, &m16, &mut t16, &batch);
        assert!(!a.skipped && !b.skipped, "step {i}: {a:?} {b:?}");
        assert_eq!(b.loss_scale, Some(65536.0));
        if i == 0 {
            first = (a.loss, b.loss);
        }
        worst = worst.max((a.loss - b.loss).abs() / first.0);
        differs |= a.loss != b.loss;
        last = (a.loss, b.loss);
    }
    println!("{first:?} -> {last:?} (f32, mixed); largest gap {worst:.2e} of the first loss");
    assert!(
        last.0 < 0.5 * first.0 && last.1 < 0.5 * first.1,
        "{first:?} -> {last:?}"
    );
    // f16 operands move each loss by ~1e-3 relative; the curves stay within 1% of the start.
    assert!(
        worst < 0.01,
        "mixed precision left the f32 curve by {worst}"
    );
    if g16.has_f16() {
        assert!(
            differs,
            "the half-precision run computed exactly the f32 losses"
        );
    }
}

#[test]
fn an_overflowing_loss_scale_skips_the_step_and_halves_until_updates_apply() {
    // 2^40 times the gradient of the logits is far past f16's 65,504.
    let (gpu, model, mut trainer, batch) = setup(Precision::Mixed, 2f64.powi(40));
    let before: Vec<Vec<f32>> = model.params().iter().map(|p| p.to_vec().unwrap()).collect();
    let first = step(&gpu, &model, &mut trainer, &batch);
    if !gpu.has_f16() {
        // f32 matmuls hold 2^40 times a gradient: nothing overflows.
        assert!(!first.skipped && !first.overflow);
        return;
    }
    assert!(first.skipped && first.overflow, "{first:?}");
    assert!(
        first.loss.is_finite(),
        "the reported loss is the unscaled one"
    );
    let after: Vec<Vec<f32>> = model.params().iter().map(|p| p.to_vec().unwrap()).collect();
    assert_eq!(
        before, after,
        "an overflowing step must leave the weights alone"
    );
    let mut scale = 2f32.powi(40);
    let mut overflows = 1;
    let applied = loop {
        scale /= 2.0;
        let s = step(&gpu, &model, &mut trainer, &batch);
        assert_eq!(
            s.loss_scale,
            Some(scale),
            "the scale halves at each overflow"
        );
        if !s.skipped {
            break s;
        }
        assert!(s.overflow);
        overflows += 1;
        assert!(
            overflows < 40,
            "the scale never came down to what f16 holds"
        );
    };
    println!(
        "{overflows} overflows; first update at scale 2^{}",
        scale.log2()
    );
    assert!(applied.grad_norm.is_finite() && applied.grad_norm > 0.0);
    let moved = model.params()[0].to_vec().unwrap() != before[0];
    assert!(moved, "the first step without overflow updates the weights");
}

/// Bytes held after a recorded forward of a small causal LM (before its backward) beyond the
/// weights: what its backwards keep, and the loss. Also the pool's growth (the forward's peak).
fn activation_bytes(save_half: bool) -> (u64, u64) {
    let gpu = device_with(KernelPolicy {
        save_half,
        ..KernelPolicy::default()
    });
    let _on = use_device(&gpu);
    let config = wgformer::models::DecoderOnlyConfig {
        vocab_size: 13,
        d_model: 64,
        d_ff: 256,
        num_layers: 3,
        num_heads: 4,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 96,
        activation: wgformer::ops::Activation::Gelu,
    };
    let model = DecoderOnlyTransformer::new(&gpu, config, 3).unwrap();
    let (rows, seq) = (4, 96);
    let tokens: Vec<u32> = (0..rows * (seq + 1))
        .map(|i| 4 + (i * 7 % 9) as u32)
        .collect();
    let batch = Batch::from_windows(&tokens, seq).unwrap();
    let (held, pooled) = (gpu.held_bytes(), gpu.pooled_bytes());
    let loss = lm_loss(&model, &batch, &wgformer::nn::Ctx::train(1), 0.0).unwrap();
    let bytes = (gpu.held_bytes() - held, gpu.pooled_bytes() - pooled);
    // The backward works from what was kept.
    loss.backward().unwrap();
    assert!(model.params().iter().all(|p| p.grad().is_some()));
    bytes
}

#[test]
fn mixed_precision_keeps_about_half_the_activation_bytes() {
    let ((full, full_peak), (half, half_peak)) = (activation_bytes(false), activation_bytes(true));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "a forward keeps {:.2} MiB in f32, {:.2} MiB with f16 copies ({:.2}x); the pool grows \
         {:.2} vs {:.2} MiB ({:.2}x)",
        mib(full),
        mib(half),
        half as f64 / full as f64,
        mib(full_peak),
        mib(half_peak),
        half_peak as f64 / full_peak as f64,
    );
    assert!(
        (half as f64) < 0.65 * full as f64,
        "f16 copies kept {half} bytes vs {full} in f32"
    );
}
