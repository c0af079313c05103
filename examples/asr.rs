//! Transcribe a WAV file with a trained speech recognizer.
//!
//!     cargo run --release --example asr -- clip.wav [--checkpoint DIR] [--ctc | --beam N]
//!         [--ctc-weight W] [--lm CLM_DIR [--lm-weight W]]
//!
//! The transcript alone goes to stdout; logs and errors go to stderr, so scripts can use it.
//! Audio without speech (silence, noise) prints an empty line, with a note on stderr. The
//! default checkpoint is the small model shipped in `models/asr` (see README); without options
//! it decodes as that checkpoint's config says.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::inference::{Decoding, Method, Recognizer};

/// Transcribe a WAV file (any sample rate, channel count and PCM / float encoding, any length).
#[derive(Parser, Debug)]
#[command(name = "asr")]
struct Args {
    /// The audio to transcribe.
    wav: PathBuf,
    /// A recognizer checkpoint directory.
    #[arg(long, default_value = "models/asr", value_name = "DIR")]
    checkpoint: PathBuf,
    /// Decode with the CTC head's best path.
    #[arg(long, conflicts_with_all = ["beam", "ctc_weight", "lm"])]
    ctc: bool,
    /// Beams of the attention decoder (1: greedy).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// Weight of the CTC prefix scores in the attention decoder's search (0: the decoder alone).
    #[arg(long, value_parser = unit_interval)]
    ctc_weight: Option<f32>,
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

fn unit_interval(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number in [0, 1]")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = (|| -> wgformer::Result<_> {
        let gpu = wgformer::Gpu::shared()?;
        let recognizer = Recognizer::load(&gpu, &args.checkpoint, args.lm.as_deref())?;
        let mut decoding = recognizer.decoding.clone();
        if args.ctc {
            decoding = Decoding::ctc_best_path();
        } else if args.beam.is_some() || args.ctc_weight.is_some() || args.lm.is_some() {
            decoding.method = Method::Attention;
        }
        if let Some(b) = args.beam {
            decoding.beam_width = b as usize;
        }
        if let Some(w) = args.ctc_weight {
            decoding.ctc_weight = w;
        }
        if args.lm.is_some() {
            decoding.lm_weight = args.lm_weight;
        }
        let heard = recognizer.transcribe_file(&args.wav, &decoding)?;
        Ok((heard, recognizer.window_seconds()))
    })();
    match result {
        Ok((t, window)) => {
            if t.no_speech {
                eprintln!("asr: no speech found in {}", args.wav.display());
            } else if t.windows.len() > 1 {
                eprintln!(
                    "asr: decoded in {} windows of up to {window:.1} s, cut at pauses",
                    t.windows.len()
                );
            }
            println!("{}", t.text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("asr: {e}");
            ExitCode::FAILURE
        }
    }
}
