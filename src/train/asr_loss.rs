//! The speech recognizer's training loss: encode -> decoder cross-entropy (label-smoothed)
//! + ctc_weight x CTC over the encoder frames, all on the GPU and on the tape.

use crate::data::asr::AsrBatch;
use crate::data::PAD;
use crate::error::Result;
use crate::inference::transcribe::encode_batch;
use crate::models::EncoderDecoderTransformer;
use crate::nn::Ctx;
use crate::ops;
use crate::tensor::Tensor;

/// The training loss of `batch` ([] tensor, not read back): label-smoothed cross-entropy of
/// the decoder plus `ctc_weight` x the CTC loss of the encoder's CTC head (when it has one).
pub fn asr_loss(
    model: &EncoderDecoderTransformer,
    batch: &AsrBatch,
    ctx: &Ctx,
    label_smoothing: f32,
    ctc_weight: f32,
) -> Result<Tensor> {
    let gpu = model.gpu().clone();
    let (b, s1) = (batch.batch, batch.labels + 1);
    let encoded = encode_batch(model, batch, ctx)?;
    let input = Tensor::from_u32(&gpu, &batch.decoder_input, &[b, s1])?;
    let target = Tensor::from_u32(&gpu, &batch.decoder_target, &[b * s1])?;
    let logits = model.decode(&input, &encoded, ctx)?;
    let v = model.config.vocab_size;
    let ce = ops::cross_entropy(
        &logits.reshape(&[b * s1, v])?,
        &target,
        PAD,
        label_smoothing,
    )?;
    if ctc_weight == 0.0 || model.ctc_head.is_none() {
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
    let ctc_logits = model.ctc_logits(&encoded)?;
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
        .map(|&n| ctc_weight / (b as f32 * n.max(1) as f32))
        .collect();
    let weights = Tensor::from_slice(&gpu, &weights, &[b])?;
    let ctc = ops::sum_axis(&ops::mul(&per_utt, &weights)?, 0)?;
    ops::add(&ce, &ctc.reshape(ce.shape())?)
}
