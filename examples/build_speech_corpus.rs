//! Build the synthetic speech corpus: sentences of the bundled Shakespeare (and, with
//! `--modern-text`, of modern English) spoken by espeak-ng, flite and festival voices, as 16 kHz
//! WAV files and TSV manifests.
//!
//!     scripts/install_tts   # once: the TTS engines and sox
//!     cargo run --release --example build_speech_corpus -- --out data/speech \
//!         --train 4000 --val 200 --test 200 --test-voices 200 --seed 1 \
//!         --modern-text data/sotu.txt --modern-train 6000 --modern-test 200
//!
//! The same arguments give the same files, byte for byte; a rerun skips WAVs already made.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use wgformer::data::asr::{build_speech_corpus, CorpusSizes, ModernSizes, ModernText};

/// Speak sentences of a text with the TTS engines into 16 kHz WAVs and TSV manifests
/// (train, val, test, test_voices); deterministic for a seed.
#[derive(Parser, Debug)]
#[command(name = "build_speech_corpus")]
struct Args {
    /// Output folder (manifests and wav/).
    #[arg(long, default_value = "data/speech")]
    out: PathBuf,
    /// The text the sentences are drawn from.
    #[arg(long, default_value = "data/shakespeare.txt")]
    text: PathBuf,
    /// Training utterances.
    #[arg(long, default_value_t = 4000)]
    train: usize,
    /// Validation utterances.
    #[arg(long, default_value_t = 200)]
    val: usize,
    /// Test utterances (held-out sentences, training voices).
    #[arg(long, default_value_t = 200)]
    test: usize,
    /// Test utterances spoken by held-out voices.
    #[arg(long, default_value_t = 200)]
    test_voices: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A second text, of modern English: its own train_modern and test_modern splits.
    #[arg(long)]
    modern_text: Option<PathBuf>,
    /// Training utterances of the modern text (wider voices, sox effects).
    #[arg(long, default_value_t = 6000)]
    modern_train: usize,
    /// Held-out modern sentences spoken by the training voices.
    #[arg(long, default_value_t = 200)]
    modern_test: usize,
    /// Synthesis worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    workers: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let sizes = CorpusSizes {
        train: args.train,
        val: args.val,
        test: args.test,
        test_voices: args.test_voices,
    };
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |w| w as usize,
    );
    let text = match std::fs::read_to_string(&args.text) {
        Ok(t) => t,
        Err(e) => return fail(&format!("{}: {e}", args.text.display())),
    };
    let modern_text = match &args.modern_text {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => return fail(&format!("{}: {e}", path.display())),
        },
        None => None,
    };
    let modern = modern_text.as_deref().map(|text| ModernText {
        text,
        sizes: ModernSizes {
            train: args.modern_train,
            test: args.modern_test,
        },
    });
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
        &text, modern, &args.out, sizes, args.seed, workers, &progress,
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
