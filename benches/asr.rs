//! The speech recognizer on the adapter it runs on:
//! - training: one step of `configs/asr.yaml`'s model on a synthetic batch shaped like the
//!   config's (47 utterances of 2.55 s, 40 characters each), in seconds of audio per second;
//!   `WGFORMER_PROFILE=1` adds the step's time per kernel (`Gpu::set_profiling`);
//! - real-time factor: seconds of compute per second of audio for `Recognizer::transcribe`
//!   (features on the CPU, encoder and cached greedy / beam decoding on the GPU), with
//!   models/asr when it is there.
//!
//!     cargo bench --bench asr
//!
//! The audio is the corpus's test clips when it exists (data/speech/test.tsv), else the test
//! fixture sentence; it prints the RTF of each decoding mode.

use std::path::Path;
use std::time::Instant;
use wgformer::audio::load_16k;
use wgformer::config::AsrConfig;
use wgformer::data::asr::{read_manifest, AsrBatch};
use wgformer::inference::recognizer::model_config;
use wgformer::inference::{Decoding, Recognizer};
use wgformer::models::EncoderDecoderTransformer;
use wgformer::nn::Module;
use wgformer::train::asr_loss::asr_loss;
use wgformer::train::LrSchedule;
use wgformer::train::Trainer;
use wgformer::Gpu;

/// Seconds of audio trained on per second, from a few steps after two warm-up steps.
fn train_step(gpu: &Gpu, quick: bool) -> wgformer::Result<()> {
    let config = AsrConfig::load_with_overrides("configs/asr.yaml", &[] as &[&str])?;
    let model = EncoderDecoderTransformer::new(gpu, model_config(&config, 31), 1)?;
    let optimizer = wgformer::train::trainer::optimizer(model.params(), &config.optimizer)?;
    let mut trainer = Trainer::new(
        optimizer,
        LrSchedule::constant(1e-3),
        config.train.max_grad_norm as f32,
        1,
    );
    let ls = config.train.label_smoothing as f32;
    let ctc = config.model.ctc_weight as f32;
    let (b, frames) = (47, 255);
    let batch = AsrBatch::random(b, frames, config.features.n_mels, 40, 31);
    trainer.step(1, |_, ctx| asr_loss(&model, &batch, ctx, ls, ctc))?;
    trainer.step(1, |_, ctx| asr_loss(&model, &batch, ctx, ls, ctc))?;
    let steps = if quick { 1 } else { 3 };
    let t = Instant::now();
    for _ in 0..steps {
        trainer.step(1, |_, ctx| asr_loss(&model, &batch, ctx, ls, ctc))?;
    }
    let step = t.elapsed().as_secs_f64() / steps as f64;
    let audio = (b * frames) as f64 * 0.01;
    println!(
        "asr train step (configs/asr.yaml model, {b} x {:.2} s): {step:.3} s, {:.1} s of audio per s",
        frames as f64 * 0.01,
        audio / step
    );
    if std::env::var("WGFORMER_PROFILE").is_ok_and(|v| v == "1") {
        gpu.set_profiling(true)?;
        trainer.step(1, |_, ctx| asr_loss(&model, &batch, ctx, ls, ctc))?;
        gpu.set_profiling(false)?;
        println!("{}", wgformer::gpu::format_profile(&gpu.profile()));
    }
    Ok(())
}

fn main() -> wgformer::Result<()> {
    let gpu = Gpu::shared()?;
    println!("adapter: {}", gpu.adapter_name());
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok();
    train_step(&gpu, quick)?;
    let dir = Path::new("models/asr");
    if !dir.join("model.safetensors").exists() {
        println!("no trained recognizer in models/asr: train one with `cargo run --release --example train_asr`");
        return Ok(());
    }
    let recognizer = Recognizer::load(&gpu, dir, None)?;
    let clips: Vec<Vec<f32>> = match read_manifest("data/speech/test.tsv") {
        Ok(entries) => entries
            .iter()
            .take(if quick { 4 } else { 20 })
            .map(|e| load_16k(&e.audio))
            .collect::<wgformer::Result<_>>()?,
        // Without the corpus: the held-out sentence of the tests, four times.
        Err(_) => vec![load_16k(Path::new("tests/fixtures/audio/held_out_sentence.wav"))?; 4],
    };
    let audio_seconds: f64 = clips.iter().map(|c| c.len() as f64 / 16_000.0).sum();
    recognizer.transcribe(&clips[0], &recognizer.decoding)?; // warm-up
    let modes = [
        ("CTC best path", Decoding::ctc_best_path()),
        ("attention greedy", Decoding::attention_greedy()),
        (
            "attention beam 4",
            Decoding::attention_greedy().with_beam(4),
        ),
        ("the checkpoint's decoding", recognizer.decoding.clone()),
    ];
    for (name, decoding) in modes {
        let t = Instant::now();
        for clip in &clips {
            recognizer.transcribe(clip, &decoding)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "asr {name}: {:.2} s of compute for {:.1} s of audio ({} clips): real-time factor {:.3}",
            secs,
            audio_seconds,
            clips.len(),
            secs / audio_seconds
        );
    }
    Ok(())
}
