//! Transcribe a manifest of clips with a pretrained Whisper and time it: the measurements
//! behind the Whisper figures in BENCHMARKS.md (`scripts/whisper_wer.py` scores the output).
//!
//!     cargo run --release --example whisper_eval -- --out FILE.tsv [--model DIR]
//!         [--manifest data/asterisk/manifest.tsv] [--beam N] [--timestamps on|off|auto] [--limit N] [--profile]
//!
//! `--profile` times every kernel (each dispatch submitted on its own: slower) and prints the
//! table at the end. The manifest is `scripts/asterisk_clips`'s: "NAME<TAB>wav path<TAB>reference" per line; the
//! output "NAME<TAB>transcript". The timing summary goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::inference::{Timestamps, WhisperOptions, WhisperRecognizer, WhisperTimings};

const USAGE: &str = "usage: whisper_eval --out FILE.tsv [--model DIR] [--manifest FILE] [--beam N] [--timestamps on|off|auto] [--limit N] [--profile]";

struct Args {
    model: PathBuf,
    manifest: PathBuf,
    out: PathBuf,
    opts: WhisperOptions,
    limit: usize,
    profile: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: "models/whisper-tiny.en".into(),
        manifest: "data/asterisk/manifest.tsv".into(),
        out: PathBuf::new(),
        opts: WhisperOptions::default(),
        limit: usize::MAX,
        profile: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{v:?}: not a number"))
        };
        match arg.as_str() {
            "--model" => a.model = value()?.into(),
            "--manifest" => a.manifest = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--beam" => a.opts.beam_width = number(value()?)?.max(1),
            "--limit" => a.limit = number(value()?)?,
            "--timestamps" => {
                a.opts.timestamps = match value()?.as_str() {
                    "on" => Timestamps::On,
                    "off" => Timestamps::Off,
                    "auto" => Timestamps::Auto,
                    other => return Err(format!("--timestamps {other:?}: on, off or auto")),
                }
            }
            "--profile" => a.profile = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.out.as_os_str().is_empty() {
        return Err("--out is required".into());
    }
    Ok(a)
}

fn run(a: &Args) -> wgformer::Result<()> {
    let gpu = wgformer::Gpu::shared()?;
    let recognizer = WhisperRecognizer::load(&gpu, &a.model)?;
    let text =
        std::fs::read_to_string(&a.manifest).map_err(|e| wgformer::Error::io(&a.manifest, e))?;
    let mut out = std::fs::File::create(&a.out).map_err(|e| wgformer::Error::io(&a.out, e))?;
    gpu.set_profiling(a.profile)?;
    let mut total = WhisperTimings::default();
    let started = std::time::Instant::now();
    for line in text.lines().take(a.limit) {
        let mut cols = line.split('\t');
        let (Some(name), Some(wav)) = (cols.next(), cols.next()) else {
            return Err(wgformer::Error::format(
                &a.manifest,
                format!("bad line {line:?}"),
            ));
        };
        let samples = wgformer::audio::load_16k(std::path::Path::new(wav))?;
        let (transcript, t) = recognizer.transcribe_timed(&samples, &a.opts)?;
        writeln!(out, "{name}\t{transcript}").map_err(|e| wgformer::Error::io(&a.out, e))?;
        eprintln!("{name}: {transcript}");
        total.windows += t.windows;
        total.tokens += t.tokens;
        total.encoder += t.encoder;
        total.decoder += t.decoder;
    }
    eprintln!(
        "whisper_eval: {} on {}: {} windows, encoder {:.0} ms per window, decoder {:.1} ms per \
         token ({} tokens, beam {}), {:.0} s in all",
        a.model.display(),
        gpu.adapter_name(),
        total.windows,
        total.encoder.as_secs_f64() * 1e3 / total.windows.max(1) as f64,
        total.decoder.as_secs_f64() * 1e3 / total.tokens.max(1) as f64,
        total.tokens,
        a.opts.beam_width,
        started.elapsed().as_secs_f64()
    );
    if a.profile {
        eprintln!("{}", wgformer::gpu::format_profile(&gpu.profile()));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("whisper_eval: {msg}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whisper_eval: {e}");
            ExitCode::FAILURE
        }
    }
}
