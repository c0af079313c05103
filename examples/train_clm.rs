//! Train the causal language model on the bundled corpus.
//!
//!     cargo run --release --example train_clm -- [--config configs/clm.yaml] [--set key=value]... [--resume]
//!
//! Everything else (model size, data, optimizer, schedule, output directory) is in the YAML.

use std::process::ExitCode;
use wgformer::config::Config;
use wgformer::train::clm::{run, RunOptions};

const USAGE: &str = "usage: train_clm [--config PATH] [--set key.path=value]... [--resume]";

fn main() -> ExitCode {
    wgformer::ops::enable_autotune_unless_disabled();
    // Ctrl-C stops after the current step with the state saved (exit status 130).
    if let Err(e) = wgformer::train::interrupt::install_handler() {
        eprintln!("train_clm: {e}");
    }
    let mut config_path = "configs/clm.yaml".to_string();
    let mut overrides = Vec::new();
    let mut resume = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(p) => config_path = p,
                None => return fail("--config needs a path"),
            },
            "--set" => match args.next() {
                Some(kv) => overrides.push(kv),
                None => return fail("--set needs key.path=value"),
            },
            "--resume" => resume = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return fail(&format!("unknown argument {other:?}")),
        }
    }
    let config = match Config::load_with_overrides(&config_path, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    match run(
        &config,
        &RunOptions {
            resume,
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
