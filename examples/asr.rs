//! Transcribe a WAV file with a trained speech recognizer.
//!
//!     cargo run --release --example asr -- clip.wav [--checkpoint DIR] [--attention [--beam N] | --ctc] [--lm CLM_DIR] [--lm-weight W]
//!
//! `--ctc` decodes with the CTC head's best path, `--attention` with the decoder (beam search
//! of the checkpoint's `decode.beam_width`, or `--beam N`; `--beam 1` is greedy); by default
//! the checkpoint's own `decode.mode`.
//!
//! The transcript alone goes to stdout; logs and errors go to stderr, so scripts can use it.
//! The default checkpoint is the small model shipped in `models/asr` (see README).

use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::config::DecodeMode;
use wgformer::inference::{Recognizer, TranscribeOptions};

const USAGE: &str = "usage: asr CLIP.wav [--checkpoint DIR] [--attention [--beam N] | --ctc] [--lm CLM_CHECKPOINT_DIR] [--lm-weight W]";

fn main() -> ExitCode {
    wgformer::ops::enable_autotune_unless_disabled();
    let mut wav = None;
    let mut checkpoint = PathBuf::from("models/asr");
    let mut opts = TranscribeOptions::default();
    let mut lm = None;
    let mut beam_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let parsed: Result<(), String> = match arg.as_str() {
            "--checkpoint" => value("--checkpoint").map(|v| checkpoint = v.into()),
            "--beam" => value("--beam").and_then(|v| {
                v.parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1)
                    .map(|n| {
                        // Beam search is the attention decoder's.
                        opts.beam_width = n;
                        beam_given = true;
                        opts.mode = Some(DecodeMode::Attention);
                    })
                    .ok_or(format!("--beam {v}: expected a whole number >= 1"))
            }),
            "--lm" => value("--lm").map(|v| lm = Some(PathBuf::from(v))),
            "--ctc" => {
                opts.mode = Some(DecodeMode::Ctc);
                Ok(())
            }
            "--attention" => {
                opts.mode = Some(DecodeMode::Attention);
                Ok(())
            }
            "--lm-weight" => value("--lm-weight").and_then(|v| {
                v.parse()
                    .ok()
                    .filter(|w: &f32| w.is_finite())
                    .map(|w| opts.lm_weight = w)
                    .ok_or(format!("--lm-weight {v}: expected a number"))
            }),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => Err(format!("unknown option {s:?}")),
            _ if wav.is_some() => Err(format!("one WAV file at a time (got a second: {arg:?})")),
            _ => {
                wav = Some(PathBuf::from(&arg));
                Ok(())
            }
        };
        if let Err(msg) = parsed {
            return fail(&msg);
        }
    }
    let Some(wav) = wav else {
        return fail("no WAV file given");
    };
    let result = (|| {
        let gpu = wgformer::Gpu::shared()?;
        let recognizer = Recognizer::load(&gpu, &checkpoint, lm.as_deref())?;
        if !beam_given {
            opts.beam_width = recognizer.beam_width;
        }
        recognizer.transcribe_file(&wav, &opts)
    })();
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("asr: {msg}\n{USAGE}");
    ExitCode::FAILURE
}
