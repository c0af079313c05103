//! Tune this machine's kernel choices once, for the shapes of given jobs, and store them in the
//! tuning cache that every later process reads (`KernelPolicy::tuning`, `Cached` by default).
//! Training and inference never time kernels themselves: this is the step that does.
//!
//!     cargo run --release --example tune -- [--clm CONFIG]... [--asr CONFIG]... [--recognizer DIR]
//!
//! Without arguments: `--clm configs/clm.yaml --asr configs/asr.yaml --recognizer models/asr`.
//! For each CLM config, one training step of its model on a batch of its shape and a short
//! greedy generation; for each ASR config, one training step of its model on batches of
//! utterances from 2.5 to 20 s (filling `train.max_frames` as its batcher does); for the
//! recognizer, transcriptions of clips from 1 to 16 s. Every matmul shape class these meet
//! and the cache lacks is timed once, variant by variant, and the fastest stored. The cache
//! file is `WGFORMER_AUTOTUNE_CACHE`, else `~/.cache/wgformer/autotune.json`; delete it (or
//! the adapter's entry) to tune again, e.g. after a driver update.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wgformer::config::{AsrConfig, Config, TokenizerKind};
use wgformer::data::asr::AsrBatch;
use wgformer::data::Batch;
use wgformer::decode::{greedy, CausalLmDecoder};
use wgformer::inference::{clm, recognizer, Recognizer};
use wgformer::models::{DecoderOnlyTransformer, EncoderDecoderTransformer};
use wgformer::nn::Module;
use wgformer::ops::{KernelPolicy, Tuning};
use wgformer::rng::SplitMix64;
use wgformer::train::asr_loss::asr_loss;
use wgformer::train::clm::lm_loss;
use wgformer::train::{LrSchedule, Trainer};
use wgformer::{Gpu, Result};

/// Tune this machine's kernel choices for the shapes of given jobs.
#[derive(Parser, Debug)]
#[command(name = "tune")]
struct Jobs {
    /// A CLM config: one training step of its model and a short generation.
    #[arg(long = "clm", value_name = "CONFIG")]
    clm: Vec<PathBuf>,
    /// An ASR config: training steps of its model on utterances of 2.5 to 20 s.
    #[arg(long = "asr", value_name = "CONFIG")]
    asr: Vec<PathBuf>,
    /// A recognizer checkpoint: transcriptions of clips from 1 to 16 s.
    #[arg(long = "recognizer", value_name = "DIR")]
    recognizers: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let mut jobs = Jobs::parse();
    if jobs.clm.is_empty() && jobs.asr.is_empty() && jobs.recognizers.is_empty() {
        jobs.clm.push("configs/clm.yaml".into());
        jobs.asr.push("configs/asr.yaml".into());
        jobs.recognizers.push("models/asr".into());
    }
    match tune(&jobs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tune: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tune(jobs: &Jobs) -> Result<()> {
    let gpu = Gpu::shared()?;
    let policy = gpu.policy();
    let Some(cache) = policy.tune_cache.clone() else {
        return Err(wgformer::Error::Gpu(
            "no place for the tuning cache: set WGFORMER_AUTOTUNE_CACHE (or HOME)".into(),
        ));
    };
    gpu.set_policy(KernelPolicy {
        tuning: Tuning::Trials,
        ..policy
    });
    println!("adapter: {}", gpu.adapter_name());
    println!("tuning cache: {}", cache.display());
    for path in &jobs.clm {
        timed(&format!("CLM {}", path.display()), || clm_job(&gpu, path))?;
    }
    for path in &jobs.asr {
        timed(&format!("ASR {}", path.display()), || asr_job(&gpu, path))?;
    }
    for dir in &jobs.recognizers {
        timed(&format!("recognizer {}", dir.display()), || {
            recognizer_job(&gpu, dir)
        })?;
    }
    Ok(())
}

fn timed(what: &str, job: impl FnOnce() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    job()?;
    println!("{what}: tuned in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The vocabulary size a CLM config's tokenizer has (a char tokenizer's depends on the text).
fn clm_vocab(config: &Config) -> Result<usize> {
    if config.tokenizer.kind == TokenizerKind::Bpe {
        return Ok(config.tokenizer.vocab_size);
    }
    let text = std::fs::read_to_string(&config.data.path)
        .map_err(|e| wgformer::Error::io(&config.data.path, e))?;
    let text = wgformer::data::prepare_text(&config.tokenizer, &text);
    Ok(wgformer::data::build_tokenizer(&config.tokenizer, &text)?.vocab_size())
}

/// One training step on a random batch of the config's shape, then greedy generation.
fn clm_job(gpu: &Gpu, path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    let vocab = clm_vocab(&config)?;
    let model = DecoderOnlyTransformer::new(gpu, clm::model_config(&config, vocab), 1)?;
    let optimizer = wgformer::train::trainer::optimizer(model.params(), &config.optimizer)?;
    let (batch, seq) = (config.train.batch_size, config.train.seq_len);
    let mut rng = SplitMix64::new(5);
    let mut tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| 4 + (rng.next_u64() % (vocab as u64 - 4)) as u32)
            .collect()
    };
    let b = Batch {
        inputs: tokens(batch * seq),
        targets: tokens(batch * seq),
        lens: vec![seq as u32; batch],
        batch_size: batch,
        seq_len: seq,
    };
    let mut trainer = Trainer::new(
        optimizer,
        LrSchedule::constant(1e-4),
        config.train.max_grad_norm as f32,
        0,
    );
    let smoothing = config.train.label_smoothing as f32;
    trainer.step(1, |_, ctx| lm_loss(&model, &b, ctx, smoothing))?;
    let prompt = tokens(seq / 2);
    greedy(&CausalLmDecoder(&model), &prompt, 8, None)?;
    Ok(())
}

/// Training steps of the config's model on utterances of 2.5, 5, 10 and 20 s, each batch as
/// many utterances as `train.max_frames` (and `train.max_batch`) allow.
fn asr_job(gpu: &Gpu, path: &Path) -> Result<()> {
    let config = AsrConfig::load_with_overrides(path, &[] as &[&str])?;
    let vocab = wgformer::data::asr::asr_tokenizer().vocab_size();
    let model = EncoderDecoderTransformer::new(gpu, recognizer::model_config(&config, vocab), 1)?;
    let optimizer = wgformer::train::trainer::optimizer(model.params(), &config.optimizer)?;
    let mut trainer = Trainer::new(
        optimizer,
        LrSchedule::constant(1e-5),
        config.train.max_grad_norm as f32,
        1,
    );
    let (smoothing, ctc_weight) = (
        config.train.label_smoothing as f32,
        config.model.ctc_weight as f32,
    );
    for frames in [256, 512, 1024, 2048] {
        let batch = (config.train.max_frames / frames).clamp(1, config.train.max_batch);
        // About 16 characters per second of speech, as in the synthetic corpus.
        let chars = (frames * 16 / 100).min(config.model.max_target_len - 2);
        let b = AsrBatch::random(batch, frames, config.features.n_mels, chars, vocab);
        trainer.step(1, |_, ctx| asr_loss(&model, &b, ctx, smoothing, ctc_weight))?;
    }
    Ok(())
}

/// Transcriptions of 1, 2, 4, 8 and 16 s of a chirp, greedy and with the checkpoint's beam.
fn recognizer_job(gpu: &Gpu, dir: &Path) -> Result<()> {
    if !dir.join("model.safetensors").exists() {
        println!("no recognizer in {}: skipped", dir.display());
        return Ok(());
    }
    let recognizer = Recognizer::load(gpu, dir, None)?;
    for seconds in [1, 2, 4, 8, 16] {
        let clip: Vec<f32> = (0..seconds * 16_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.1 * (2.0 * std::f32::consts::PI * (200.0 + 300.0 * t) * t).sin()
            })
            .collect();
        for beam_width in [1, 4] {
            recognizer.transcribe(&clip, &recognizer.decoding.with_beam(beam_width))?;
        }
    }
    Ok(())
}
