//! Causal-LM throughput on the reference CLM (vocab 1024, d_model 256, 4 layers, 4 heads,
//! d_ff 1024, seq 128, batch 16, AdamW), or on the model and batch shape of a CLM config:
//! the time to the first two training steps (wall and CPU, pipeline compilation included),
//! training tokens/s with dispatches, submits and readbacks per step, and greedy generation
//! tokens/s with and without the KV cache, measured side by side in one run.
//!
//!     cargo bench --bench clm     WGFORMER_BENCH_QUICK=1: a shorter run;
//!                                 WGFORMER_BENCH_CONFIG=configs/clm.yaml: that config's model;
//!                                 WGFORMER_BENCH_MODEL=gpt2-small: GPT-2 small's sizes
//!                                 (d_model 768, 12 layers, 12 heads, d_ff 3072, vocab 50,304,
//!                                 batch 8 x 1024); WGFORMER_BENCH_BATCH / _SEQ override the
//!                                 batch shape; WGFORMER_BENCH_PRECISION=mixed trains as
//!                                 `train.precision: mixed`; WGFORMER_BENCH_GENERATE=0 skips
//!                                 generation; WGFORMER_SUBMIT_EVERY=N: a submit every N
//!                                 dispatches (the adapter's default otherwise);
//!                                 WGFORMER_PROFILE=1: per-kernel times of the first step
//!                                 (compilation included) and of a later one
//!
//! The last line, `RESULT ...`, is what scripts/gpu_vs_pytorch reads (beside PyTorch's
//! scripts/pytorch_clm.py on the same model).
//!
//! For the cold start, empty Mesa's shader cache first (`MESA_SHADER_CACHE_DIR=$(mktemp -d)`).

use std::time::Instant;
use wgformer::config::{Config, LossScaleConfig, Precision, TokenizerKind};
use wgformer::data::Batch;
use wgformer::decode::{greedy, CausalLmDecoder, Recompute};
use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use wgformer::nn::Module;
use wgformer::ops::AdamWParams;
use wgformer::train::clm::lm_loss;
use wgformer::train::{LrSchedule, Trainer};
use wgformer::{AdamW, Gpu};

/// CPU seconds this process has used, every thread (lavapipe's) included; Linux only.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name; utime and stime are the 12th and 13th, in ticks.
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A usize from the environment, if set.
fn env_usize(var: &str) -> Option<usize> {
    std::env::var(var).ok()?.parse().ok()
}

/// The model and (batch, seq) of the reference CLM, of GPT-2 small, or of
/// `WGFORMER_BENCH_CONFIG`'s config; then the batch shape overrides.
fn model_and_batch() -> wgformer::Result<(DecoderOnlyConfig, usize, usize)> {
    let (mut config, batch, seq) = preset()?;
    let (batch, seq) = (
        env_usize("WGFORMER_BENCH_BATCH").unwrap_or(batch),
        env_usize("WGFORMER_BENCH_SEQ").unwrap_or(seq),
    );
    config.max_seq_len = config.max_seq_len.max(seq);
    Ok((config, batch, seq))
}

fn preset() -> wgformer::Result<(DecoderOnlyConfig, usize, usize)> {
    let sized = |vocab_size, d_model, num_layers, num_heads, d_ff| DecoderOnlyConfig {
        vocab_size,
        d_model,
        d_ff,
        num_layers,
        num_heads,
        dropout: 0.0,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 512,
        activation: wgformer::ops::Activation::Gelu,
    };
    if std::env::var("WGFORMER_BENCH_MODEL").is_ok_and(|m| m == "gpt2-small") {
        return Ok((sized(50304, 768, 12, 12, 3072), 8, 1024));
    }
    let Ok(path) = std::env::var("WGFORMER_BENCH_CONFIG") else {
        return Ok((sized(1024, 256, 4, 4, 1024), 16, 128));
    };
    let config = Config::load(&path)?;
    let vocab = match config.tokenizer.kind {
        TokenizerKind::Bpe => config.tokenizer.vocab_size,
        _ => {
            let text = std::fs::read_to_string(&config.data.path)
                .map_err(|e| wgformer::Error::io(&config.data.path, e))?;
            let text = wgformer::data::prepare_text(&config.tokenizer, &text);
            wgformer::data::build_tokenizer(&config.tokenizer, &text)?.vocab_size()
        }
    };
    let model = wgformer::inference::clm::model_config(&config, vocab);
    Ok((model, config.train.batch_size, config.train.seq_len))
}

fn main() -> wgformer::Result<()> {
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok();
    let profile = std::env::var("WGFORMER_PROFILE").is_ok_and(|v| v == "1");
    let gpu = Gpu::shared()?;
    let (config, batch, seq) = model_and_batch()?;
    let vocab = config.vocab_size;
    let shape = format!(
        "d_model {}, {} layers, {} heads, vocab {vocab}; batch {batch} x {seq}",
        config.d_model, config.num_layers, config.num_heads
    );
    let model = DecoderOnlyTransformer::new(&gpu, config, 1)?;
    let params: usize = model.params().iter().map(|p| p.numel()).sum();
    let optimizer = AdamW::new(model.params(), AdamWParams::default())?;
    let mut trainer = Trainer::new(optimizer, LrSchedule::constant(1e-3), 1.0, 0);
    let precision = match std::env::var("WGFORMER_BENCH_PRECISION").as_deref() {
        Ok("mixed") => Precision::Mixed,
        _ => Precision::F32,
    };
    trainer.set_precision(precision, &LossScaleConfig::default(), true);
    let mut rng = wgformer::rng::SplitMix64::new(5);
    let tokens: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| 4 + (rng.next_u64() % (vocab as u64 - 4)) as u32)
        .collect();
    let b = Batch::from_windows(&tokens, seq)?;
    println!("adapter: {}", gpu.adapter_name());
    println!("model: {shape}");
    let (warm, cpu) = (Instant::now(), cpu_seconds());
    if profile {
        // Each kernel's first dispatch waits for its compilation (lavapipe compiles a
        // pipeline when it first runs): this table is what the cold start costs, per kernel.
        gpu.set_profiling(true)?;
        trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, 0.0))?;
        gpu.set_profiling(false)?;
        println!(
            "first training step, per kernel (compilation included):\n{}",
            wgformer::gpu::format_profile(&gpu.profile())
        );
        gpu.reset_profile();
    } else {
        trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, 0.0))?;
    }
    trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, 0.0))?;
    let pooled_after_two = gpu.pooled_bytes();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
    println!(
        "first two steps (pipeline compilation, pool warm-up): {:.1} s wall, {} CPU, {} pipelines",
        warm.elapsed().as_secs_f64(),
        cpu.map_or("?".to_string(), |c| format!("{c:.1} s")),
        gpu.counters().pipelines_compiled
    );
    let steps = if quick { 2 } else { 5 };
    let before = gpu.counters();
    let t = Instant::now();
    for _ in 0..steps {
        trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, 0.0))?;
    }
    let secs = t.elapsed().as_secs_f64();
    let c = gpu.counters() - before;
    let per = |x: u64| x as f64 / steps as f64;
    // The step's wall time is the CPU recording it plus the wait for the device's tail.
    let wait_ms = per(c.wait_micros) / 1e3;
    let record_ms = secs * 1e3 / steps as f64 - wait_ms;
    println!(
        "train_step: {:.0} tokens/s ({:.2} s/step: {record_ms:.1} ms recording, {wait_ms:.1} ms waiting for the device); per step: {:.0} dispatches, {:.1} submits (every {} dispatches), {:.0} bytes read back, {:.1} buffers created, {:.1} pipelines compiled",
        (steps * batch * seq) as f64 / secs,
        secs / steps as f64,
        per(c.dispatches),
        per(c.submits),
        gpu.submit_every(),
        per(c.bytes_read_back),
        per(c.buffers_created),
        per(c.pipelines_compiled)
    );
    let result = format!(
        "RESULT system=wgformer precision={precision:?} params={params} batch={batch} seq={seq} \
         tokens_per_s={:.0} s_per_step={:.4} pooled_mib={:.0} dispatches={:.0} \
         submit_every={} record_ms={record_ms:.2} wait_ms={wait_ms:.2}",
        (steps * batch * seq) as f64 / secs,
        secs / steps as f64,
        pooled_after_two.max(gpu.pooled_bytes()) as f64 / (1 << 20) as f64,
        per(c.dispatches),
        gpu.submit_every()
    );
    if std::env::var("WGFORMER_BENCH_GENERATE").is_ok_and(|v| v == "0") {
        println!("{result}");
        return Ok(());
    }

    // WGFORMER_PROFILE=1: where one training step's time goes, per kernel (each dispatch then
    // runs on its own, so the step is slower and small kernels are overstated).
    if profile {
        gpu.set_profiling(true)?;
        trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, 0.0))?;
        gpu.set_profiling(false)?;
        println!(
            "one training step, per kernel:\n{}",
            wgformer::gpu::format_profile(&gpu.profile())
        );
        gpu.reset_profile();
    }

    let model = &model;
    let new_tokens = if quick { 16 } else { 64 };
    let prompt = [2u32, 10, 11, 12];
    // (tokens/s, dispatches per token)
    let rate = |cached: bool| -> wgformer::Result<(f64, f64)> {
        let (t, before) = (Instant::now(), gpu.counters());
        let out = if cached {
            greedy(&CausalLmDecoder(model), &prompt, new_tokens, None)?
        } else {
            greedy(&Recompute(model), &prompt, new_tokens, None)?
        };
        let dispatches = (gpu.counters() - before).dispatches as f64 / out.len() as f64;
        Ok((out.len() as f64 / t.elapsed().as_secs_f64(), dispatches))
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
    let ((with, per_token), (without, _)) = (rate(true)?, rate(false)?);
    println!("generate ({new_tokens} tokens, greedy): {with:.1} tokens/s with KV cache ({per_token:.0} dispatches per token), {without:.1} without; ratio {:.2}x", with / without);
    println!("{result}");
    Ok(())
}
