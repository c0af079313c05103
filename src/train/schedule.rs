//! Learning-rate schedules: an optional warmup (linear or exponential) followed by constant,
//! cosine decay, cosine with warm restarts (SGDR), or reduce-on-plateau.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Warmup {
    /// lr rises linearly from ~0 to the base lr.
    Linear,
    /// lr rises geometrically from base/100 to the base lr.
    Exponential,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    Constant,
    /// Half a cosine from the base lr to `min_lr` over the steps after warmup.
    Cosine,
    /// Cosine cycles of `period` steps, each restarting at the base lr.
    CosineWarmRestarts {
        period: usize,
    },
    /// Multiply the lr by `factor` when the validation loss has not improved for `patience` evals.
    ReduceOnPlateau {
        factor: f64,
        patience: usize,
    },
}

#[derive(Clone, Debug)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    pub warmup: Warmup,
    pub decay: Decay,
    pub total_steps: usize,
    // reduce-on-plateau state
    plateau_scale: f64,
    best_val: f64,
    bad_evals: usize,
}

impl LrSchedule {
    /// The same learning rate at every step.
    pub fn constant(lr: f64) -> Self {
        LrSchedule::new(lr, lr, 0, Warmup::Linear, Decay::Constant, 1)
    }

    pub fn new(
        base_lr: f64,
        min_lr: f64,
        warmup_steps: usize,
        warmup: Warmup,
        decay: Decay,
        total_steps: usize,
    ) -> Self {
        LrSchedule {
            base_lr,
            min_lr,
            warmup_steps,
            warmup,
            decay,
            total_steps,
            plateau_scale: 1.0,
            best_val: f64::INFINITY,
            bad_evals: 0,
        }
    }

    /// The learning rate for `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let frac = (step + 1) as f64 / self.warmup_steps as f64;
            return match self.warmup {
                Warmup::Linear => self.base_lr * frac,
                Warmup::Exponential => self.base_lr * 0.01f64.powf(1.0 - frac),
            };
        }
        let t = step - self.warmup_steps;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let cosine = |pos: f64| {
            self.min_lr
                + 0.5 * (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * pos).cos())
        };
        match self.decay {
            Decay::Constant => self.base_lr,
            Decay::Cosine => cosine((t as f64 / span as f64).min(1.0)),
            Decay::CosineWarmRestarts { period } => {
                let period = period.max(1);
                cosine((t % period) as f64 / period as f64)
            }
            Decay::ReduceOnPlateau { .. } => (self.base_lr * self.plateau_scale).max(self.min_lr),
        }
    }

    /// Tell the schedule a validation loss (only reduce-on-plateau listens).
    pub fn observe_validation(&mut self, val_loss: f64) {
        if let Decay::ReduceOnPlateau { factor, patience } = self.decay {
            if val_loss < self.best_val {
                self.best_val = val_loss;
                self.bad_evals = 0;
            } else {
                self.bad_evals += 1;
                if self.bad_evals > patience {
                    self.plateau_scale *= factor;
                    self.bad_evals = 0;
                }
            }
        }
    }

    /// The plateau state, for checkpoints: (scale, best, bad evals).
    pub fn plateau_state(&self) -> (f64, f64, usize) {
        (self.plateau_scale, self.best_val, self.bad_evals)
    }

    pub fn set_plateau_state(&mut self, s: (f64, f64, usize)) {
        (self.plateau_scale, self.best_val, self.bad_evals) = s;
    }
}

/// How many steps a run with a wall-clock budget (seconds) can take: the steps done, plus as
/// many more as the time left allows at the measured pace (`paced` steps in `paced_secs`,
/// evaluations included), and never more than `planned`. At or past the budget it is `step`:
/// the run ends on the step it is on. Before a few paced steps there is no estimate yet.
pub fn steps_within_budget(
    planned: usize,
    step: usize,
    (paced, paced_secs): (usize, f64),
    elapsed: f64,
    budget: f64,
) -> usize {
    const MIN_PACED: usize = 5;
    if elapsed >= budget {
        return step.min(planned);
    }
    if paced < MIN_PACED || paced_secs <= 0.0 {
        return planned;
    }
    let more = ((budget - elapsed) * paced as f64 / paced_secs).floor() as usize;
    (step + more).min(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_budget_caps_the_steps_at_the_pace_so_far() {
        // 10 steps in 20 s, 100 s left: 50 more steps.
        assert_eq!(steps_within_budget(1000, 10, (10, 20.0), 20.0, 120.0), 60);
        // The pace leaves out the slow first steps: 10 s of them, then 10 steps in 20 s.
        assert_eq!(steps_within_budget(1000, 15, (10, 20.0), 30.0, 120.0), 60);
        // The plan wins when it is shorter; no estimate before a pace exists.
        assert_eq!(steps_within_budget(40, 10, (10, 20.0), 20.0, 120.0), 40);
        assert_eq!(steps_within_budget(1000, 2, (2, 5.0), 5.0, 120.0), 1000);
        // Spent: stop where we are.
        assert_eq!(steps_within_budget(1000, 77, (50, 100.0), 121.0, 120.0), 77);
        // Less than a step's time left: this is the last step.
        assert_eq!(steps_within_budget(1000, 50, (50, 119.0), 119.0, 120.0), 50);
    }

    #[test]
    fn linear_warmup_then_cosine_reaches_min_at_the_end() {
        let s = LrSchedule::new(1.0, 0.1, 10, Warmup::Linear, Decay::Cosine, 110);
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-9);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((1..110).all(|i| i < 10 || s.lr(i) <= s.lr(i - 1) + 1e-12));
    }

    #[test]
    fn exponential_warmup_starts_at_a_hundredth() {
        let s = LrSchedule::new(1.0, 0.0, 100, Warmup::Exponential, Decay::Constant, 200);
        assert!(s.lr(0) < 0.011 && s.lr(0) > 0.01);
        assert!((s.lr(99) - 1.0).abs() < 1e-12);
        assert_eq!(s.lr(150), 1.0);
    }

    #[test]
    fn warm_restarts_return_to_the_base_lr() {
        let s = LrSchedule::new(
            1.0,
            0.0,
            0,
            Warmup::Linear,
            Decay::CosineWarmRestarts { period: 10 },
            100,
        );
        assert_eq!(s.lr(0), 1.0);
        assert!(s.lr(9) < 0.1);
        assert_eq!(s.lr(10), 1.0);
    }

    #[test]
    fn plateau_reduces_after_patience_evaluations_without_improvement() {
        let mut s = LrSchedule::new(
            1.0,
            0.01,
            0,
            Warmup::Linear,
            Decay::ReduceOnPlateau {
                factor: 0.5,
                patience: 1,
            },
            100,
        );
        s.observe_validation(2.0);
        s.observe_validation(2.1);
        assert_eq!(s.lr(5), 1.0);
        s.observe_validation(2.2);
        assert_eq!(s.lr(5), 0.5);
    }
}
