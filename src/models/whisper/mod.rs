//! OpenAI's Whisper (Radford et al. 2022) on the crate's kernels, read top to bottom:
//!
//! ```text
//! mel [B, 3000, n_mels]
//!  -> conv1d(k3, p1) + GELU -> conv1d(k3, s2, p1) + GELU      [B, 1500, d]
//!  -> + the stored position table (sinusoids, not trained)
//!  -> pre-LN encoder layers: x + SelfAttn(LN(x)); x + FC2(GELU(FC1(LN(x))))
//!  -> LayerNorm                                                memory [B, 1500, d]
//! ids [B, T] -> token embedding + learned positions            [B, T, d]
//!  -> pre-LN decoder layers: x + CausalSelfAttn(LN(x)); x + CrossAttn(LN(x), memory);
//!     x + FC2(GELU(FC1(LN(x))))
//!  -> LayerNorm -> @ token_embedding^T (tied)                  logits [B, T, V]
//! ```
//! Attention projections have biases except the keys' (k_proj); GELU is the exact erf form,
//! applied in FC1's epilogue (`ops::linear_act`); LayerNorm eps is 1e-5. Parameters carry the Hugging Face names
//! (`model.encoder.layers.0.self_attn.k_proj.weight`, ...); `load` reads that layout and
//! CTranslate2's (`load.rs`). Every op records its backward, so the whole model fine-tunes
//! (`loss.rs`); the encoder's position table is a constant, as in `transformers`.

mod load;
mod loss;

pub use load::{
    load_whisper, whisper_from_weights, with_whisper_files, ParsedWhisper, WhisperFormat,
    WhisperWeights,
};
pub use loss::{whisper_loss, WhisperBatch, WhisperExample, IGNORE};

use crate::error::{Error, Result};
use crate::nn::{CrossLayerCache, KvCache, LayerNorm, Linear, Module, MultiHeadAttention};
use crate::ops::{self, AttentionMask, Conv1dConfig};
use crate::tensor::{DType, Tensor};

/// The sizes of a Whisper model (tiny.en: 80 mels, d 384, 4 + 4 layers of 6 heads, FFN 1536,
/// 51864 tokens, 1500 source and 448 target positions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhisperConfig {
    pub n_mels: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_heads: usize,
    pub encoder_ffn: usize,
    pub decoder_layers: usize,
    pub decoder_heads: usize,
    pub decoder_ffn: usize,
    pub vocab_size: usize,
    /// Encoder positions: half the mel frames of a window (1500 for 30 s).
    pub max_source_positions: usize,
    /// Decoder positions: the longest prompt + transcript (448).
    pub max_target_positions: usize,
}

impl WhisperConfig {
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.n_mels,
            self.d_model,
            self.encoder_layers,
            self.encoder_heads,
            self.encoder_ffn,
            self.decoder_layers,
            self.decoder_heads,
            self.decoder_ffn,
            self.vocab_size,
            self.max_source_positions,
            self.max_target_positions,
        ];
        let heads_divide = self.d_model.is_multiple_of(self.encoder_heads.max(1))
            && self.d_model.is_multiple_of(self.decoder_heads.max(1));
        if sizes.contains(&0) || !heads_divide {
            return Err(Error::shape(
                "WhisperConfig",
                format!("sizes must be positive and the heads must divide d_model: {self:?}"),
            ));
        }
        Ok(())
    }

    /// Mel frames of one encoder window (3000 for 30 s).
    pub fn window_frames(&self) -> usize {
        2 * self.max_source_positions
    }

    /// Whisper's multilingual models have 51865 tokens or more (a language token per language);
    /// the English-only ones 51864.
    pub fn is_multilingual(&self) -> bool {
        self.vocab_size >= 51865
    }
}

/// `x + FC2(GELU(FC1(LN(x))))`: the last branch of every layer.
pub struct WhisperFeedForward {
    pub final_layer_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl WhisperFeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let ln = self.final_layer_norm.forward(x)?;
        let h = self.fc1.forward_act(&ln, ops::Activation::Gelu)?; // [B, T, ffn]
        self.fc2.forward_add(&h, Some(x))
    }

    fn params(&self) -> Vec<Tensor> {
        [
            self.final_layer_norm.params(),
            self.fc1.params(),
            self.fc2.params(),
        ]
        .concat()
    }
}

pub struct WhisperEncoderLayer {
    pub self_attn_layer_norm: LayerNorm,
    pub self_attn: MultiHeadAttention,
    pub ffn: WhisperFeedForward,
}

impl WhisperEncoderLayer {
    /// x: [B, S, d] -> [B, S, d]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let x = self
            .self_attn
            .forward_add(&h, &h, &AttentionMask::none(), Some(x))?;
        self.ffn.forward(&x)
    }
}

pub struct WhisperDecoderLayer {
    pub self_attn_layer_norm: LayerNorm,
    pub self_attn: MultiHeadAttention,
    pub encoder_attn_layer_norm: LayerNorm,
    pub encoder_attn: MultiHeadAttention,
    pub ffn: WhisperFeedForward,
}

impl WhisperDecoderLayer {
    /// x: [B, T, d] (with a cache: the new positions only), memory: [B, S, d] -> [B, T, d].
    fn forward(
        &self,
        x: &Tensor,
        memory: &Tensor,
        cache: Option<&mut CrossLayerCache>,
    ) -> Result<Tensor> {
        let (self_kv, cross_kv) = match cache {
            Some(c) => (Some(&mut c.self_kv), Some(&mut c.cross_kv)),
            None => (None, None),
        };
        // x + CausalSelfAttn(LN(x)); with a cache the new keys/values are appended to it.
        let h = self.self_attn_layer_norm.forward(x)?;
        let causal = AttentionMask::causal();
        let x = match self_kv {
            Some(kv) => self
                .self_attn
                .forward_self_cached(&h, &causal, kv, Some(x))?,
            None => self.self_attn.forward_add(&h, &h, &causal, Some(x))?,
        };
        // x + CrossAttn(LN(x), memory); with a cache the memory's keys/values are computed once.
        let h = self.encoder_attn_layer_norm.forward(&x)?;
        let everything = AttentionMask::none();
        let x = match cross_kv {
            Some(kv) => {
                self.encoder_attn
                    .forward_cross_cached(&h, memory, &everything, kv, Some(&x))?
            }
            None => self
                .encoder_attn
                .forward_add(&h, memory, &everything, Some(&x))?,
        };
        self.ffn.forward(&x)
    }
}

/// A convolution of the stem: weight [C_out, C_in, 3], bias [C_out].
pub struct WhisperConv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
}

impl WhisperConv {
    /// x: [B, T, C_in] -> GELU(conv(x)) [B, T / stride, C_out]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = Conv1dConfig {
            stride: self.stride,
            padding: 1,
        };
        ops::gelu(&ops::conv1d(x, &self.weight, Some(&self.bias), cfg)?)
    }
}

pub struct Whisper {
    pub config: WhisperConfig,
    pub conv1: WhisperConv,
    pub conv2: WhisperConv,
    /// [max_source_positions, d], a constant.
    pub encoder_positions: Tensor,
    pub encoder_layers: Vec<WhisperEncoderLayer>,
    pub encoder_layer_norm: LayerNorm,
    /// [V, d]: the decoder's input embedding and, transposed, its output projection.
    pub embed_tokens: Tensor,
    /// [max_target_positions, d], trained.
    pub decoder_positions: Tensor,
    pub decoder_layers: Vec<WhisperDecoderLayer>,
    pub decoder_layer_norm: LayerNorm,
}

impl Whisper {
    pub fn gpu(&self) -> &crate::gpu::Gpu {
        self.embed_tokens.gpu()
    }

    /// mel: [B, F, n_mels] (F <= 2 * max_source_positions, 3000 for a 30 s window) ->
    /// memory [B, F / 2, d].
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        if mel.dims() != 3 || mel.shape()[2] != c.n_mels || mel.dtype() != DType::F32 {
            return Err(Error::shape(
                "Whisper::encode",
                format!("mel must be [B, frames, {}] f32, got {mel:?}", c.n_mels),
            ));
        }
        let x = self.conv1.forward(mel)?; // [B, F, d]
        let x = self.conv2.forward(&x)?; // [B, S = F / 2, d]
        let s = x.shape()[1];
        if s > c.max_source_positions {
            return Err(Error::shape(
                "Whisper::encode",
                format!(
                    "{} mel frames give {s} positions; the model has {} ({} frames, 30 s)",
                    mel.shape()[1],
                    c.max_source_positions,
                    c.window_frames()
                ),
            ));
        }
        let mut x = ops::add(&x, &ops::slice(&self.encoder_positions, 0, 0, s)?)?;
        for layer in &self.encoder_layers {
            x = layer.forward(&x)?;
        }
        self.encoder_layer_norm.forward(&x)
    }

    /// The encoder output [N, S, d] of N windows (each `window_frames` x n_mels values), without
    /// gradients, encoded in groups small enough that every tensor fits one storage binding:
    /// the largest, where attention takes the unfused path, is the scores, heads x S x S values
    /// per window (54 MB for tiny.en, so lavapipe's 128 MiB binding takes two windows at a
    /// time).
    pub fn encode_windows(&self, windows: &[&[f32]]) -> Result<Tensor> {
        let c = &self.config;
        let gpu = self.gpu();
        let _g = crate::no_grad();
        let s = c.max_source_positions;
        let scores_bytes = (c.encoder_heads * s * s * 4) as u64;
        let group = (gpu.max_binding_bytes() / scores_bytes).max(1) as usize;
        let memories = windows
            .chunks(group)
            .map(|g| {
                let shape = [g.len(), c.window_frames(), c.n_mels];
                self.encode(&Tensor::from_slice(gpu, &g.concat(), &shape)?)
            })
            .collect::<Result<Vec<_>>>()?;
        match memories.as_slice() {
            [one] => Ok(one.clone()),
            many => ops::concat(&many.iter().collect::<Vec<_>>(), 0),
        }
    }

    /// ids [B, T] u32 at positions start.. -> token + position embeddings [B, T, d].
    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let t = ids.shape().get(1).copied().unwrap_or(0);
        if ids.dims() != 2 || ids.dtype() != DType::U32 {
            return Err(Error::shape(
                "Whisper::decode",
                format!("token ids must be [B, T] u32, got {ids:?}"),
            ));
        }
        if start + t > self.config.max_target_positions {
            return Err(Error::shape(
                "Whisper::decode",
                format!(
                    "positions up to {} exceed the decoder's {}",
                    start + t,
                    self.config.max_target_positions
                ),
            ));
        }
        let x = ops::embedding(&self.embed_tokens, ids)?; // [B, T, d]
        ops::add(&x, &ops::slice(&self.decoder_positions, 0, start, t)?)
    }

    /// Final LayerNorm and the tied projection: h [B, T, d] -> logits [B, T, V].
    pub fn logits(&self, h: &Tensor) -> Result<Tensor> {
        ops::matmul_nt(&self.decoder_layer_norm.forward(h)?, &self.embed_tokens)
    }

    /// Teacher-forced decoder: ids [B, T], memory [B, S, d] -> logits [B, T, V].
    pub fn decode(&self, ids: &Tensor, memory: &Tensor) -> Result<Tensor> {
        let mut x = self.embed(ids, 0)?;
        for layer in &self.decoder_layers {
            x = layer.forward(&x, memory, None)?;
        }
        self.logits(&x)
    }

    /// Incremental decoder: ids [B, T_new] after the positions `caches` hold -> the decoder's
    /// output [B, T_new, d] before the final LayerNorm (`logits` projects the positions wanted).
    pub fn decode_cached(
        &self,
        ids: &Tensor,
        memory: &Tensor,
        caches: &mut [CrossLayerCache],
    ) -> Result<Tensor> {
        if caches.len() != self.decoder_layers.len() {
            return Err(Error::shape(
                "Whisper::decode_cached",
                format!(
                    "{} caches for {} layers",
                    caches.len(),
                    self.decoder_layers.len()
                ),
            ));
        }
        let mut x = self.embed(ids, caches[0].self_kv.len())?;
        for (layer, cache) in self.decoder_layers.iter().zip(caches.iter_mut()) {
            x = layer.forward(&x, memory, Some(cache))?;
        }
        Ok(x)
    }

    /// Empty caches, one per decoder layer.
    pub fn new_caches(&self) -> Vec<CrossLayerCache> {
        self.decoder_layers
            .iter()
            .map(|_| CrossLayerCache {
                self_kv: KvCache::default(),
                cross_kv: KvCache::default(),
            })
            .collect()
    }
}

impl Module for Whisper {
    /// Every trainable parameter (all but the encoder's position table).
    fn params(&self) -> Vec<Tensor> {
        let mut p = vec![
            self.conv1.weight.clone(),
            self.conv1.bias.clone(),
            self.conv2.weight.clone(),
            self.conv2.bias.clone(),
        ];
        for l in &self.encoder_layers {
            p.extend(l.self_attn_layer_norm.params());
            p.extend(l.self_attn.params());
            p.extend(l.ffn.params());
        }
        p.extend(self.encoder_layer_norm.params());
        p.push(self.embed_tokens.clone());
        p.push(self.decoder_positions.clone());
        for l in &self.decoder_layers {
            p.extend(l.self_attn_layer_norm.params());
            p.extend(l.self_attn.params());
            p.extend(l.encoder_attn_layer_norm.params());
            p.extend(l.encoder_attn.params());
            p.extend(l.ffn.params());
        }
        p.extend(self.decoder_layer_norm.params());
        p
    }
}
