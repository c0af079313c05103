//! Batched transcription of prepared utterances (features already computed): the encoder over
//! a padded batch, then `decoding::transcribe_encoded`; and CER / WER of a set of batches.
//! Validation during training and the test report both decode through here.

use super::decoding::{transcribe_encoded, Decoding};
use super::error_rate::ErrorRates;
use crate::data::asr::AsrBatch;
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::models::{DecoderOnlyTransformer, Encoded, EncoderDecoderTransformer};
use crate::nn::Ctx;
use crate::tensor::Tensor;

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

/// Transcripts of a batch.
pub fn transcribe_batch(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    batch: &AsrBatch,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<Vec<String>> {
    let _g = crate::no_grad();
    let encoded = encode_batch(model, batch, &Ctx::eval())?;
    transcribe_encoded(model, tokenizer, &encoded, decoding, lm)
}

/// CER / WER of `batches` against their reference transcripts.
pub fn evaluate(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    batches: &[AsrBatch],
    references: &dyn Fn(&str) -> Option<String>,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<ErrorRates> {
    let mut rates = ErrorRates::default();
    for batch in batches {
        let hyps = transcribe_batch(model, tokenizer, batch, decoding, lm)?;
        for (id, hyp) in batch.ids.iter().zip(&hyps) {
            let reference = references(id).ok_or_else(|| {
                Error::format("evaluate", format!("no reference transcript for `{id}`"))
            })?;
            rates.add(&reference, hyp);
        }
    }
    Ok(rates)
}
