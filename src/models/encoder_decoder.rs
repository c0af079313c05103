//! The speech recognizer: a conv speech embedding over log-mel frames, pre-LN encoder layers
//! (self-attention with key-padding masks), an optional CTC head on the encoder output, and a
//! pre-LN decoder (causal self-attention, cross-attention over the encoder output,
//! feed-forward) whose output projection is tied to its token embedding.
//!
//! Parameter names: `encoder.embedding.*`, `encoder.layers.N.*`, `encoder.norm.*`,
//! `ctc_head.*`, `decoder.token_embedding.weight`, `decoder.layers.N.*`, `decoder.norm.*`.
//! The decoder's names are a decoder-only LM's with the prefix `decoder.`, so a CLM
//! checkpoint initialises it (`load_decoder_from_clm`).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::DecoderOnlyTransformer;
use crate::nn::{
    CrossAttentionLayer, CrossLayerCache, Ctx, Embedding, Init, LayerNorm, LayerSizes, Linear,
    Module, PositionalEncoding, SelfAttentionLayer, SpeechEmbedding,
};
use crate::ops::{self, Activation, AttentionMask};
use crate::tensor::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct EncoderDecoderConfig {
    pub vocab_size: usize,
    pub n_mels: usize,
    pub conv_channels: usize,
    /// Time strides of the two convolutions.
    pub conv_strides: [usize; 2],
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub dropout: f32,
    pub ctc_head: bool,
    /// Longest encoder sequence (after the convolutions) and longest decoder sequence.
    pub max_source_len: usize,
    pub max_target_len: usize,
    /// The nonlinearity of the feed-forward blocks and of the convolutional stem.
    pub activation: Activation,
}

impl EncoderDecoderConfig {
    fn layer_sizes(&self) -> LayerSizes {
        LayerSizes {
            d_model: self.d_model,
            num_heads: self.num_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            activation: self.activation,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.vocab_size,
            self.n_mels,
            self.conv_channels,
            self.conv_strides[0],
            self.conv_strides[1],
            self.d_model,
            self.d_ff,
            self.encoder_layers,
            self.decoder_layers,
            self.max_source_len,
            self.max_target_len,
        ];
        if sizes.contains(&0) || self.num_heads == 0 || !self.d_model.is_multiple_of(self.num_heads)
        {
            return Err(Error::shape(
                "EncoderDecoderConfig",
                format!("sizes must be positive and num_heads must divide d_model: {self:?}"),
            ));
        }
        Ok(())
    }
}

/// The encoder's output for a batch: memory [B, S, d] and each utterance's length in it.
#[derive(Clone)]
pub struct Encoded {
    pub memory: Tensor,
    pub lens: Vec<usize>,
    /// `lens` on the GPU ([B] u32), the key mask of every attention over the memory.
    pub lens_tensor: Tensor,
}

impl Encoded {
    pub fn mask(&self) -> AttentionMask {
        AttentionMask {
            causal: false,
            key_lens: Some(self.lens_tensor.clone()),
        }
    }
}

pub struct EncoderDecoderTransformer {
    pub config: EncoderDecoderConfig,
    pub speech_embedding: SpeechEmbedding,
    pub encoder_layers: Vec<SelfAttentionLayer>,
    pub encoder_norm: LayerNorm,
    pub ctc_head: Option<Linear>,
    pub token_embedding: Embedding,
    pub decoder_layers: Vec<CrossAttentionLayer>,
    pub decoder_norm: LayerNorm,
    pub source_positions: PositionalEncoding,
    pub target_positions: PositionalEncoding,
}

impl EncoderDecoderTransformer {
    pub fn new(gpu: &Gpu, config: EncoderDecoderConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut init = Init::new(gpu, seed);
        let speech_embedding = SpeechEmbedding::new(
            &mut init,
            "encoder.embedding",
            c.n_mels,
            c.conv_channels,
            c.conv_strides,
            c.d_model,
            c.activation,
        )?;
        let encoder_layers = (0..c.encoder_layers)
            .map(|i| {
                SelfAttentionLayer::new(&mut init, &format!("encoder.layers.{i}"), c.layer_sizes())
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder_norm = LayerNorm::new(&mut init, "encoder.norm", c.d_model)?;
        let ctc_head = if c.ctc_head {
            Some(Linear::new(
                &mut init,
                "ctc_head",
                c.d_model,
                c.vocab_size,
                true,
            )?)
        } else {
            None
        };
        let token_embedding = Embedding::new(
            &mut init,
            "decoder.token_embedding",
            c.vocab_size,
            c.d_model,
        )?;
        let decoder_layers = (0..c.decoder_layers)
            .map(|i| {
                CrossAttentionLayer::new(&mut init, &format!("decoder.layers.{i}"), c.layer_sizes())
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_norm = LayerNorm::new(&mut init, "decoder.norm", c.d_model)?;
        Ok(EncoderDecoderTransformer {
            source_positions: PositionalEncoding::new(gpu, c.max_source_len, c.d_model)?,
            target_positions: PositionalEncoding::new(gpu, c.max_target_len, c.d_model)?,
            speech_embedding,
            encoder_layers,
            encoder_norm,
            ctc_head,
            token_embedding,
            decoder_layers,
            decoder_norm,
            config,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        self.token_embedding.weight.gpu()
    }

    /// Encoder frames left of an utterance of `frames` feature frames.
    pub fn encoded_len(&self, frames: usize) -> usize {
        self.speech_embedding.output_len(frames)
    }

    /// features: [B, T, n_mels] (zero past each utterance's end), frame_lens: frames of each.
    pub fn encode(&self, features: &Tensor, frame_lens: &[usize], ctx: &Ctx) -> Result<Encoded> {
        if features.dims() != 3 || features.shape()[0] != frame_lens.len() {
            return Err(Error::shape(
                "encode",
                format!(
                    "features must be [B, T, F] with B = {} lengths, got {:?}",
                    frame_lens.len(),
                    features.shape()
                ),
            ));
        }
        let x = self.speech_embedding.forward(features)?; // [B, S, d]
        let x = ops::scale(&x, (self.config.d_model as f32).sqrt())?;
        let x = ctx.dropout(&self.source_positions.forward(&x, 0)?, self.config.dropout)?;
        let lens: Vec<usize> = frame_lens.iter().map(|&n| self.encoded_len(n)).collect();
        let lens_u32: Vec<u32> = lens.iter().map(|&n| n as u32).collect();
        let lens_tensor = Tensor::from_u32(self.gpu(), &lens_u32, &[lens.len()])?;
        let mask = AttentionMask {
            causal: false,
            key_lens: Some(lens_tensor.clone()),
        };
        let mut h = x;
        for layer in &self.encoder_layers {
            h = layer.forward(&h, &mask, ctx, None)?;
        }
        Ok(Encoded {
            memory: self.encoder_norm.forward(&h)?,
            lens,
            lens_tensor,
        })
    }

    /// CTC logits over the encoder frames, [B, S, V].
    pub fn ctc_logits(&self, encoded: &Encoded) -> Result<Tensor> {
        match &self.ctc_head {
            Some(head) => head.forward(&encoded.memory),
            None => Err(Error::shape("ctc_logits", "the model has no CTC head")),
        }
    }

    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        if ids.dims() != 2 || ids.dtype() != DType::U32 {
            return Err(Error::shape(
                "EncoderDecoderTransformer",
                format!("token ids must be [B, T] u32, got {ids:?}"),
            ));
        }
        let x = self.token_embedding.forward(ids)?;
        let x = ops::scale(&x, (self.config.d_model as f32).sqrt())?;
        self.target_positions.forward(&x, start)
    }

    fn project(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.decoder_norm.forward(x)?;
        ops::matmul_nt(&h, &self.token_embedding.weight) // [B, T, V], tied
    }

    /// Teacher-forced decoder: ids [B, T] -> logits [B, T, V].
    pub fn decode(&self, ids: &Tensor, encoded: &Encoded, ctx: &Ctx) -> Result<Tensor> {
        let self_mask = AttentionMask {
            causal: true,
            key_lens: None,
        };
        let memory_mask = encoded.mask();
        let mut x = ctx.dropout(&self.embed(ids, 0)?, self.config.dropout)?;
        for layer in &self.decoder_layers {
            x = layer.forward(&x, &encoded.memory, &self_mask, &memory_mask, ctx, None)?;
        }
        self.project(&x)
    }

    /// Incremental decoder: ids [B, T_new] after what `caches` hold -> logits [B, T_new, V].
    pub fn decode_cached(
        &self,
        ids: &Tensor,
        encoded: &Encoded,
        caches: &mut [CrossLayerCache],
    ) -> Result<Tensor> {
        if caches.len() != self.decoder_layers.len() {
            return Err(Error::shape(
                "decode_cached",
                format!(
                    "{} caches for {} layers",
                    caches.len(),
                    self.decoder_layers.len()
                ),
            ));
        }
        let start = caches[0].self_kv.len();
        let ctx = Ctx::eval();
        let self_mask = AttentionMask {
            causal: true,
            key_lens: None,
        };
        let memory_mask = encoded.mask();
        let mut x = self.embed(ids, start)?;
        for (layer, cache) in self.decoder_layers.iter().zip(caches.iter_mut()) {
            x = layer.forward(
                &x,
                &encoded.memory,
                &self_mask,
                &memory_mask,
                &ctx,
                Some(cache),
            )?;
        }
        self.project(&x)
    }

    pub fn new_caches(&self) -> Vec<CrossLayerCache> {
        self.decoder_layers
            .iter()
            .map(|_| CrossLayerCache::default())
            .collect()
    }

    /// Copy a decoder-only LM's weights into the decoder: token embedding, each layer's
    /// self-attention, feed-forward and norms, the final norm. Cross-attention keeps its
    /// initialisation. Sizes and vocabulary must match.
    pub fn load_decoder_from_clm(&self, lm: &DecoderOnlyTransformer) -> Result<usize> {
        let ours: std::collections::HashMap<String, Tensor> = self
            .params()
            .into_iter()
            .filter_map(|p| p.name().map(|n| (n.to_string(), p.clone())))
            .collect();
        let mut copied = 0;
        for p in lm.params() {
            let Some(name) = p.name() else { continue };
            let target_name = format!("decoder.{name}");
            let target = ours.get(&target_name).ok_or_else(|| {
                Error::shape(
                    "load_decoder_from_clm",
                    format!("the CLM parameter `{name}` has no counterpart `{target_name}`"),
                )
            })?;
            if target.shape() != p.shape() {
                return Err(Error::shape(
                    "load_decoder_from_clm",
                    format!(
                        "`{name}` is {:?} in the CLM but {:?} here",
                        p.shape(),
                        target.shape()
                    ),
                ));
            }
            target.copy_from_slice(&p.to_vec()?)?; // once, at start-up
            copied += 1;
        }
        Ok(copied)
    }
}

impl Module for EncoderDecoderTransformer {
    fn params(&self) -> Vec<Tensor> {
        let mut p = self.speech_embedding.params();
        for l in &self.encoder_layers {
            p.extend(l.params());
        }
        p.extend(self.encoder_norm.params());
        if let Some(h) = &self.ctc_head {
            p.extend(h.params());
        }
        p.extend(self.token_embedding.params());
        for l in &self.decoder_layers {
            p.extend(l.params());
        }
        p.extend(self.decoder_norm.params());
        p
    }
}
