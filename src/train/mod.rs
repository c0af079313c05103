//! Training: one loop and its scaffold (`fit`: run directory, resume, Ctrl-C / SIGTERM,
//! metrics, progress, checkpoints, time limit, final test, plot) shared by the jobs, which are
//! `Task`s: the causal LM (`clm`) and the speech recognizer (`asr`). `Trainer` is the step
//! every job shares (schedule, backward, clipping, optimizer). Inference lives in
//! `crate::inference`; training uses it to validate.

pub mod asr;
pub mod asr_loss;
pub mod clm;
pub mod distributed;
pub mod fit;
pub mod interrupt;
pub mod loss_scale;
pub mod metrics;
pub mod non_finite;
pub mod plot;
pub mod progress;
pub mod run_dir;
pub mod schedule;
pub mod task;
pub mod trainer;
pub mod whisper;

pub use distributed::{Collective, Shard, SingleProcess};
pub use fit::{fit, LoopConfig, RunOptions, RunReport};
pub use loss_scale::LossScaler;
pub use schedule::{Decay, LrSchedule, Warmup};
pub use task::{Evaluation, Task};
pub use trainer::{StepStats, Trainer};
