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
use wgformer::train::distributed;
use wgformer::train::RunOptions;

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
    common::install_stop_handler("train_clm");
    let path = args.train.config.as_deref().unwrap_or("configs/clm.yaml");
    // One process, or one of `mpiexec -n N` with the `mpi` feature (data-parallel).
    let world = match distributed::world() {
        Ok(w) => w,
        Err(e) => return common::failure("train_clm", &e),
    };
    let result = Config::load_with_overrides(path, &args.train.overrides).and_then(|config| {
        let opts = RunOptions {
            resume: args.train.resume,
            verbose: true,
            stop_after: None,
        };
        run_with(&config, &opts, world.as_ref())
    });
    match result {
        Ok(s) if s.already_finished || !world.is_root() => ExitCode::SUCCESS,
        Ok(s) => {
            println!(
                "done: {} steps, {:.0} tokens/s; val char perplexity {:.3}, test {:.3}; unigram baseline {:.3}",
                s.steps, s.tokens_per_second, s.val_char_perplexity, s.test_char_perplexity, s.unigram_char_perplexity
            );
            println!("metrics, plot and checkpoints in {}", s.out_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => common::failure("train_clm", &e),
    }
}
