//! The part of a training step every job shares: set the learning rate from the schedule,
//! backpropagate each micro-batch's loss (weighted 1/n for gradient accumulation), clip the
//! global gradient norm, apply the optimizer, zero the gradients. All of it is recorded into
//! one GPU submission; the only readback is `[gradient norm, clip coefficient, loss]`. In mixed
//! precision the backward starts from the loss times the loss scale, which the update divides
//! out (`loss_scale.rs`).

use super::distributed::{Collective, SingleProcess};
use super::loss_scale::{LossScaler, ScaleOutcome};
use super::schedule::{Decay, LrSchedule, Warmup};
use crate::config::{
    LossScaleConfig, OptimizerConfig, OptimizerKind, Precision, SchedulerConfig, SchedulerKind,
    WarmupKind,
};
use crate::error::{Error, Result};
use crate::gpu::MatmulPrecision;
use crate::nn::Ctx;
use crate::ops::{self, AdamWParams};
use crate::optim::Optimizer;
use crate::tensor::Tensor;

pub struct Trainer {
    pub optimizer: Optimizer,
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this (<= 0: no clipping).
    pub max_grad_norm: f32,
    /// Optimizer steps taken so far (drives the schedule and the dropout seeds).
    pub step: usize,
    pub seed: u64,
    /// Dynamic loss scaling (mixed precision); None: gradients at their true size.
    pub loss_scale: Option<LossScaler>,
}

/// What one step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    /// Mean loss over the step's micro-batches.
    pub loss: f32,
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
    /// The loss or the gradient norm was not finite, so the GPU did not apply the update.
    pub skipped: bool,
    /// Skipped because the loss-scaled gradients overflowed f16; the scale was halved (see
    /// `loss_scale.rs`). Expected now and then in mixed precision, not a fault.
    pub overflow: bool,
    /// The loss scale this step's backward used (None without loss scaling).
    pub loss_scale: Option<f32>,
    /// Seconds spent summing gradients across processes (0 for one process).
    pub sync_seconds: f64,
}

/// A step recorded for the GPU, waiting for its one readback.
struct RecordedStep {
    /// `Optimizer::clip_step_zero`'s tensor.
    report: Tensor,
    lr: f64,
    sync_seconds: f64,
}

/// The learning-rate schedule a config's `optimizer.lr` and `scheduler` section describe.
pub fn schedule(o: &OptimizerConfig, s: &SchedulerConfig, total_steps: usize) -> LrSchedule {
    let warmup = match s.warmup {
        WarmupKind::Linear => Warmup::Linear,
        WarmupKind::Exponential => Warmup::Exponential,
    };
    let decay = match s.kind {
        SchedulerKind::Constant => Decay::Constant,
        SchedulerKind::Cosine => Decay::Cosine,
        SchedulerKind::CosineWarmRestarts => Decay::CosineWarmRestarts {
            period: s.restart_period,
        },
        SchedulerKind::ReduceOnPlateau => Decay::ReduceOnPlateau {
            factor: s.factor,
            patience: s.patience,
        },
    };
    LrSchedule::new(o.lr, s.min_lr, s.warmup_steps, warmup, decay, total_steps)
}

/// The optimizer a config's `optimizer` section describes, over `params`. Its learning rate
/// is set from the schedule before every step.
pub fn optimizer(params: Vec<Tensor>, o: &OptimizerConfig) -> Result<Optimizer> {
    match o.kind {
        OptimizerKind::Sgd => Optimizer::sgd(
            params,
            o.lr as f32,
            o.momentum as f32,
            o.weight_decay as f32,
        ),
        OptimizerKind::Adam | OptimizerKind::AdamW => Optimizer::new(
            params,
            AdamWParams {
                lr: o.lr as f32,
                beta1: o.betas[0] as f32,
                beta2: o.betas[1] as f32,
                eps: o.eps as f32,
                weight_decay: o.weight_decay as f32,
                coupled_weight_decay: o.kind == OptimizerKind::Adam,
            },
        ),
    }
}

impl Trainer {
    /// A trainer at step 0, in f32 (`set_precision` for mixed precision); `max_grad_norm`
    /// <= 0 disables clipping, `seed` drives dropout.
    pub fn new(optimizer: Optimizer, schedule: LrSchedule, max_grad_norm: f32, seed: u64) -> Self {
        Trainer {
            optimizer,
            schedule,
            max_grad_norm,
            step: 0,
            seed,
            loss_scale: None,
        }
    }

    /// The optimizer and schedule of a config's `optimizer` and `scheduler` sections.
    pub fn from_config(
        params: Vec<Tensor>,
        o: &OptimizerConfig,
        s: &SchedulerConfig,
        total_steps: usize,
        max_grad_norm: f64,
        seed: u64,
    ) -> Result<Trainer> {
        Ok(Trainer::new(
            optimizer(params, o)?,
            schedule(o, s, total_steps),
            max_grad_norm as f32,
            seed,
        ))
    }

    /// Train in `precision` (a config's `train.precision`). `Mixed`: the device's matmuls
    /// take f16 operands from now on (evaluation too, as under PyTorch's autocast) and the
    /// backward is loss-scaled from `loss_scale.initial`; on an adapter without shader-f16
    /// the matmuls stay f32, which `verbose` says. `F32` leaves the device as it is.
    pub fn set_precision(
        &mut self,
        precision: Precision,
        loss_scale: &LossScaleConfig,
        verbose: bool,
    ) {
        if precision != Precision::Mixed {
            return;
        }
        let Some(gpu) = self.optimizer.params().first().map(|p| p.gpu().clone()) else {
            return;
        };
        let mut policy = gpu.policy();
        policy.matmul_precision = MatmulPrecision::Half;
        policy.save_half = true;
        gpu.set_policy(policy);
        self.loss_scale = Some(LossScaler::new(
            loss_scale.initial as f32,
            loss_scale.growth_interval,
        ));
        if verbose && !gpu.has_f16() {
            eprintln!(
                "train.precision: mixed, but this adapter has no f16 in shaders: the matmuls \
                 stay f32 (the loss is still scaled)"
            );
        }
    }

    /// The loss scale of the next step (1 without loss scaling).
    fn scale(&self) -> f32 {
        self.loss_scale.as_ref().map_or(1.0, |s| s.scale)
    }

    /// The stats of a recorded step from its readback; the loss scale learns from it.
    fn finish(&mut self, recorded: RecordedStep, r: crate::optim::StepReport) -> StepStats {
        let used = self.loss_scale.as_ref().map(|s| s.scale);
        let outcome = self
            .loss_scale
            .as_mut()
            .map(|s| s.after_step(r.skipped, r.loss.is_finite()));
        StepStats {
            loss: r.loss,
            lr: recorded.lr,
            grad_norm: r.grad_norm,
            skipped: r.skipped,
            overflow: outcome == Some(ScaleOutcome::Overflow),
            loss_scale: used,
            sync_seconds: recorded.sync_seconds,
        }
    }

    /// One optimizer step over `micro_batches` micro-batches; `loss(i, ctx)` records the mean
    /// loss of micro-batch `i` (a [] tensor, not read back) under the step's dropout context.
    pub fn step(
        &mut self,
        micro_batches: usize,
        loss: impl FnMut(usize, &Ctx) -> Result<Tensor>,
    ) -> Result<StepStats> {
        self.step_across(&SingleProcess, 1.0, micro_batches, loss)
    }

    /// `step` whose one readback is awaited: how a browser page trains, its thread never
    /// blocked (natively the future is ready at once).
    pub async fn step_async(
        &mut self,
        micro_batches: usize,
        loss: impl FnMut(usize, &Ctx) -> Result<Tensor>,
    ) -> Result<StepStats> {
        let recorded = self.record_step(&SingleProcess, 1.0, micro_batches, loss)?;
        let r = self
            .optimizer
            .read_step_report_async(&recorded.report)
            .await?;
        Ok(self.finish(recorded, r))
    }

    /// `step` for one process of a data-parallel run: after the backward pass the processes
    /// sum their gradients and losses, each weighted by `terms` (the loss terms of this
    /// process's batches), so every process applies the update of the global batch.
    pub fn step_across(
        &mut self,
        coll: &dyn Collective,
        terms: f64,
        micro_batches: usize,
        loss: impl FnMut(usize, &Ctx) -> Result<Tensor>,
    ) -> Result<StepStats> {
        let recorded = self.record_step(coll, terms, micro_batches, loss)?;
        let r = self.optimizer.read_step_report(&recorded.report)?;
        Ok(self.finish(recorded, r))
    }

    /// Everything of a step but its readback: recorded for the GPU, and `report` is the
    /// tensor the step reports through.
    fn record_step(
        &mut self,
        coll: &dyn Collective,
        terms: f64,
        micro_batches: usize,
        mut loss: impl FnMut(usize, &Ctx) -> Result<Tensor>,
    ) -> Result<RecordedStep> {
        // A process of a data-parallel run may have no share of a small batch: it adds zeros.
        if micro_batches == 0 && coll.shard().size == 1 {
            return Err(Error::shape("Trainer::step", "no batches"));
        }
        let lr = self.schedule.lr(self.step);
        self.optimizer.set_lr(lr as f32);
        let share = 1.0 / micro_batches as f32;
        let loss_scale = self.scale();
        let mut total: Option<Tensor> = None;
        for i in 0..micro_batches {
            let ctx = Ctx::train(self.seed ^ ((self.step as u64) << 16) ^ i as u64);
            let l = loss(i, &ctx)?;
            if micro_batches == 1 && loss_scale == 1.0 {
                l.backward()?;
                total = Some(l);
                continue;
            }
            ops::scale(&l, share * loss_scale)?.backward()?;
            if micro_batches == 1 {
                total = Some(l);
                continue;
            }
            // The reported loss is the mean over micro-batches, off the tape.
            let _g = crate::no_grad();
            let part = ops::scale(&l, share)?;
            total = Some(match total {
                Some(t) => ops::add(&t, &part)?,
                None => part,
            });
        }
        let mut sync_seconds = 0.0;
        if coll.shard().size > 1 {
            // Finish this process's forward and backward first, so that the time measured is
            // the exchange (copy out, all-reduce with the wait for the slowest process, upload)
            // and not the GPU work the copy would otherwise wait for.
            if let Some(p) = self.optimizer.params().first() {
                p.gpu().synchronize()?;
            }
            let started = std::time::Instant::now();
            total = Some(self.sum_gradients(coll, total, terms)?);
            sync_seconds = started.elapsed().as_secs_f64();
        }
        let report =
            self.optimizer
                .clip_step_zero(self.max_grad_norm, total.as_ref(), loss_scale)?;
        self.step += 1;
        Ok(RecordedStep {
            report,
            lr,
            sync_seconds,
        })
    }

    /// Replace every gradient and the loss by their sums over the processes, weighted by
    /// each process's `terms`: one flat GPU -> host copy, one all-reduce, one upload. A
    /// parameter without a gradient here contributes zeros (another process may have one).
    fn sum_gradients(
        &mut self,
        coll: &dyn Collective,
        loss: Option<Tensor>,
        terms: f64,
    ) -> Result<Tensor> {
        let _g = crate::no_grad();
        let params = self.optimizer.params().to_vec();
        let gpu = params
            .first()
            .map(|p| p.gpu().clone())
            .ok_or_else(|| Error::shape("Trainer::step", "no parameters"))?;
        let loss = match loss {
            Some(l) => l.reshape(&[1])?,
            None => Tensor::zeros(&gpu, &[1])?,
        };
        let mut parts = Vec::with_capacity(params.len() + 1);
        for p in &params {
            let g = match p.grad() {
                Some(g) => g,
                None => Tensor::zeros(&gpu, p.shape())?,
            };
            parts.push(g.reshape(&[p.numel()])?);
        }
        parts.push(loss);
        let refs: Vec<&Tensor> = parts.iter().collect();
        let mut flat = ops::concat(&refs, 0)?.to_vec()?;
        // [weighted gradients..., weighted loss, terms]
        let weight = terms as f32;
        flat.iter_mut().for_each(|v| *v *= weight);
        flat.push(weight);
        coll.sum_f32(&mut flat)?;
        let total_terms = flat.pop().unwrap_or(0.0);
        if total_terms <= 0.0 {
            return Err(Error::shape("Trainer::step", "no process had a loss term"));
        }
        flat.iter_mut().for_each(|v| *v /= total_terms);
        let summed = Tensor::from_slice(&gpu, &flat, &[flat.len()])?;
        let mut at = 0;
        for p in &params {
            let g = ops::slice(&summed, 0, at, p.numel())?.reshape(p.shape())?;
            p.set_grad(Some(g));
            at += p.numel();
        }
        ops::slice(&summed, 0, at, 1)?.reshape(&[])
    }
}
