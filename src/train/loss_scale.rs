//! Dynamic loss scaling for mixed-precision training (`train.precision: mixed`), as PyTorch's
//! `torch.amp.GradScaler` does it.
//!
//! In half precision the matmuls read their operands rounded to f16, gradients included, and
//! f16 has no values below ~6e-8: small gradients would round to zero. So the backward pass
//! starts from the loss times a scale S (every gradient is then S times too large, inside
//! f16's range), and the update divides S back out (`ops::grad_norm_and_clip`). Too large an S
//! makes some f16 value overflow to infinity; the gradient norm is then not finite, the GPU
//! skips the update (as for any non-finite step) and the scale halves. After
//! `growth_interval` updates in a row without overflow it doubles, to find the largest scale
//! that fits.

use serde::{Deserialize, Serialize};

/// The scale S and its bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f32,
    pub growth_interval: usize,
    /// Updates applied since the last overflow or growth.
    pub good_steps: usize,
}

/// Below this scale an overflow is not the scale's fault: the step's gradients are not finite
/// at their true size, and the trainer's non-finite policy decides what happens.
pub const MIN_SCALE: f32 = 1.0;

/// What a step's report means under loss scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleOutcome {
    /// The update was applied.
    Applied,
    /// The scaled gradients overflowed: the update was skipped and the scale halved.
    Overflow,
    /// The step was skipped for a reason the scale cannot cure (a non-finite loss, or an
    /// overflow at the smallest scale): the non-finite policy's business.
    NonFinite,
}

impl LossScaler {
    /// PyTorch's defaults: S = 65,536, doubled after 2,000 good updates in a row.
    pub fn new(initial_scale: f32, growth_interval: usize) -> LossScaler {
        LossScaler {
            scale: initial_scale,
            growth_interval: growth_interval.max(1),
            good_steps: 0,
        }
    }

    /// Update the scale from a step's report: whether the GPU `skipped` the update and
    /// whether the (unscaled) loss was finite.
    pub fn after_step(&mut self, skipped: bool, loss_finite: bool) -> ScaleOutcome {
        if !skipped {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
            return ScaleOutcome::Applied;
        }
        self.good_steps = 0;
        if !loss_finite || self.scale <= MIN_SCALE {
            return ScaleOutcome::NonFinite;
        }
        self.scale = (self.scale * 0.5).max(MIN_SCALE);
        ScaleOutcome::Overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_the_scale_and_good_steps_double_it() {
        let mut s = LossScaler::new(1024.0, 3);
        assert_eq!(s.after_step(true, true), ScaleOutcome::Overflow);
        assert_eq!(s.scale, 512.0);
        for _ in 0..2 {
            assert_eq!(s.after_step(false, true), ScaleOutcome::Applied);
        }
        assert_eq!(s.scale, 512.0, "not yet: 2 of 3 good steps");
        s.after_step(false, true);
        assert_eq!((s.scale, s.good_steps), (1024.0, 0));
        // An overflow resets the count of good steps.
        s.after_step(false, true);
        s.after_step(true, true);
        s.after_step(false, true);
        s.after_step(false, true);
        assert_eq!(s.scale, 512.0);
    }

    #[test]
    fn a_non_finite_loss_or_an_overflow_at_the_floor_is_not_the_scales_fault() {
        let mut s = LossScaler::new(8.0, 10);
        assert_eq!(s.after_step(true, false), ScaleOutcome::NonFinite);
        assert_eq!(s.scale, 8.0, "a NaN loss leaves the scale alone");
        for want in [4.0, 2.0, 1.0] {
            assert_eq!(s.after_step(true, true), ScaleOutcome::Overflow);
            assert_eq!(s.scale, want);
        }
        assert_eq!(s.after_step(true, true), ScaleOutcome::NonFinite);
        assert_eq!(s.scale, MIN_SCALE);
    }
}
