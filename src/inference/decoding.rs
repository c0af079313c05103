//! How the recognizer turns encoder output into text (`Decoding`), and the one function that
//! does it (`transcribe_encoded`) for evaluation, validation during training and `Recognizer`
//! alike.

use crate::config::{DecodeConfig, DecodeMode};
use crate::data::{Tokenizer, EOS, PAD, SOS};
use crate::decode::{
    beam_search_async, ctc_greedy, greedy_batch_async, joint_beam_search_async, BeamConfig,
    Boundary, CausalLmDecoder, CtcPrefixScorer, IncrementalDecoder, ShallowFusion, SpeechDecoder,
};
use crate::error::{Error, Result};
use crate::gpu::block_on;
use crate::models::{DecoderOnlyTransformer, Encoded, EncoderDecoderTransformer};
use crate::ops;
use crate::tensor::Tensor;

/// Which head writes the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The attention decoder: beam search over its KV caches (width 1: greedy).
    Attention,
    /// The CTC head's best path: the most likely class of every encoder frame, repeats merged,
    /// blanks dropped (the other fields of `Decoding` do nothing).
    CtcBestPath,
}

/// How to decode speech. A checkpoint's default is its config's `decode` section
/// (`Decoding::from_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct Decoding {
    pub method: Method,
    /// Beams of the attention decoder (1: greedy).
    pub beam_width: usize,
    /// Weight in [0, 1] of the CTC prefix scores joined to the decoder's in the beam search
    /// (ESPnet's decoding `ctc_weight`; `decode::joint_beam_search`); 0: the decoder alone.
    /// With CTC, a hypothesis can only end where its characters account for the whole audio.
    pub ctc_weight: f32,
    /// Finished hypotheses are ranked by score / length^length_penalty.
    pub length_penalty: f32,
    /// Shallow-fusion weight of the causal LM the recognizer was loaded with (no LM: unused).
    pub lm_weight: f32,
}

impl Decoding {
    pub fn from_config(d: &DecodeConfig) -> Decoding {
        Decoding {
            // `auto` is resolved when the best checkpoint is saved; one left in a
            // hand-written config decodes with the attention decoder.
            method: match d.mode {
                DecodeMode::Ctc => Method::CtcBestPath,
                DecodeMode::Attention | DecodeMode::Auto => Method::Attention,
            },
            beam_width: d.beam_width.max(1),
            ctc_weight: d.ctc_weight as f32,
            length_penalty: d.length_penalty as f32,
            lm_weight: d.lm_weight as f32,
        }
    }

    /// Greedy attention decoding, the decoder alone (validation during training).
    pub fn attention_greedy() -> Decoding {
        Decoding {
            method: Method::Attention,
            beam_width: 1,
            ctc_weight: 0.0,
            length_penalty: 1.0,
            lm_weight: 0.0,
        }
    }

    pub fn ctc_best_path() -> Decoding {
        Decoding {
            method: Method::CtcBestPath,
            ..Decoding::attention_greedy()
        }
    }

    /// This decoding with `beam_width` beams.
    pub fn with_beam(&self, beam_width: usize) -> Decoding {
        Decoding {
            beam_width,
            ..self.clone()
        }
    }

    /// An error naming the setting `model` cannot decode with.
    pub fn check(&self, model: &EncoderDecoderTransformer) -> Result<()> {
        let needs_ctc = self.method == Method::CtcBestPath || self.ctc_weight > 0.0;
        let problem = if self.beam_width == 0 {
            Some("beam_width must be at least 1".to_string())
        } else if !(0.0..=1.0).contains(&self.ctc_weight) {
            Some(format!("ctc_weight {} is outside [0, 1]", self.ctc_weight))
        } else if !self.lm_weight.is_finite() || !self.length_penalty.is_finite() {
            Some("lm_weight and length_penalty must be finite".to_string())
        } else if needs_ctc && model.ctc_head.is_none() {
            Some("this decoding uses the CTC head, and the model has none".to_string())
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(Error::shape("Decoding", p)))
    }
}

/// The most tokens the attention decoder writes for `enc_len` encoder frames: a transcript has
/// at most about one character per encoder frame (40 ms), so a decoder that has not learned to
/// stop is cut off there; and the target positions end at `max_target_len`, the start token
/// taking the first.
pub fn max_new_tokens(model: &EncoderDecoderTransformer, enc_len: usize) -> usize {
    (model.config.max_target_len - 1).min(enc_len + 10)
}

/// Utterance `b` of a batch on its own.
fn one_utterance(
    model: &EncoderDecoderTransformer,
    encoded: &Encoded,
    b: usize,
) -> Result<Encoded> {
    if encoded.lens.len() == 1 {
        return Ok(encoded.clone());
    }
    Ok(Encoded {
        memory: ops::slice(&encoded.memory, 0, b, 1)?,
        lens: vec![encoded.lens[b]],
        lens_tensor: Tensor::from_u32(model.gpu(), &[encoded.lens[b] as u32], &[1])?,
    })
}

/// Transcripts of a batch of encoded utterances. The CTC posteriors, where needed, come back
/// from the GPU once per batch; plain greedy decoding runs the whole batch at once, anything
/// else (beam, CTC prefix scores, LM) one utterance at a time.
pub fn transcribe_encoded(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    encoded: &Encoded,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<Vec<String>> {
    block_on(transcribe_encoded_async(
        model, tokenizer, encoded, decoding, lm,
    ))
}

/// `transcribe_encoded` with every readback awaited (a browser page).
pub async fn transcribe_encoded_async(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    encoded: &Encoded,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<Vec<String>> {
    decoding.check(model)?;
    let batch = encoded.lens.len();
    let lm = lm.filter(|_| decoding.lm_weight != 0.0);
    let ctc_logits = if decoding.method == Method::CtcBestPath || decoding.ctc_weight > 0.0 {
        let logits = {
            let _g = crate::no_grad();
            model.ctc_logits(encoded)?
        };
        Some(logits.to_vec_async().await?) // [B, S, V]
    } else {
        None
    };
    let (frames, vocab) = (encoded.memory.shape()[1], model.config.vocab_size);
    let token_lists = if decoding.method == Method::CtcBestPath {
        let logits = ctc_logits.as_deref().unwrap_or_default();
        ctc_greedy(logits, &encoded.lens, frames, vocab, PAD)
    } else if decoding.beam_width == 1 && ctc_logits.is_none() && lm.is_none() {
        let longest = encoded.lens.iter().copied().max().unwrap_or(0);
        let decoder = SpeechDecoder { model, encoded };
        let mut rows =
            greedy_batch_async(&decoder, batch, SOS, EOS, max_new_tokens(model, longest)).await?;
        // Each row under its own cap, as if decoded alone (rows do not affect each other).
        for (row, &len) in rows.iter_mut().zip(&encoded.lens) {
            row.truncate(max_new_tokens(model, len));
        }
        rows
    } else {
        let mut out = Vec::with_capacity(batch);
        for b in 0..batch {
            let one = {
                let _g = crate::no_grad();
                one_utterance(model, encoded, b)?
            };
            let cfg = BeamConfig {
                beam_width: decoding.beam_width,
                max_new_tokens: max_new_tokens(model, one.lens[0]),
                length_penalty: decoding.length_penalty,
                eos: Some(EOS),
            };
            let ctc = ctc_logits.as_ref().map(|all| {
                let row = &all[b * frames * vocab..][..one.lens[0] * vocab];
                CtcPrefixScorer::new(row, one.lens[0], vocab, PAD, SOS, EOS)
            });
            let asr = SpeechDecoder {
                model,
                encoded: &one,
            };
            let mut tokens = match lm {
                Some(lm) => {
                    // The LM read the transcripts' text, lines joined by spaces.
                    let boundary = Boundary {
                        token: tokenizer.encode(" ").first().copied().unwrap_or(SOS),
                        sos: SOS,
                        eos: EOS,
                    };
                    let fused = ShallowFusion::new(asr, CausalLmDecoder(lm), decoding.lm_weight)?
                        .with_boundary(boundary)?;
                    search(&fused, &cfg, ctc.as_ref(), decoding.ctc_weight).await?
                }
                None => search(&asr, &cfg, ctc.as_ref(), decoding.ctc_weight).await?,
            };
            tokens.retain(|&t| t != EOS);
            out.push(tokens);
        }
        out
    };
    Ok(token_lists.iter().map(|t| tokenizer.decode(t)).collect())
}

async fn search<D: IncrementalDecoder>(
    decoder: &D,
    cfg: &BeamConfig,
    ctc: Option<&CtcPrefixScorer>,
    ctc_weight: f32,
) -> Result<Vec<u32>> {
    match ctc {
        Some(scorer) => joint_beam_search_async(decoder, &[SOS], cfg, scorer, ctc_weight).await,
        None => beam_search_async(decoder, &[SOS], cfg).await,
    }
}
