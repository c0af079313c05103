//! What the training examples share: their command line and how a run's end becomes an exit
//! status.

use std::process::ExitCode;

/// `--config`, `--set` and `--resume`, flattened into each training example's arguments.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The YAML config (every key is documented in configs/).
    #[arg(long, value_name = "PATH")]
    pub config: Option<String>,
    /// Override one config key, e.g. `--set train.max_steps=1000` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run in train.out_dir from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
}

/// Ctrl-C and SIGTERM stop a run after its current step with the state saved.
pub fn install_stop_handler(program: &str) {
    if let Err(e) = wgformer::train::interrupt::install_handler() {
        eprintln!("{program}: {e}");
    }
}

/// The exit status of a run that failed: 130 when it was interrupted (its state is saved),
/// else 1, with the error on stderr.
pub fn failure(program: &str, e: &wgformer::Error) -> ExitCode {
    eprintln!("{program}: {e}");
    match e {
        wgformer::Error::Interrupted { .. } => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    }
}
