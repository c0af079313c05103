//! One training step of the causal LM, recorded into a single GPU submission:
//! forward -> cross-entropy -> backward (per micro-batch) -> global-norm clip -> AdamW.
//! The only readback is the loss, once per step.

use super::schedule::LrSchedule;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::models::DecoderOnlyTransformer;
use crate::nn::Ctx;
use crate::ops;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

pub struct LmTrainer {
    pub model: DecoderOnlyTransformer,
    pub optimizer: Optimizer,
    pub schedule: LrSchedule,
    pub label_smoothing: f32,
    /// Clip the global gradient norm to this (<= 0: no clipping).
    pub max_grad_norm: f32,
    pub pad_id: u32,
    /// Steps taken so far (drives the schedule and the dropout seeds).
    pub step: usize,
    pub seed: u64,
}

pub struct StepStats {
    pub loss: f32,
    pub lr: f64,
    pub tokens: usize,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
    /// The loss or the gradient norm was not finite, so the GPU did not apply the update.
    pub skipped: bool,
}

/// Non-padding targets in a batch: the tokens the loss averages over.
pub fn counted_tokens(batch: &Batch, pad_id: u32) -> usize {
    batch.targets.iter().filter(|&&t| t != pad_id).count()
}

impl LmTrainer {
    /// Upload a batch: ids [B, T], targets [B*T], lens [B].
    fn upload(&self, batch: &Batch) -> Result<(Tensor, Tensor, Tensor)> {
        let gpu = self.model.token_embedding.weight.gpu();
        let (b, t) = (batch.batch_size, batch.seq_len);
        Ok((
            Tensor::from_u32(gpu, &batch.inputs, &[b, t])?,
            Tensor::from_u32(gpu, &batch.targets, &[b * t])?,
            Tensor::from_u32(gpu, &batch.lens, &[b])?,
        ))
    }

    /// Mean token cross-entropy of `batch` ([] tensor, not read back).
    fn loss(&self, batch: &Batch, ctx: &Ctx) -> Result<Tensor> {
        let (ids, targets, lens) = self.upload(batch)?;
        let logits = self.model.forward(&ids, Some(&lens), ctx)?; // [B, T, V]
        let v = self.model.config.vocab_size;
        let logits = logits.reshape(&[batch.batch_size * batch.seq_len, v])?;
        ops::cross_entropy(&logits, &targets, self.pad_id, self.label_smoothing)
    }

    /// One optimizer step over `micro_batches` (gradient accumulation: each contributes its
    /// share). Returns the mean loss, the only value read back.
    pub fn train_step(&mut self, micro_batches: &[Batch]) -> Result<StepStats> {
        if micro_batches.is_empty() {
            return Err(Error::shape("train_step", "no batches"));
        }
        let lr = self.schedule.lr(self.step);
        self.optimizer.set_lr(lr as f32);
        let share = 1.0 / micro_batches.len() as f32;
        let mut total: Option<Tensor> = None;
        let mut tokens = 0;
        for (i, batch) in micro_batches.iter().enumerate() {
            let ctx = Ctx::train(self.seed ^ ((self.step as u64) << 16) ^ i as u64);
            let loss = self.loss(batch, &ctx)?;
            let scaled = ops::scale(&loss, share)?;
            scaled.backward()?;
            let detached = {
                let _g = crate::no_grad();
                ops::scale(&loss, share)?
            };
            total = Some(match total {
                Some(t) => {
                    let _g = crate::no_grad();
                    ops::add(&t, &detached)?
                }
                None => detached,
            });
            tokens += batch.batch_size * batch.seq_len;
        }
        let report = self
            .optimizer
            .clip_step_zero(self.max_grad_norm, total.as_ref())?;
        self.step += 1;
        let r = self.optimizer.read_step_report(&report)?;
        Ok(StepStats {
            loss: r.loss,
            lr,
            tokens,
            grad_norm: r.grad_norm,
            skipped: r.skipped,
        })
    }

    /// Token-weighted mean cross-entropy (no label smoothing, no dropout) over `batches`.
    pub fn evaluate(&self, batches: &[Batch]) -> Result<f64> {
        let _g = crate::no_grad();
        let (mut sum, mut count) = (0.0f64, 0usize);
        for batch in batches {
            let n = counted_tokens(batch, self.pad_id);
            if n == 0 {
                continue;
            }
            let (ids, targets, lens) = self.upload(batch)?;
            let logits = self.model.forward(&ids, Some(&lens), &Ctx::eval())?;
            let logits = logits.reshape(&[
                batch.batch_size * batch.seq_len,
                self.model.config.vocab_size,
            ])?;
            let loss = ops::cross_entropy(&logits, &targets, self.pad_id, 0.0)?.to_scalar()?;
            sum += loss as f64 * n as f64;
            count += n;
        }
        Ok(if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        })
    }
}
