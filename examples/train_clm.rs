//! Train the causal language model on the bundled corpus.
//!
//!     cargo run --release --example train_clm -- [--config configs/clm.yaml] [--set key=value]... [--resume]
//!
//! Everything else (model size, data, optimizer, schedule, output directory) is in the YAML.

use std::process::ExitCode;
use wgformer::config::Config;
use wgformer::train::cli::parse_train_args;
use wgformer::train::clm::{run, RunOptions};

const USAGE: &str = "usage: train_clm [--config PATH] [--set key.path=value]... [--resume]";

fn main() -> ExitCode {
    wgformer::ops::enable_autotune_unless_disabled();
    // Ctrl-C stops after the current step with the state saved (exit status 130).
    if let Err(e) = wgformer::train::interrupt::install_handler() {
        eprintln!("train_clm: {e}");
    }
    let args = match parse_train_args(std::env::args().skip(1), "configs/clm.yaml", &[]) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::load_with_overrides(&args.config_path, &args.overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    match run(
        &config,
        &RunOptions {
            resume: args.resume,
            verbose: true,
            stop_after: None,
        },
    ) {
        Ok(s) => {
            println!(
                "done: {} steps, {:.0} tokens/s; val char perplexity {:.3}, test {:.3}; unigram baseline {:.3}",
                s.steps, s.tokens_per_second, s.val_char_perplexity, s.test_char_perplexity, s.unigram_char_perplexity
            );
            println!("metrics, plot and checkpoints in {}", s.out_dir.display());
            ExitCode::SUCCESS
        }
        Err(e @ wgformer::Error::Interrupted { .. }) => {
            eprintln!("train_clm: {e}");
            ExitCode::from(130)
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("train_clm: {msg}\n{USAGE}");
    ExitCode::FAILURE
}
