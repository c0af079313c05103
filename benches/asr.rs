//! Real-time factor of speech recognition: seconds of compute per second of audio for
//! `Recognizer::transcribe` (features on the CPU, encoder and cached greedy / beam decoding on
//! the GPU), on the adapter it runs on.
//!
//!     cargo bench --bench asr            (uses models/asr if present, else a fresh model)
//!
//! The audio is the corpus's test clips when it exists (data/speech/test.tsv), else the test
//! fixture sentence; it prints the RTF of each decoding mode.

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
        // Without the corpus: the held-out sentence of the tests, four times.
        Err(_) => vec![load_16k(Path::new("tests/fixtures/audio/held_out_sentence.wav"))?; 4],
    };
    let audio_seconds: f64 = clips.iter().map(|c| c.len() as f64 / 16_000.0).sum();
    recognizer.transcribe(&clips[0], &TranscribeOptions::default())?; // warm-up
    use wgformer::config::DecodeMode::{Attention, Ctc};
    let modes = [
        ("CTC best path", Ctc, 1usize),
        ("attention greedy", Attention, 1),
        ("attention beam 4", Attention, 4),
    ];
    for (name, mode, beam_width) in modes {
        let opts = TranscribeOptions {
            mode: Some(mode),
            beam_width,
            ..Default::default()
        };
        let t = Instant::now();
        for clip in &clips {
            recognizer.transcribe(clip, &opts)?;
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
