//! Transcribe a WAV file with a trained speech recognizer.
//!
//!     cargo run --release --example asr -- clip.wav [--checkpoint DIR] [--attention [--beam N] | --ctc] [--lm CLM_DIR] [--lm-weight W]
//!
//! The transcript alone goes to stdout; logs and errors go to stderr, so scripts can use it.
//! The default checkpoint is the small model shipped in `models/asr` (see README).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::config::DecodeMode;
use wgformer::inference::{Recognizer, TranscribeOptions};

/// Transcribe a WAV file (any sample rate, channel count and PCM / float encoding).
#[derive(Parser, Debug)]
#[command(name = "asr")]
struct Args {
    /// The audio to transcribe.
    wav: PathBuf,
    /// A recognizer checkpoint directory.
    #[arg(long, default_value = "models/asr", value_name = "DIR")]
    checkpoint: PathBuf,
    /// Decode with the CTC head's best path.
    #[arg(long, conflicts_with_all = ["attention", "beam"])]
    ctc: bool,
    /// Decode with the attention decoder (beam search of the checkpoint's width unless --beam).
    #[arg(long)]
    attention: bool,
    /// Beams of the attention decoder (1: greedy).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// A causal-LM checkpoint fused into the attention decoder (shallow fusion).
    #[arg(long, value_name = "CLM_DIR")]
    lm: Option<PathBuf>,
    /// Shallow-fusion weight of --lm.
    #[arg(long, default_value_t = 0.3, value_parser = finite, requires = "lm")]
    lm_weight: f32,
}

fn finite(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = (|| {
        let gpu = wgformer::Gpu::shared()?;
        let recognizer = Recognizer::load(&gpu, &args.checkpoint, args.lm.as_deref())?;
        let mode = if args.ctc {
            Some(DecodeMode::Ctc)
        } else if args.attention || args.beam.is_some() {
            Some(DecodeMode::Attention)
        } else {
            None
        };
        let opts = TranscribeOptions {
            mode,
            beam_width: args.beam.map_or(recognizer.beam_width, |b| b as usize),
            lm_weight: args.lm_weight,
            ..TranscribeOptions::default()
        };
        recognizer.transcribe_file(&args.wav, &opts)
    })();
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("asr: {e}");
            ExitCode::FAILURE
        }
    }
}
