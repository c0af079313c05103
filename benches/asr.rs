//! Real-time factor of speech recognition: seconds of compute per second of audio for
//! `Recognizer::transcribe` (features on the CPU, encoder and cached greedy / beam decoding on
//! the GPU), on the adapter it runs on.
//!
//!     cargo bench --bench asr            (uses models/asr if present, else a fresh model)
//!
//! The audio is the repository's test clips when the corpus exists (data/speech/test.tsv),
//! else synthetic tones; the table prints the RTF of each decoding mode.

use std::path::Path;
use std::time::Instant;
use wgformer::audio::load_16k;
use wgformer::data::asr::read_manifest;
use wgformer::train::asr::{Recognizer, TranscribeOptions};
use wgformer::Gpu;

fn main() -> wgformer::Result<()> {
    wgformer::ops::enable_autotune_unless_disabled();
    let gpu = Gpu::shared()?;
    println!("adapter: {}", gpu.adapter_name());
    let dir = Path::new("models/asr");
    if !dir.join("model.safetensors").exists() {
        println!("no trained recognizer in models/asr: train one with `cargo run --release --example train_asr`");
        return Ok(());
    }
    let recognizer = Recognizer::load(&gpu, dir, None)?;
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok();
    let clips: Vec<Vec<f32>> = match read_manifest("data/speech/test.tsv") {
        Ok(entries) => entries
            .iter()
            .take(if quick { 4 } else { 20 })
            .map(|e| load_16k(&e.audio))
            .collect::<wgformer::Result<_>>()?,
        Err(_) => (1..=4)
            .map(|s| {
                (0..16_000 * s)
                    .map(|i| (i as f32 * 0.05).sin() * 0.3)
                    .collect()
            })
            .collect(),
    };
    let audio_seconds: f64 = clips.iter().map(|c| c.len() as f64 / 16_000.0).sum();
    recognizer.transcribe(&clips[0], &TranscribeOptions::default())?; // warm-up
    for beam_width in [1usize, 4] {
        let opts = TranscribeOptions {
            beam_width,
            ..Default::default()
        };
        let t = Instant::now();
        for clip in &clips {
            recognizer.transcribe(clip, &opts)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "asr beam {beam_width}: {:.2} s of compute for {:.1} s of audio ({} clips): real-time factor {:.3}",
            secs,
            audio_seconds,
            clips.len(),
            secs / audio_seconds
        );
    }
    Ok(())
}
