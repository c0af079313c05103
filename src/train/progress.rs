//! What a run prints while it trains: an `indicatif` bar on a terminal (step, loss, rate,
//! ETA), plain lines every `log_interval` steps when stderr is not a terminal (logs, CI), and
//! evaluation reports either way. Nothing at all when the run is quiet (tests).

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
}

impl Progress {
    pub fn new(verbose: bool, total: usize, at: usize) -> Progress {
        let bar = verbose.then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] step {pos}/{len} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(at as u64);
            bar
        });
        Progress { bar, verbose }
    }

    fn visible(&self) -> Option<&ProgressBar> {
        self.bar.as_ref().filter(|b| !b.is_hidden())
    }

    /// A message for the person watching (above the bar, or on its own line).
    pub fn say(&self, msg: impl AsRef<str>) {
        match self.visible() {
            Some(bar) => bar.println(msg.as_ref()),
            None if self.verbose => eprintln!("{}", msg.as_ref()),
            None => {}
        }
    }

    /// After a step: move the bar, or print a line when this step is logged and there is no
    /// bar to show it.
    pub fn step(&self, step: usize, total: usize, logged: bool, msg: String) {
        match self.visible() {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(step as u64);
                bar.set_message(msg);
            }
            None if self.verbose && logged => eprintln!("step {step}/{total}: {msg}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
