//! Ctrl-C (SIGINT) and SIGTERM (`kill`, `timeout`, `docker stop`, Slurm preemption) as a
//! request, not a kill: the handler only sets a flag; the training loop checks it between
//! steps, saves a checkpoint and returns `Error::Interrupted`, so nothing trained is lost and
//! `--resume` continues exactly where the run stopped.

use crate::error::Result;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Route SIGINT and SIGTERM to `request_stop` (training programs call this once at start-up).
#[cfg(not(target_arch = "wasm32"))]
pub fn install_handler() -> Result<()> {
    ctrlc::set_handler(request_stop)
        .map_err(|e| crate::Error::format("signal handler", format!("cannot install it: {e}")))
}

/// A browser tab has no signals: a page stops training by calling `request_stop`.
#[cfg(target_arch = "wasm32")]
pub fn install_handler() -> Result<()> {
    Ok(())
}

pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Forget a request (a new run in the same process).
pub fn clear() {
    STOP.store(false, Ordering::SeqCst);
}
