//! Train the causal language model on the bundled corpus.
//!
//!     cargo run --release --example train_clm -- [--config configs/clm.yaml] [--set key=value]... [--resume]
//!
//! Everything else (model size, data, optimizer, schedule, output directory) is in the YAML.

mod common;

use clap::Parser;
use std::process::ExitCode;
use wgformer::config::Config;
use wgformer::train::clm::run_with;

/// Train the causal LM a YAML config describes; Ctrl-C or SIGTERM stops after the current
/// step with the state saved (exit status 130), and --resume continues.
#[derive(Parser, Debug)]
#[command(name = "train_clm")]
struct Args {
    #[command(flatten)]
    train: common::TrainArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = args
        .train
        .run("train_clm", "configs/clm.yaml", |path, opts, world| {
            run_with(
                &Config::load_with_overrides(path, &args.train.overrides)?,
                opts,
                world,
            )
        });
    match result {
        Ok(Some(s)) if !s.already_finished => {
            println!(
                "done: {} steps, {:.0} tokens/s; val char perplexity {:.3}, test {:.3}; unigram baseline {:.3}",
                s.steps, s.tokens_per_second, s.val_char_perplexity, s.test_char_perplexity, s.unigram_char_perplexity
            );
            println!("metrics, plot and checkpoints in {}", s.out_dir.display());
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
