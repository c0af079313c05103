//! Transcribe a manifest of clips with a pretrained Whisper and time it: the measurements
//! behind the Whisper figures in BENCHMARKS.md (`scripts/whisper_wer.py` scores the output).
//!
//!     cargo run --release --example whisper_eval -- --out FILE.tsv [--model DIR]
//!         [--manifest data/asterisk/manifest.tsv] [--beam N] [--timestamps on|off|auto] [--limit N]
//!         [--batch N] [--profile]
//!
//! `--batch N`: clips taken N at a time, their greedy windows without timestamps encoded and
//! decoded together (`WhisperOptions::batch_windows`); the summary then counts windows per
//! second, and the decoder's time per token is per token of all the windows decoded at once.
//! `--profile` times every kernel (each dispatch submitted on its own: slower) and prints the
//! table at the end. The manifest is `scripts/asterisk_clips`'s: "NAME<TAB>wav path<TAB>reference" per line; the
//! output "NAME<TAB>transcript". The timing summary goes to stderr.

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::inference::{Timestamps, WhisperOptions, WhisperRecognizer, WhisperTimings};

/// Transcribe a manifest of clips with a pretrained Whisper and time it.
#[derive(Parser, Debug)]
#[command(name = "whisper_eval")]
struct Args {
    /// Where the transcripts go ("NAME<TAB>transcript" per line).
    #[arg(long)]
    out: PathBuf,
    /// A Whisper directory (Hugging Face or CTranslate2).
    #[arg(long, default_value = "models/whisper-tiny.en")]
    model: PathBuf,
    /// "NAME<TAB>wav path<TAB>reference" per line (scripts/asterisk_clips writes one).
    #[arg(long, default_value = "data/asterisk/manifest.tsv")]
    manifest: PathBuf,
    /// Beams (1: greedy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    beam: u64,
    /// Timestamp tokens (and windows seeking by them): on, off, or auto (on over 20 s).
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    timestamps: String,
    /// Only the first N clips.
    #[arg(long)]
    limit: Option<usize>,
    /// Clips transcribed together: their greedy windows without timestamps are encoded and
    /// decoded N at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Time every kernel (each dispatch submitted on its own: slower) and print the table.
    #[arg(long)]
    profile: bool,
}

impl Args {
    fn options(&self) -> WhisperOptions {
        WhisperOptions {
            beam_width: self.beam as usize,
            timestamps: match self.timestamps.as_str() {
                "on" => Timestamps::On,
                "off" => Timestamps::Off,
                _ => Timestamps::Auto,
            },
            batch_windows: self.batch as usize,
            ..WhisperOptions::default()
        }
    }
}

fn run(a: &Args) -> wgformer::Result<()> {
    let gpu = wgformer::Gpu::shared()?;
    let recognizer = WhisperRecognizer::load(&gpu, &a.model)?;
    let text =
        std::fs::read_to_string(&a.manifest).map_err(|e| wgformer::Error::io(&a.manifest, e))?;
    let mut out = std::fs::File::create(&a.out).map_err(|e| wgformer::Error::io(&a.out, e))?;
    gpu.set_profiling(a.profile)?;
    let opts = a.options();
    let mut total = WhisperTimings::default();
    let started = std::time::Instant::now();
    let lines: Vec<&str> = text.lines().take(a.limit.unwrap_or(usize::MAX)).collect();
    for group in lines.chunks(a.batch as usize) {
        let mut names = Vec::new();
        let mut clips = Vec::new();
        for line in group {
            let mut cols = line.split('\t');
            let (Some(name), Some(wav)) = (cols.next(), cols.next()) else {
                return Err(wgformer::Error::format(
                    &a.manifest,
                    format!("bad line {line:?}"),
                ));
            };
            names.push(name);
            clips.push(wgformer::audio::load_16k(std::path::Path::new(wav))?);
        }
        let clips: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        let (transcripts, t) = recognizer.transcribe_many(&clips, &opts)?;
        for (name, transcript) in names.iter().zip(transcripts) {
            writeln!(out, "{name}\t{transcript}").map_err(|e| wgformer::Error::io(&a.out, e))?;
            eprintln!("{name}: {transcript}");
        }
        total.windows += t.windows;
        total.tokens += t.tokens;
        total.encoder += t.encoder;
        total.decoder += t.decoder;
    }
    eprintln!(
        "whisper_eval: {} on {}: {} windows, encoder {:.0} ms per window, decoder {:.1} ms per \
         token ({} tokens, beam {}, {} clips at a time), {:.2} windows/s, {:.0} s in all",
        a.model.display(),
        gpu.adapter_name(),
        total.windows,
        total.encoder.as_secs_f64() * 1e3 / total.windows.max(1) as f64,
        total.decoder.as_secs_f64() * 1e3 / total.tokens.max(1) as f64,
        total.tokens,
        opts.beam_width,
        a.batch,
        total.windows as f64 / (total.encoder + total.decoder).as_secs_f64().max(1e-9),
        started.elapsed().as_secs_f64()
    );
    if a.profile {
        eprintln!("{}", wgformer::gpu::format_profile(&gpu.profile()));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whisper_eval: {e}");
            ExitCode::FAILURE
        }
    }
}
