//! One training step of the speech recognizer, recorded into a single GPU submission:
//! encode -> decoder cross-entropy (+ ctc_weight x CTC over the encoder frames) -> backward
//! -> global-norm clip -> AdamW; the loss is the only readback. Evaluation decodes with the
//! KV cache (greedy, batched, or beam search) and scores CER / WER.

use super::error_rate::ErrorRates;
use super::lm::StepStats;
use super::schedule::LrSchedule;
use crate::data::asr::AsrBatch;
use crate::data::{Tokenizer, EOS, PAD, SOS};
use crate::decode::{beam_search, ctc_greedy, greedy_batch, BeamConfig, SpeechDecoder};
use crate::error::{Error, Result};
use crate::models::{Encoded, EncoderDecoderTransformer};
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

/// How to decode: the attention decoder (greedy when `beam_width` is 1), or with `ctc` the
/// CTC head's best path.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    pub ctc: bool,
    pub beam_width: usize,
    pub length_penalty: f32,
    pub max_len: usize,
}

/// A batch's features on the GPU, encoded.
pub fn encode_batch(
    model: &EncoderDecoderTransformer,
    batch: &AsrBatch,
    ctx: &Ctx,
) -> Result<Encoded> {
    let features = Tensor::from_slice(
        model.gpu(),
        &batch.features,
        &[batch.batch, batch.frames, batch.bins],
    )?;
    let lens: Vec<usize> = batch.feature_lens.iter().map(|&n| n as usize).collect();
    model.encode(&features, &lens, ctx)
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

/// Transcripts of a batch, decoded with the KV cache; greedy decoding runs the whole batch at
/// once, beam search one utterance at a time.
pub fn transcribe_batch(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    batch: &AsrBatch,
    opts: &DecodeOptions,
) -> Result<Vec<String>> {
    let _g = crate::no_grad();
    let encoded = encode_batch(model, batch, &Ctx::eval())?;
    // A transcript has at most about one character per encoder frame (40 ms): a decoder
    // that has not learned to stop is cut off there rather than at max_target_len.
    let longest = encoded.lens.iter().copied().max().unwrap_or(0);
    let max_len = opts
        .max_len
        .min(model.config.max_target_len)
        .min(longest + 10);
    let token_lists = if opts.ctc {
        let logits = model.ctc_logits(&encoded)?; // [B, S, V]
        let (frames, vocab) = (logits.shape()[1], logits.shape()[2]);
        ctc_greedy(&logits.to_vec()?, &encoded.lens, frames, vocab, PAD)
    } else if opts.beam_width <= 1 {
        let decoder = SpeechDecoder {
            model,
            encoded: &encoded,
        };
        greedy_batch(&decoder, batch.batch, SOS, EOS, max_len)?
    } else {
        let cfg = BeamConfig {
            beam_width: opts.beam_width,
            max_new_tokens: max_len,
            length_penalty: opts.length_penalty,
            eos: Some(EOS),
        };
        let mut out = Vec::with_capacity(batch.batch);
        for b in 0..batch.batch {
            let one = Encoded {
                memory: ops::slice(&encoded.memory, 0, b, 1)?,
                lens: vec![encoded.lens[b]],
                lens_tensor: Tensor::from_u32(model.gpu(), &[encoded.lens[b] as u32], &[1])?,
            };
            let decoder = SpeechDecoder {
                model,
                encoded: &one,
            };
            let mut tokens = beam_search(&decoder, &[SOS], &cfg)?;
            tokens.retain(|&t| t != EOS);
            out.push(tokens);
        }
        out
    };
    Ok(token_lists.iter().map(|t| tokenizer.decode(t)).collect())
}

/// CER / WER of `batches` against their reference transcripts.
pub fn evaluate(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    batches: &[AsrBatch],
    references: &dyn Fn(&str) -> Option<String>,
    opts: &DecodeOptions,
) -> Result<ErrorRates> {
    let mut rates = ErrorRates::default();
    for batch in batches {
        let hyps = transcribe_batch(model, tokenizer, batch, opts)?;
        for (id, hyp) in batch.ids.iter().zip(&hyps) {
            let reference = references(id).ok_or_else(|| {
                Error::format("evaluate", format!("no reference transcript for `{id}`"))
            })?;
            rates.add(&reference, hyp);
        }
    }
    Ok(rates)
}
