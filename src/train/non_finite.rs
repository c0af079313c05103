//! What a trainer does after a step whose loss or gradient norm came back NaN or infinite.
//!
//! The GPU has already refused to apply such a step (`shaders/grad_norm.wgsl` writes a clipping
//! coefficient of 0, which the optimizer kernels read as "skip"), so the weights in memory are
//! still the last good ones. This guard turns the step's one readback into the decision the
//! config asks for: stop with `Error::NonFinite`, or skip and go on, up to
//! `max_skipped_steps` bad steps in a row (a run whose every step is bad is not training).

use super::metrics::MetricsLog;
use super::trainer::StepStats;
use crate::config::NonFinitePolicy;
use crate::error::{Error, Result};

pub struct NonFiniteGuard {
    policy: NonFinitePolicy,
    max_in_a_row: usize,
    in_a_row: usize,
    /// Steps skipped over the whole run.
    pub skipped: usize,
}

impl NonFiniteGuard {
    pub fn new(policy: NonFinitePolicy, max_skipped_steps: usize) -> Self {
        NonFiniteGuard {
            policy,
            max_in_a_row: max_skipped_steps,
            in_a_row: 0,
            skipped: 0,
        }
    }

    /// Called after every step with what it read back. `Ok(false)`: a good step. `Ok(true)`:
    /// the step was skipped and training goes on. `Err(Error::NonFinite)`: stop.
    pub fn check(&mut self, step: usize, loss: f32, grad_norm: f32) -> Result<bool> {
        if loss.is_finite() && grad_norm.is_finite() {
            self.in_a_row = 0;
            return Ok(false);
        }
        self.in_a_row += 1;
        self.skipped += 1;
        if self.policy == NonFinitePolicy::Stop || self.in_a_row > self.max_in_a_row {
            return Err(Error::NonFinite {
                step,
                loss,
                grad_norm,
                in_a_row: self.in_a_row,
            });
        }
        Ok(true)
    }

    /// `check` for a trainer's step `step`. Every bad step, skipped or the one that stops the
    /// run, is written to the metrics log as a `non_finite` record; a skipped one is also said on
    /// stderr, so a user sees that it happened and how often.
    pub fn after_step(
        &mut self,
        step: usize,
        stats: &StepStats,
        log: &mut MetricsLog,
    ) -> Result<bool> {
        if !(stats.loss.is_finite() && stats.grad_norm.is_finite()) {
            log.write(
                "non_finite",
                &[
                    ("step", step as f64),
                    ("loss", stats.loss as f64),
                    ("grad_norm", stats.grad_norm as f64),
                ],
            )?;
        }
        let skipped = self.check(step, stats.loss, stats.grad_norm)?;
        if skipped {
            eprintln!(
                "step {step} skipped: loss {}, gradient norm {} ({} skipped so far)",
                stats.loss, stats.grad_norm, self.skipped
            );
        }
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_policy_stops_at_the_first_bad_step_naming_it() {
        let mut g = NonFiniteGuard::new(NonFinitePolicy::Stop, 10);
        assert!(!g.check(1, 2.0, 1.0).unwrap());
        let err = g.check(2, f32::NAN, 1.0).unwrap_err().to_string();
        assert!(err.contains("step 2") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn skip_policy_goes_on_until_too_many_bad_steps_in_a_row() {
        let mut g = NonFiniteGuard::new(NonFinitePolicy::Skip, 2);
        assert!(g.check(1, 2.0, f32::INFINITY).unwrap());
        assert!(g.check(2, f32::NAN, f32::NAN).unwrap());
        assert!(
            !g.check(3, 1.5, 0.5).unwrap(),
            "a good step resets the run of bad ones"
        );
        assert!(g.check(4, f32::NAN, 1.0).unwrap());
        assert!(g.check(5, f32::NAN, 1.0).unwrap());
        let err = g.check(6, f32::NAN, 1.0).unwrap_err().to_string();
        assert!(err.contains("step 6") && err.contains("3 such"), "{err}");
        assert_eq!(g.skipped, 5);
    }
}
