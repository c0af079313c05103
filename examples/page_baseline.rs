//! What the demo page's smoke run (`web/main.js`, `?smoke=N`) does, natively, for a side-by-side
//! figure (`scripts/web_vs_native` runs both): train the small char LM of
//! `configs/clm-small.yaml` for N steps (default 40) and report tokens per second, then
//! transcribe `tests/fixtures/audio/held_out_sentence.wav` with the shipped recognizer and, when
//! installed, Whisper tiny.en (beam 5, as `asr`), reporting each real-time factor. Model loading
//! is left out of the times; the first call's pipeline compilation is in them, as in the page.
//!
//!     cargo run --release --example page_baseline -- [STEPS]

use std::path::Path;
use std::time::Instant;
use wgformer::audio;
use wgformer::config::Config;
use wgformer::inference::{Recognizer, WhisperOptions, WhisperRecognizer};
use wgformer::train::clm::ClmTraining;
use wgformer::Gpu;

fn main() -> wgformer::Result<()> {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter_name());

    let config = Config::load("configs/clm-small.yaml")?;
    let text = wgformer::data::read_text(&config.data.path)?;
    let mut training = ClmTraining::new(&gpu, &config, &text)?;
    let started = Instant::now();
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(training.step()?.loss);
    }
    let t = &config.train;
    let rate = (steps * t.batch_size * t.seq_len) as f64 / started.elapsed().as_secs_f64();
    // As the page reports it: the mean of the first three losses and of the last three.
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "clm-small: loss {:.3} -> {:.3} over {steps} steps, {rate:.0} tokens/s",
        mean(&losses[..3.min(steps)]),
        mean(&losses[steps.saturating_sub(3)..])
    );

    let clip = Path::new("tests/fixtures/audio/held_out_sentence.wav");
    let wave = audio::read_wav(clip)?;
    let seconds = wave.seconds();
    let recognizer = Recognizer::load(&gpu, Path::new("models/asr"), None)?;
    let started = Instant::now();
    let text = recognizer
        .transcribe_waveform(&wave, &recognizer.decoding)?
        .text;
    let rtf = started.elapsed().as_secs_f64() / seconds;
    println!("asr: {text:?}, real-time factor {rtf:.2}");

    let whisper = Path::new("models/whisper-tiny.en");
    if whisper.join("model.bin").is_file() {
        let w = WhisperRecognizer::load(&gpu, whisper)?;
        let samples = audio::resample(&wave.samples, wave.sample_rate, audio::TARGET_RATE)?;
        let opts = WhisperOptions {
            beam_width: 5,
            ..WhisperOptions::default()
        };
        let started = Instant::now();
        let text = w.transcribe(&samples, &opts)?;
        let rtf = started.elapsed().as_secs_f64() / seconds;
        println!("whisper: {text:?}, real-time factor {rtf:.2}");
    }
    Ok(())
}
