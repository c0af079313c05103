//! Build the synthetic speech corpus: sentences of the bundled Shakespeare spoken by espeak-ng,
//! flite and festival voices, as 16 kHz WAV files and TSV manifests.
//!
//!     scripts/install_tts   # once: the TTS engines and sox
//!     cargo run --release --example build_speech_corpus -- --out data/speech \
//!         --train 4000 --val 200 --test 200 --test-voices 200 --seed 1
//!
//! The same arguments give the same files, byte for byte; a rerun skips WAVs already made.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wgformer::data::asr::{build_speech_corpus, CorpusSizes};

const USAGE: &str = "usage: build_speech_corpus [--out DIR] [--text FILE] [--train N] [--val N] \
                     [--test N] [--test-voices N] [--seed N] [--workers N]";

struct Args {
    out: PathBuf,
    text: PathBuf,
    sizes: CorpusSizes,
    seed: u64,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: "data/speech".into(),
        text: "data/shakespeare.txt".into(),
        sizes: CorpusSizes {
            train: 4000,
            val: 200,
            test: 200,
            test_voices: 200,
        },
        seed: 1,
        workers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--out" => a.out = value.clone().into(),
            "--text" => a.text = value.clone().into(),
            "--train" => a.sizes.train = number()?,
            "--val" => a.sizes.val = number()?,
            "--test" => a.sizes.test = number()?,
            "--test-voices" => a.sizes.test_voices = number()?,
            "--seed" => a.seed = number()? as u64,
            "--workers" => a.workers = number()?.max(1),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => return fail(&msg),
    };
    let text = match std::fs::read_to_string(&args.text) {
        Ok(t) => t,
        Err(e) => return fail(&format!("{}: {e}", args.text.display())),
    };
    let start = Instant::now();
    let progress = |done: usize, total: usize| {
        if done.is_multiple_of(100) || done == total {
            eprintln!(
                "[{:6.1} s] {done}/{total} utterances",
                start.elapsed().as_secs_f64()
            );
        }
    };
    let report = match build_speech_corpus(
        &text,
        &args.out,
        args.sizes,
        args.seed,
        args.workers,
        &progress,
    ) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "done in {seconds:.1} s ({} skipped: already there)",
        report.skipped
    );
    for (engine, stats) in &report.made {
        eprintln!(
            "  {:<10} {:5} utterances, {:6.1} utterances/s per worker",
            engine.name(),
            stats.utterances,
            stats.utterances as f64 / stats.seconds.max(1e-9)
        );
    }
    let (files, bytes) = wav_totals(&args.out.join("wav"));
    // sox writes a 44-byte header before 16-bit mono samples at 16 kHz.
    let audio_seconds = (bytes - 44 * files) as f64 / 32_000.0;
    eprintln!(
        "{}: {files} WAV files, {:.1} MB, {:.2} h of audio, mean {:.2} s per utterance",
        args.out.display(),
        bytes as f64 / 1e6,
        audio_seconds / 3600.0,
        audio_seconds / files.max(1) as f64
    );
    ExitCode::SUCCESS
}

/// Number and total bytes of the `.wav` files under `dir`.
fn wav_totals(dir: &Path) -> (u64, u64) {
    let mut totals = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (n, b) = wav_totals(&path);
            totals = (totals.0 + n, totals.1 + b);
        } else if path.extension().is_some_and(|e| e == "wav") {
            totals = (
                totals.0 + 1,
                totals.1 + entry.metadata().map_or(0, |m| m.len()),
            );
        }
    }
    totals
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("build_speech_corpus: {msg}");
    ExitCode::FAILURE
}
