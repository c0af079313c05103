//! The driver side: the training loop, learning-rate schedules, metrics, checkpoints, plots.

pub mod asr;
pub mod asr_trainer;
pub mod cli;
pub mod clm;
pub mod interrupt;
pub mod lm;
pub mod metrics;
pub mod non_finite;
pub mod schedule;

pub use lm::{LmTrainer, StepStats};
pub use schedule::{Decay, LrSchedule, Warmup};
