//! Batched transcription of prepared utterances (features already computed): the encoder over
//! a padded batch, then CTC best path, greedy decoding of the whole batch at once, or beam
//! search one utterance at a time; and CER / WER of a set of batches. Validation during
//! training and the test report both decode through here.

use super::error_rate::ErrorRates;
use crate::data::asr::AsrBatch;
use crate::data::{Tokenizer, EOS, PAD, SOS};
use crate::decode::{beam_search, ctc_greedy, greedy_batch, BeamConfig, SpeechDecoder};
use crate::error::{Error, Result};
use crate::models::{Encoded, EncoderDecoderTransformer};
use crate::nn::Ctx;
use crate::ops;
use crate::tensor::Tensor;

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
