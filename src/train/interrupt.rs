//! Ctrl-C (SIGINT) as a request, not a kill: the handler only sets a flag; the training loops
//! check it between steps, save a checkpoint and return `Error::Interrupted`, so nothing
//! trained is lost and `--resume` continues exactly where the run stopped.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Route SIGINT (and SIGTERM) to `request_stop` (examples call this once at start-up).
pub fn install_handler() -> Result<()> {
    ctrlc::set_handler(request_stop)
        .map_err(|e| Error::Gpu(format!("cannot install the Ctrl-C handler: {e}")))
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
