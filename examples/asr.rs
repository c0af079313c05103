//! Transcribe WAV files.
//!
//!     cargo run --release --example asr -- clip.wav [more.wav ...] [--checkpoint DIR] [--beam N]
//!         [--ctc | --attention] [--ctc-weight W] [--lm CLM_DIR [--lm-weight W]]
//!         [--timestamps auto|on|off] [--batch N]
//!
//! The checkpoint is a pretrained Whisper (a Hugging Face or CTranslate2 directory, e.g. from
//! `scripts/fetch_whisper tiny.en`) or a recognizer trained by `train_asr`; the format is
//! recognised from the files. Without `--checkpoint`: `models/whisper-tiny.en` when it is there
//! (it transcribes real speech), else the course model shipped in `models/asr` (trained on
//! synthetic voices only). The transcript alone goes to stdout (with several files, one line
//! each: the file, a tab, its transcript); logs and errors go to stderr, so scripts can use it.
//! Audio without speech (silence, steady noise) gives an empty transcript with a note on
//! stderr. Without options a trained recognizer decodes as its config says. `--batch N` with
//! Whisper and `--beam 1`: N windows (of one long clip or of several files) encoded and decoded
//! together, for GPUs, where one window leaves most of the chip idle.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgformer::inference::{
    Decoding, Method, Recognizer, Timestamps, WhisperOptions, WhisperRecognizer,
};

const WHISPER: &str = "models/whisper-tiny.en";
const COURSE_MODEL: &str = "models/asr";

/// Transcribe WAV files (any sample rate, channel count and PCM / float encoding, any length).
#[derive(Parser, Debug)]
#[command(name = "asr")]
struct Args {
    /// The audio to transcribe.
    #[arg(required = true, num_args = 1..)]
    wav: Vec<PathBuf>,
    /// A Whisper directory or a recognizer checkpoint directory (default: models/whisper-tiny.en
    /// if present, else models/asr).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Beams (1: greedy). Default: Whisper 5 (faster-whisper's), a trained recognizer its
    /// config's decode.beam_width.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// Trained recognizer: decode with the CTC head's best path.
    #[arg(long, conflicts_with_all = ["attention", "beam", "ctc_weight", "lm"])]
    ctc: bool,
    /// Trained recognizer: decode with the attention decoder.
    #[arg(long)]
    attention: bool,
    /// Trained recognizer: weight of the CTC prefix scores in the attention decoder's search
    /// (0: the decoder alone).
    #[arg(long, value_parser = unit_interval)]
    ctc_weight: Option<f32>,
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
    /// Whisper, greedy (--beam 1): windows encoded and decoded together, from one long clip
    /// (with --timestamps off) or from several files.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
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
    match transcribe(&args) {
        Ok(texts) => {
            for (wav, text) in args.wav.iter().zip(texts) {
                match args.wav.len() {
                    1 => println!("{text}"),
                    _ => println!("{}\t{text}", wav.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("asr: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Each file's transcript, in order.
fn transcribe(args: &Args) -> wgformer::Result<Vec<String>> {
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
        if args.ctc || args.attention || args.ctc_weight.is_some() || args.lm.is_some() {
            return Err(wgformer::Error::format(
                &dir,
                "is a Whisper model: --ctc, --attention, --ctc-weight and --lm are for \
                 recognizers trained by train_asr",
            ));
        }
        let opts = WhisperOptions {
            beam_width: args.beam.map_or(5, |b| b as usize),
            timestamps: match args.timestamps.as_str() {
                "on" => Timestamps::On,
                "off" => Timestamps::Off,
                _ => Timestamps::Auto,
            },
            batch_windows: args.batch as usize,
            ..WhisperOptions::default()
        };
        if opts.batch_windows > 1 && opts.beam_width > 1 {
            eprintln!(
                "asr: --batch applies to greedy decoding (--beam 1); decoding one window at a time"
            );
        }
        let recognizer = WhisperRecognizer::load(&gpu, &dir)?;
        let clips = args
            .wav
            .iter()
            .map(|w| wgformer::audio::load_16k(w))
            .collect::<wgformer::Result<Vec<_>>>()?;
        let clips: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        let (texts, _) = recognizer.transcribe_many(&clips, &opts)?;
        for (wav, text) in args.wav.iter().zip(&texts) {
            if text.is_empty() {
                eprintln!("asr: no speech found in {}", wav.display());
            }
        }
        return Ok(texts);
    }
    if args.batch > 1 {
        eprintln!(
            "asr: --batch is for Whisper models; {} decodes one file at a time",
            dir.display()
        );
    }
    let recognizer = Recognizer::load(&gpu, &dir, args.lm.as_deref())?;
    let mut decoding = recognizer.decoding.clone();
    if args.ctc {
        decoding = Decoding::ctc_best_path();
    } else if args.attention
        || args.beam.is_some()
        || args.ctc_weight.is_some()
        || args.lm.is_some()
    {
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
    let mut texts = Vec::new();
    for wav in &args.wav {
        let heard = recognizer.transcribe_file(wav, &decoding)?;
        if heard.no_speech {
            eprintln!("asr: no speech found in {}", wav.display());
        } else if heard.windows.len() > 1 {
            eprintln!(
                "asr: {}: decoded in {} windows of up to {:.1} s, cut at pauses",
                wav.display(),
                heard.windows.len(),
                recognizer.window_seconds()
            );
        }
        texts.push(heard.text);
    }
    Ok(texts)
}
