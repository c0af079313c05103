//! One training step of the speech recognizer, recorded into a single GPU submission:
//! encode -> decoder cross-entropy (+ ctc_weight x CTC over the encoder frames) -> backward
//! -> global-norm clip -> AdamW; the loss is the only readback. Evaluation decodes with the
//! KV cache (greedy, batched, or beam search) and scores CER / WER.

use super::lm::StepStats;
use super::schedule::LrSchedule;
use crate::data::asr::AsrBatch;
use crate::data::PAD;
use crate::error::Result;
use crate::inference::transcribe::encode_batch;
use crate::models::EncoderDecoderTransformer;
use crate::nn::Ctx;
use crate::ops;
use crate::optim::Optimizer;
use crate::tensor::Tensor;

pub struct AsrTrainer {
    pub model: EncoderDecoderTransformer,
    pub optimizer: Optimizer,
    pub schedule: LrSchedule,
    pub label_smoothing: f32,
    /// Loss = CE + ctc_weight x CTC (mean over utterances of the per-label CTC loss).
    pub ctc_weight: f32,
    pub max_grad_norm: f32,
    pub step: usize,
    pub seed: u64,
}

impl AsrTrainer {
    /// The training loss of `batch` ([] tensor, not read back).
    pub fn loss(&self, batch: &AsrBatch, ctx: &Ctx) -> Result<Tensor> {
        let gpu = self.model.gpu().clone();
        let (b, s1) = (batch.batch, batch.labels + 1);
        let encoded = encode_batch(&self.model, batch, ctx)?;
        let input = Tensor::from_u32(&gpu, &batch.decoder_input, &[b, s1])?;
        let target = Tensor::from_u32(&gpu, &batch.decoder_target, &[b * s1])?;
        let logits = self.model.decode(&input, &encoded, ctx)?;
        let v = self.model.config.vocab_size;
        let ce = ops::cross_entropy(
            &logits.reshape(&[b * s1, v])?,
            &target,
            PAD,
            self.label_smoothing,
        )?;
        if self.ctc_weight == 0.0 || self.model.ctc_head.is_none() {
            return Ok(ce);
        }
        if let Some((i, _)) = encoded
            .lens
            .iter()
            .zip(&batch.target_lens)
            .enumerate()
            .find(|(_, (&enc, &lab))| enc < lab as usize)
        {
            log::debug!(
                "utterance {} has {} encoder frames for {} labels: CTC ignores it",
                batch.ids[i],
                encoded.lens[i],
                batch.target_lens[i]
            );
        }
        let ctc_logits = self.model.ctc_logits(&encoded)?;
        let targets = Tensor::from_u32(&gpu, &batch.ctc_targets, &[b, batch.labels.max(1)])?;
        let target_lens = Tensor::from_u32(&gpu, &batch.target_lens, &[b])?;
        let per_utt = ops::ctc_loss(
            &ctc_logits,
            &encoded.lens_tensor,
            &targets,
            &target_lens,
            PAD,
        )?;
        // PyTorch's reduction='mean': each utterance's loss over its label count, then the
        // batch mean; folded with ctc_weight into one per-utterance weight.
        let weights: Vec<f32> = batch
            .target_lens
            .iter()
            .map(|&n| self.ctc_weight / (b as f32 * n.max(1) as f32))
            .collect();
        let weights = Tensor::from_slice(&gpu, &weights, &[b])?;
        let ctc = ops::sum_axis(&ops::mul(&per_utt, &weights)?, 0)?;
        ops::add(&ce, &ctc.reshape(ce.shape())?)
    }

    /// One optimizer step on `batch`. Reads back one thing, [gradient norm, clipping
    /// coefficient, loss]; a non-finite loss or norm means the GPU skipped the update
    /// (`StepStats::skipped`), and the caller's `NonFiniteGuard` decides what follows.
    pub fn train_step(&mut self, batch: &AsrBatch) -> Result<StepStats> {
        let lr = self.schedule.lr(self.step);
        self.optimizer.set_lr(lr as f32);
        let ctx = Ctx::train(self.seed ^ ((self.step as u64) << 16));
        let loss = self.loss(batch, &ctx)?;
        loss.backward()?;
        let report = self
            .optimizer
            .clip_step_zero(self.max_grad_norm, Some(&loss))?;
        self.step += 1;
        let r = self.optimizer.read_step_report(&report)?;
        Ok(StepStats {
            loss: r.loss,
            lr,
            tokens: batch.target_lens.iter().map(|&n| n as usize).sum(),
            grad_norm: r.grad_norm,
            skipped: r.skipped,
        })
    }
}
