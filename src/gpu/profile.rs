//! Per-kernel timing, to find where a step's time goes. With profiling on, every dispatch is
//! submitted and waited for on its own and its wall time is added to its kernel's total. That
//! serialises the work and adds a submit round trip to each dispatch (tens of microseconds on
//! lavapipe), so the totals rank the big kernels well and overstate the small ones: use it to
//! look, never for a real run or a benchmark figure.

use std::collections::HashMap;
use std::time::Duration;

/// Time spent in one kernel: `file:entry` of its shader, over every dispatch since the last
/// reset.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: String,
    pub dispatches: u64,
    pub total: Duration,
}

#[derive(Default)]
pub(super) struct Profile {
    pub on: bool,
    times: HashMap<String, (u64, Duration)>,
}

impl Profile {
    pub fn add(&mut self, kernel: String, t: Duration) {
        let e = self.times.entry(kernel).or_default();
        e.0 += 1;
        e.1 += t;
    }

    pub fn clear(&mut self) {
        self.times.clear();
    }

    /// Kernels by total time, largest first.
    pub fn report(&self) -> Vec<KernelTime> {
        let mut v: Vec<KernelTime> = self
            .times
            .iter()
            .map(|(k, &(dispatches, total))| KernelTime {
                kernel: k.clone(),
                dispatches,
                total,
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.kernel.cmp(&b.kernel)));
        v
    }
}

/// `times` as a table: kernel, dispatches, total ms, share of the sum.
pub fn format_profile(times: &[KernelTime]) -> String {
    let sum: f64 = times.iter().map(|t| t.total.as_secs_f64()).sum();
    let mut out = format!(
        "{:<40} {:>10} {:>10} {:>7}\n",
        "kernel", "dispatches", "ms", "share"
    );
    for t in times {
        let secs = t.total.as_secs_f64();
        out += &format!(
            "{:<40} {:>10} {:>10.2} {:>6.1}%\n",
            t.kernel,
            t.dispatches,
            secs * 1e3,
            100.0 * secs / sum.max(f64::MIN_POSITIVE)
        );
    }
    out
}
