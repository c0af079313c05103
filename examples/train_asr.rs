//! Train the speech recognizer (building the synthetic corpus first if it is missing), then
//! report CER / WER on the held-out sentences and the held-out voices.
//!
//!     cargo run --release --example train_asr -- [--config configs/asr.yaml] [--set key=value]... [--resume]
//!     cargo run --release --example train_asr -- --evaluate runs/asr/checkpoints/best   # test sets only
//!     cargo run --release --example train_asr -- --evaluate models/asr --lm runs/clm-asr/checkpoints/best [--lm-weight 0.3]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgformer::config::AsrConfig;
use wgformer::inference::{evaluate_checkpoint, Rates, TestReport};
use wgformer::train::asr::{run, AsrRunOptions};
use wgformer::train::cli::parse_train_args;

const USAGE: &str = "usage: train_asr [--config PATH] [--set key.path=value]... [--resume] \
                     | --evaluate CHECKPOINT_DIR [--lm CLM_DIR [--lm-weight W]]";

fn main() -> ExitCode {
    wgformer::ops::enable_autotune_unless_disabled();
    // Ctrl-C stops after the current step with the state saved (exit status 130).
    if let Err(e) = wgformer::train::interrupt::install_handler() {
        eprintln!("train_asr: {e}");
    }
    let own = [
        ("--evaluate", "a checkpoint directory"),
        ("--lm", "a CLM checkpoint directory"),
        ("--lm-weight", "a number"),
    ];
    let args = match parse_train_args(std::env::args().skip(1), "configs/asr.yaml", &own) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let evaluate = args.value("--evaluate").map(PathBuf::from);
    let lm_weight = match args.value("--lm-weight").map(str::parse::<f32>) {
        None => 0.3,
        Some(Ok(w)) if w.is_finite() => w,
        Some(_) => return fail("--lm-weight needs a number"),
    };
    let lm = args.value("--lm").map(|d| (Path::new(d), lm_weight));
    if let Some(dir) = evaluate {
        let report = wgformer::Gpu::shared().and_then(|gpu| evaluate_checkpoint(&gpu, &dir, lm));
        return match report {
            Ok(t) => {
                print_report(&t);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    let config = match AsrConfig::load_with_overrides(&args.config_path, &args.overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let opts = AsrRunOptions {
        resume: args.resume,
        verbose: true,
        stop_after: None,
    };
    match run(&config, &opts) {
        Ok(s) => {
            println!(
                "done: {} steps in {:.0} s; best validation CER {:.2}%",
                s.steps,
                s.train_seconds,
                100.0 * s.best_val_cer
            );
            print_report(&s.test);
            println!(
                "metrics, summary and checkpoints in {}",
                s.out_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ wgformer::Error::Interrupted { .. }) => {
            eprintln!("train_asr: {e}");
            ExitCode::from(130)
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn print_report(t: &TestReport) {
    let pct = |r: &Rates| format!("CER {:5.2}% WER {:6.2}%", 100.0 * r.cer, 100.0 * r.wer);
    let opt = |r: &Option<Rates>| r.as_ref().map_or("-".to_string(), pct);
    println!(
        "held-out sentences: greedy {} | beam {} | CTC {}",
        pct(&t.greedy),
        pct(&t.beam),
        opt(&t.ctc)
    );
    println!(
        "held-out voices:    greedy {} | beam {} | CTC {}",
        pct(&t.voices_greedy),
        pct(&t.voices_beam),
        opt(&t.voices_ctc)
    );
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("train_asr: {msg}\n{USAGE}");
    ExitCode::FAILURE
}
