//! The fine-tuning objective: teacher-forced cross-entropy of the decoder's next-token
//! predictions given the audio, counted on the transcript tokens (and the end-of-text token),
//! not on the start sequence that prompts them.
//!
//! ```text
//! input_ids: <|startoftranscript|> <|notimestamps|>  Hello    world  .
//! targets:   (ignored)             Hello             world    .      <|endoftext|>
//! ```

use super::Whisper;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops;
use crate::tensor::Tensor;

/// The target of positions that do not count (prompt and padding).
pub const IGNORE: u32 = u32::MAX;

/// One utterance: its mel window and its token sequence.
#[derive(Clone, Debug)]
pub struct WhisperExample {
    /// [frames, n_mels] row-major (`WhisperMel::window`: 3000 frames for 30 s).
    pub mel: Vec<f32>,
    /// The start sequence (`WhisperTokens::prompt`), at least one token.
    pub prompt: Vec<u32>,
    /// The transcript's tokens followed by the end-of-text token.
    pub target: Vec<u32>,
}

/// A padded batch on the GPU.
pub struct WhisperBatch {
    /// [B, frames, n_mels]
    pub mel: Tensor,
    /// [B, T] u32: prompt + target without its last token, padded with the last target token.
    pub input_ids: Tensor,
    /// [B * T] u32: the token that follows each input position, `IGNORE` where none counts.
    pub targets: Tensor,
}

impl WhisperBatch {
    /// Pack `examples` (each `frames` x `n_mels` mel values) into one batch.
    pub fn new(
        gpu: &Gpu,
        examples: &[WhisperExample],
        frames: usize,
        n_mels: usize,
    ) -> Result<WhisperBatch> {
        let bad = |msg: String| Error::shape("WhisperBatch", msg);
        if examples.is_empty() {
            return Err(bad("no examples".into()));
        }
        let len = |e: &WhisperExample| e.prompt.len() + e.target.len() - 1;
        let t = examples.iter().map(len).max().unwrap_or(0);
        let mut mel = Vec::with_capacity(examples.len() * frames * n_mels);
        let mut input_ids = Vec::with_capacity(examples.len() * t);
        let mut targets = Vec::with_capacity(examples.len() * t);
        for (i, e) in examples.iter().enumerate() {
            if e.mel.len() != frames * n_mels || e.prompt.is_empty() || e.target.is_empty() {
                return Err(bad(format!(
                    "example {i}: {} mel values (want {frames} x {n_mels}), {} prompt and {} \
                     target tokens (want at least one of each)",
                    e.mel.len(),
                    e.prompt.len(),
                    e.target.len()
                )));
            }
            mel.extend(&e.mel);
            let seq: Vec<u32> = e.prompt.iter().chain(&e.target).copied().collect();
            let pad = *seq.last().unwrap_or(&0);
            for p in 0..t {
                input_ids.push(*seq.get(p).filter(|_| p + 1 < seq.len()).unwrap_or(&pad));
                // Position p predicts seq[p + 1]; only the target's tokens count.
                let counts = p + 1 >= e.prompt.len() && p + 1 < seq.len();
                targets.push(if counts { seq[p + 1] } else { IGNORE });
            }
        }
        let b = examples.len();
        Ok(WhisperBatch {
            mel: Tensor::from_slice(gpu, &mel, &[b, frames, n_mels])?,
            input_ids: Tensor::from_u32(gpu, &input_ids, &[b, t])?,
            targets: Tensor::from_u32(gpu, &targets, &[b * t])?,
        })
    }
}

/// Mean cross-entropy of the transcript tokens of `batch` under `model`, with its backward
/// through the decoder, the encoder and the convolutional stem.
pub fn whisper_loss(model: &Whisper, batch: &WhisperBatch) -> Result<Tensor> {
    let memory = model.encode(&batch.mel)?; // [B, S, d]
    let logits = model.decode(&batch.input_ids, &memory)?; // [B, T, V]
    let (b, t, v) = (logits.shape()[0], logits.shape()[1], logits.shape()[2]);
    ops::cross_entropy(&logits.reshape(&[b * t, v])?, &batch.targets, IGNORE, 0.0)
}
