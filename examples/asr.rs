//! Transcribe a WAV file.
//!
//!     cargo run --release --example asr -- clip.wav [--checkpoint DIR] [--beam N] [--ctc | --attention] [--lm CLM_DIR]
//!
//! The checkpoint is a pretrained Whisper (a Hugging Face or CTranslate2 directory, e.g. from
//! `scripts/fetch_whisper tiny.en`) or a recognizer trained by `train_asr`; the format is
//! recognised from the files. Without `--checkpoint`: `models/whisper-tiny.en` when it is there
//! (it transcribes real speech), else the course model shipped in `models/asr` (trained on
//! synthetic voices only). The transcript alone goes to stdout; logs and errors go to stderr.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgformer::config::DecodeMode;
use wgformer::inference::{
    Recognizer, Timestamps, TranscribeOptions, WhisperOptions, WhisperRecognizer,
};

const WHISPER: &str = "models/whisper-tiny.en";
const COURSE_MODEL: &str = "models/asr";

/// Transcribe a WAV file (any sample rate, channel count and PCM / float encoding).
#[derive(Parser, Debug)]
#[command(name = "asr")]
struct Args {
    /// The audio to transcribe.
    wav: PathBuf,
    /// A Whisper directory or a recognizer checkpoint directory (default: models/whisper-tiny.en
    /// if present, else models/asr).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Beams (1: greedy). Default: Whisper 5 (faster-whisper's), a trained recognizer its
    /// config's decode.beam_width.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// Trained recognizer: decode with the CTC head's best path.
    #[arg(long, conflicts_with_all = ["attention", "beam"])]
    ctc: bool,
    /// Trained recognizer: decode with the attention decoder.
    #[arg(long)]
    attention: bool,
    /// Whisper: timestamp tokens (and windows seeking by them): on, off, or auto (on for
    /// clips longer than 20 s).
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    timestamps: String,
    /// Trained recognizer: a causal-LM checkpoint fused into the attention decoder.
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
    match transcribe(&args) {
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

fn transcribe(args: &Args) -> wgformer::Result<String> {
    let dir = match &args.checkpoint {
        Some(dir) => dir.clone(),
        None if WhisperRecognizer::is_whisper_dir(Path::new(WHISPER)) => PathBuf::from(WHISPER),
        None => {
            eprintln!(
                "asr: using {COURSE_MODEL}, the course model trained on synthetic voices only; \
                 for real speech run scripts/fetch_whisper tiny.en"
            );
            PathBuf::from(COURSE_MODEL)
        }
    };
    let gpu = wgformer::Gpu::shared()?;
    if WhisperRecognizer::is_whisper_dir(&dir) {
        if args.ctc || args.attention || args.lm.is_some() {
            return Err(wgformer::Error::format(
                &dir,
                "is a Whisper model: --ctc, --attention and --lm are for recognizers trained by \
                 train_asr",
            ));
        }
        let opts = WhisperOptions {
            beam_width: args.beam.map_or(5, |b| b as usize),
            timestamps: match args.timestamps.as_str() {
                "on" => Timestamps::On,
                "off" => Timestamps::Off,
                _ => Timestamps::Auto,
            },
            ..WhisperOptions::default()
        };
        return WhisperRecognizer::load(&gpu, &dir)?.transcribe_file(&args.wav, &opts);
    }
    let recognizer = Recognizer::load(&gpu, &dir, args.lm.as_deref())?;
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
}
