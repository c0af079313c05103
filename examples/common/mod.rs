//! What the training examples share: their command line and how a run's end becomes an exit
//! status.

use std::process::ExitCode;
use wgformer::train::{distributed, Collective, RunOptions};

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

impl TrainArgs {
    /// Run a training job as this process's part: install the stop handler, join the run (one
    /// process, or one of `mpiexec -n N` with the `mpi` feature: data-parallel) and call `job`
    /// with the config path (`default_config` without --config), the run options and the
    /// collective. Ok(Some): the first process's summary, to print; Ok(None): another process,
    /// which prints nothing; Err: the exit status of a failure, already reported.
    pub fn run<S>(
        &self,
        program: &str,
        default_config: &str,
        job: impl FnOnce(&str, &RunOptions, &dyn Collective) -> wgformer::Result<S>,
    ) -> Result<Option<S>, ExitCode> {
        install_stop_handler(program);
        let world = distributed::world().map_err(|e| failure(program, &e))?;
        let opts = RunOptions {
            resume: self.resume,
            verbose: true,
            stop_after: None,
        };
        let path = self.config.as_deref().unwrap_or(default_config);
        match job(path, &opts, world.as_ref()) {
            Ok(s) if world.is_root() => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(e) => Err(failure(program, &e)),
        }
    }
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
