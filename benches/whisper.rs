//! Whisper tiny.en's shapes on the adapter it runs on, one window at a time against windows
//! decoded together, side by side in one run:
//! - encoder: ms per 30 s window (`Whisper::encode_windows`, N windows in one batch);
//! - decoder: `greedy_windows` over N windows for a fixed number of tokens each, in ms per
//!   step (every sequence gets one token per step) and per token;
//! - windows per second for a window of that many tokens, and the batch's gain over one.
//!
//!     cargo bench --bench whisper
//!
//! `WGFORMER_BENCH_WINDOWS=N`: windows together (default 8); `WGFORMER_BENCH_TOKENS=T`: tokens
//! per window (default 24).
//!
//! The weights are random (speed does not depend on them), so it needs no download; the
//! output projection is read in half precision, as for the f16 weights the recognizer loads.
//! End-of-text is suppressed so every window decodes exactly T tokens. The last lines,
//! `RESULT ...`, are what scripts/gpu_vs_pytorch reads.

use std::time::Instant;
use wgformer::gpu::block_on;
use wgformer::inference::whisper::{greedy_windows, WhisperDecoder, WhisperTokens};
use wgformer::models::whisper::{Whisper, WhisperConfig};
use wgformer::ops::HalfMatrix;
use wgformer::rng::uniform_vec;
use wgformer::{Gpu, Result};

fn tiny_en() -> WhisperConfig {
    WhisperConfig {
        n_mels: 80,
        d_model: 384,
        encoder_layers: 4,
        encoder_heads: 6,
        encoder_ffn: 1536,
        decoder_layers: 4,
        decoder_heads: 6,
        decoder_ffn: 1536,
        vocab_size: 51864,
        max_source_positions: 1500,
        max_target_positions: 448,
    }
}

/// tiny.en's special tokens; end-of-text suppressed, so decoding runs to `max_new`.
fn tokens() -> WhisperTokens {
    WhisperTokens {
        eot: 50256,
        sot: 50257,
        no_timestamps: 50362,
        timestamp_begin: 50363,
        no_speech: Some(50361),
        languages: Vec::new(),
        language: None,
        task: None,
        suppress: vec![50256],
        blank: Vec::new(),
    }
}

struct Timing {
    windows: usize,
    encoder_ms_per_window: f64,
    decoder_ms_per_step: f64,
}

impl Timing {
    fn windows_per_s(&self, tokens: usize) -> f64 {
        let per_batch_ms = self.encoder_ms_per_window * self.windows as f64
            + self.decoder_ms_per_step * (tokens + 1) as f64;
        self.windows as f64 / per_batch_ms * 1e3
    }
}

/// Encode and decode `windows` windows together, `runs` times after one warm-up run.
fn time(model: &Whisper, half: &HalfMatrix, windows: usize, tokens: usize) -> Result<Timing> {
    let c = &model.config;
    let mels: Vec<Vec<f32>> = (0..windows)
        .map(|i| uniform_vec(c.window_frames() * c.n_mels, -1.0, 1.0, i as u64))
        .collect();
    let mels: Vec<&[f32]> = mels.iter().map(Vec::as_slice).collect();
    let special = self::tokens();
    let prompt = special.prompt(false);
    let run = || -> Result<(f64, f64)> {
        let started = Instant::now();
        let memory = model.encode_windows(&mels)?;
        model.gpu().synchronize()?;
        let encoder = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let dec = WhisperDecoder::new(model, &memory, &special, false).with_output_half(Some(half));
        let decoded = block_on(greedy_windows(&dec, &prompt, tokens))?;
        assert!(decoded.iter().all(|g| g.tokens.len() == tokens));
        Ok((encoder, started.elapsed().as_secs_f64()))
    };
    run()?;
    let runs = 2;
    let (mut encoder, mut decoder) = (0.0, 0.0);
    for _ in 0..runs {
        let (e, d) = run()?;
        encoder += e;
        decoder += d;
    }
    Ok(Timing {
        windows,
        encoder_ms_per_window: encoder * 1e3 / (runs * windows) as f64,
        // The prompt's step and one per token.
        decoder_ms_per_step: decoder * 1e3 / (runs * (tokens + 1)) as f64,
    })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let gpu = Gpu::shared()?;
    let windows = env_usize("WGFORMER_BENCH_WINDOWS", 8);
    let tokens = env_usize("WGFORMER_BENCH_TOKENS", 24);
    let model = Whisper::random(&gpu, tiny_en(), 1)?;
    let c = &model.config;
    let table = model.embed_tokens.to_vec()?;
    let half = HalfMatrix::new(&gpu, &table, c.vocab_size, c.d_model)?;
    println!(
        "adapter {}: Whisper tiny.en shapes, random weights, {tokens} tokens per window",
        gpu.adapter_name()
    );
    let one = time(&model, &half, 1, tokens)?;
    let many = time(&model, &half, windows, tokens)?;
    for t in [&one, &many] {
        println!(
            "RESULT system=wgformer model=whisper-tiny.en windows={} encoder_ms_per_window={:.1} \
             decoder_ms_per_step={:.2} decoder_ms_per_token={:.2} windows_per_s={:.3}",
            t.windows,
            t.encoder_ms_per_window,
            t.decoder_ms_per_step,
            t.decoder_ms_per_step / t.windows as f64,
            t.windows_per_s(tokens)
        );
    }
    println!(
        "{windows} windows together: {:.2}x the windows per second of one at a time (encoder \
         {:.2}x, decoder per token {:.2}x)",
        many.windows_per_s(tokens) / one.windows_per_s(tokens),
        one.encoder_ms_per_window / many.encoder_ms_per_window,
        one.decoder_ms_per_step / (many.decoder_ms_per_step / windows as f64)
    );
    Ok(())
}
