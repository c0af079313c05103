//! Causal-LM throughput on the reference config of the performance issue
//! (vocab 1024, d_model 256, 4 layers, 4 heads, d_ff 1024, seq 128, batch 16, AdamW):
//! training tokens/s with dispatches, submits and readbacks per step, and greedy generation
//! tokens/s with and without the KV cache, measured side by side in one run.
//!
//!     cargo bench --bench clm            (WGFORMER_BENCH_QUICK=1 for a shorter run;
//!                                         WGFORMER_PROFILE=1 adds per-kernel times)

use std::time::Instant;
use wgformer::data::Batch;
use wgformer::decode::{greedy, CausalLmDecoder, Recompute};
use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use wgformer::nn::Module;
use wgformer::ops::AdamWParams;
use wgformer::train::{Decay, LmTrainer, LrSchedule, Warmup};
use wgformer::{AdamW, Gpu};

fn main() -> wgformer::Result<()> {
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok();
    let gpu = Gpu::shared()?;
    let (batch, seq, vocab) = (16usize, 128usize, 1024usize);
    let config = DecoderOnlyConfig {
        vocab_size: vocab,
        d_model: 256,
        d_ff: 1024,
        num_layers: 4,
        num_heads: 4,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 512,
        activation: wgformer::ops::Activation::Gelu,
    };
    let model = DecoderOnlyTransformer::new(&gpu, config, 1)?;
    let optimizer = AdamW::new(model.params(), AdamWParams::default())?;
    let mut trainer = LmTrainer {
        model,
        optimizer,
        schedule: LrSchedule::new(1e-3, 1e-3, 0, Warmup::Linear, Decay::Constant, 1000),
        label_smoothing: 0.0,
        max_grad_norm: 1.0,
        pad_id: 0,
        step: 0,
        seed: 0,
    };
    let mut rng = wgformer::rng::SplitMix64::new(5);
    let tokens: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| 4 + (rng.next_u64() % (vocab as u64 - 4)) as u32)
        .collect();
    let mut b = Batch {
        inputs: vec![],
        targets: vec![],
        lens: vec![seq as u32; batch],
        batch_size: batch,
        seq_len: seq,
    };
    for row in tokens.chunks(seq + 1) {
        b.inputs.extend_from_slice(&row[..seq]);
        b.targets.extend_from_slice(&row[1..]);
    }
    println!("adapter: {}", gpu.adapter_name());
    let warm = Instant::now();
    trainer.train_step(std::slice::from_ref(&b))?;
    trainer.train_step(std::slice::from_ref(&b))?;
    println!(
        "first two steps (pipeline compilation, pool warm-up): {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    let steps = if quick { 2 } else { 5 };
    let before = gpu.counters();
    let t = Instant::now();
    for _ in 0..steps {
        trainer.train_step(std::slice::from_ref(&b))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let c = gpu.counters() - before;
    let per = |x: u64| x as f64 / steps as f64;
    println!(
        "train_step: {:.0} tokens/s ({:.2} s/step); per step: {:.0} dispatches, {:.1} submits, {:.0} bytes read back, {:.1} buffers created, {:.1} pipelines compiled",
        (steps * batch * seq) as f64 / secs,
        secs / steps as f64,
        per(c.dispatches),
        per(c.submits),
        per(c.bytes_read_back),
        per(c.buffers_created),
        per(c.pipelines_compiled)
    );

    // WGFORMER_PROFILE=1: where one training step's time goes, per kernel (each dispatch then
    // runs on its own, so the step is slower and small kernels are overstated).
    let profile = std::env::var("WGFORMER_PROFILE").is_ok_and(|v| v == "1");
    if profile {
        gpu.set_profiling(true)?;
        trainer.train_step(std::slice::from_ref(&b))?;
        gpu.set_profiling(false)?;
        println!(
            "one training step, per kernel:\n{}",
            wgformer::gpu::format_profile(&gpu.profile())
        );
        gpu.reset_profile();
    }

    let model = &trainer.model;
    let new_tokens = if quick { 16 } else { 64 };
    let prompt = [2u32, 10, 11, 12];
    let rate = |cached: bool| -> wgformer::Result<f64> {
        let t = Instant::now();
        let out = if cached {
            greedy(&CausalLmDecoder(model), &prompt, new_tokens, None)?
        } else {
            greedy(&Recompute(model), &prompt, new_tokens, None)?
        };
        Ok(out.len() as f64 / t.elapsed().as_secs_f64())
    };
    rate(true)?; // warm-up: compile the T = 1 kernels
    if profile {
        gpu.set_profiling(true)?;
        greedy(&CausalLmDecoder(model), &prompt, new_tokens, None)?;
        gpu.set_profiling(false)?;
        println!(
            "generating {new_tokens} tokens with the KV cache, per kernel:\n{}",
            wgformer::gpu::format_profile(&gpu.profile())
        );
        gpu.reset_profile();
    }
    let (with, without) = (rate(true)?, rate(false)?);
    println!("generate ({new_tokens} tokens, greedy): {with:.1} tokens/s with KV cache, {without:.1} without; ratio {:.2}x", with / without);
    Ok(())
}
