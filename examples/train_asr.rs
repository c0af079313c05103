//! Train the speech recognizer (building the synthetic corpus first if it is missing), then
//! report CER / WER on the held-out sentences and the held-out voices.
//!
//!     cargo run --release --example train_asr -- [--config configs/asr.yaml] [--set key=value]... [--resume]
//!     cargo run --release --example train_asr -- --evaluate runs/asr/checkpoints/best   # test sets only
//!     cargo run --release --example train_asr -- --evaluate models/asr --lm runs/clm-asr/checkpoints/best [--lm-weight 0.3]
//!     cargo run --release --example train_asr -- --evaluate models/asr --beam 8 --ctc-weight 0.5

mod common;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::config::AsrConfig;
use wgformer::inference::{evaluate_checkpoint, Decoding, Rates, TestReport};
use wgformer::train::asr::run_with;

/// Train the speech recognizer a YAML config describes and test it, or (--evaluate) score a
/// trained checkpoint on its config's test sets.
#[derive(Parser, Debug)]
#[command(name = "train_asr")]
struct Args {
    #[command(flatten)]
    train: common::TrainArgs,
    /// Score this checkpoint directory on its test sets instead of training.
    #[arg(long, value_name = "CHECKPOINT_DIR", conflicts_with = "resume")]
    evaluate: Option<PathBuf>,
    /// With --evaluate: fuse this causal-LM checkpoint into the attention decoder.
    #[arg(long, value_name = "CLM_DIR", requires = "evaluate")]
    lm: Option<PathBuf>,
    /// Shallow-fusion weight of --lm.
    #[arg(long, default_value_t = 0.3, value_parser = finite, requires = "lm")]
    lm_weight: f32,
    /// With --evaluate: beams of the attention decoder (default: the checkpoint's).
    #[arg(long, requires = "evaluate", value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// With --evaluate: weight of the CTC prefix scores in the beam search (default: the
    /// checkpoint's `decode.ctc_weight`).
    #[arg(long, requires = "evaluate", value_parser = finite)]
    ctc_weight: Option<f32>,
    /// With --evaluate: length normalisation of finished hypotheses (default: the checkpoint's).
    #[arg(long, requires = "evaluate", value_parser = finite)]
    length_penalty: Option<f32>,
}

fn finite(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.evaluate {
        let evaluate = |gpu: &wgformer::Gpu| {
            let config = AsrConfig::load_with_overrides(dir.join("config.yaml"), &[] as &[&str])?;
            let mut decoding = Decoding::from_config(&config.decode);
            decoding.lm_weight = args.lm.as_ref().map_or(0.0, |_| args.lm_weight);
            decoding.beam_width = args.beam.map_or(decoding.beam_width, |b| b as usize);
            decoding.ctc_weight = args.ctc_weight.unwrap_or(decoding.ctc_weight);
            decoding.length_penalty = args.length_penalty.unwrap_or(decoding.length_penalty);
            println!("decoding: {decoding:?}");
            evaluate_checkpoint(gpu, dir, args.lm.as_deref(), &decoding)
        };
        return match wgformer::Gpu::shared().and_then(|gpu| evaluate(&gpu)) {
            Ok(t) => {
                print_report(&t);
                ExitCode::SUCCESS
            }
            Err(e) => common::failure("train_asr", &e),
        };
    }
    let result = args
        .train
        .run("train_asr", "configs/asr.yaml", |path, opts, world| {
            run_with(
                &AsrConfig::load_with_overrides(path, &args.train.overrides)?,
                opts,
                world,
            )
        });
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(s)) => {
            if let Some(test) = &s.test {
                println!(
                    "done: {} steps in {:.0} s; best validation score {:.2}% (CER; WER for Whisper)",
                    s.steps,
                    s.train_seconds,
                    100.0 * s.best_val_cer
                );
                print_report(test);
                println!(
                    "metrics, summary and checkpoints in {}",
                    s.out_dir.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
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
    if t.voices_greedy.utterances > 0 {
        println!(
            "held-out voices:    greedy {} | beam {} | CTC {}",
            pct(&t.voices_greedy),
            pct(&t.voices_beam),
            opt(&t.voices_ctc)
        );
    }
    if let (Some(greedy), Some(beam)) = (&t.modern_greedy, &t.modern_beam) {
        println!(
            "modern sentences:   greedy {} | beam {} | CTC {}",
            pct(greedy),
            pct(beam),
            opt(&t.modern_ctc)
        );
    }
}
