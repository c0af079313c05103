//! Pre-LN transformer layers, each a stack of residual branches x + Sublayer(LN(x)):
//! `SelfAttentionLayer` (self-attention + feed-forward: the encoder layer, and the decoder
//! layer of a decoder-only LM) and `CrossAttentionLayer` (causal self-attention +
//! cross-attention over an encoder's output + feed-forward: the encoder-decoder's decoder).

use super::{join, Ctx, FeedForward, Init, KvCache, LayerNorm, Module, MultiHeadAttention};
use crate::error::Result;
use crate::ops::{self, Activation, AttentionMask};
use crate::tensor::Tensor;

/// Sizes shared by every layer of a stack.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSizes {
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub dropout: f32,
    pub activation: Activation,
}

/// x + Dropout(branch): the residual add every branch ends with. `branch` is handed x to add
/// in its last matmul's epilogue when there is no dropout to apply first (inference, or
/// training without dropout), which spares a pass over the output.
fn residual(
    x: &Tensor,
    ctx: &Ctx,
    p: f32,
    branch: impl FnOnce(Option<&Tensor>) -> Result<Tensor>,
) -> Result<Tensor> {
    if ctx.drops(p) {
        ops::add(x, &ctx.dropout(&branch(None)?, p)?)
    } else {
        branch(Some(x))
    }
}

/// x + Dropout(SelfAttn(LN(x))), appending to `cache` when decoding incrementally.
fn self_attention_branch(
    x: &Tensor,
    norm: &LayerNorm,
    attn: &MultiHeadAttention,
    mask: &AttentionMask,
    ctx: &Ctx,
    p: f32,
    cache: Option<&mut KvCache>,
) -> Result<Tensor> {
    let h = norm.forward(x)?;
    residual(x, ctx, p, |r| match cache {
        Some(cache) => attn.forward_self_cached(&h, mask, cache, r),
        None => attn.forward_add(&h, &h, mask, r),
    })
}

/// x + Dropout(FFN(LN(x))): every layer's last branch.
fn feed_forward_branch(
    x: &Tensor,
    norm: &LayerNorm,
    ffn: &FeedForward,
    ctx: &Ctx,
    p: f32,
) -> Result<Tensor> {
    let h = norm.forward(x)?;
    residual(x, ctx, p, |r| ffn.forward_add(&h, ctx, r))
}

/// x + SelfAttn(LN(x)), then x + FFN(LN(x)).
pub struct SelfAttentionLayer {
    pub norm1: LayerNorm,
    pub self_attn: MultiHeadAttention,
    pub norm2: LayerNorm,
    pub ffn: FeedForward,
    pub dropout: f32,
}

impl SelfAttentionLayer {
    pub fn new(init: &mut Init, name: &str, s: LayerSizes) -> Result<Self> {
        Ok(SelfAttentionLayer {
            norm1: LayerNorm::new(init, &join(name, "norm1"), s.d_model)?,
            self_attn: MultiHeadAttention::new(
                init,
                &join(name, "self_attn"),
                s.d_model,
                s.num_heads,
            )?,
            norm2: LayerNorm::new(init, &join(name, "norm2"), s.d_model)?,
            ffn: FeedForward::new(init, &join(name, "ffn"), s)?,
            dropout: s.dropout,
        })
    }

    /// x: [B, T, d] -> [B, T, d]. With a cache, `x` holds only the new positions.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &AttentionMask,
        ctx: &Ctx,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let x = self_attention_branch(
            x,
            &self.norm1,
            &self.self_attn,
            mask,
            ctx,
            self.dropout,
            cache,
        )?;
        feed_forward_branch(&x, &self.norm2, &self.ffn, ctx, self.dropout)
    }
}

impl Module for SelfAttentionLayer {
    fn params(&self) -> Vec<Tensor> {
        [
            self.norm1.params(),
            self.self_attn.params(),
            self.norm2.params(),
            self.ffn.params(),
        ]
        .concat()
    }
}

/// x + SelfAttn(LN(x)) (causal), x + CrossAttn(LN(x), memory), then x + FFN(LN(x)).
/// The names of the self-attention and feed-forward parts match `SelfAttentionLayer`, so a
/// decoder-only LM's weights load into it (the cross-attention starts fresh).
pub struct CrossAttentionLayer {
    pub norm1: LayerNorm,
    pub self_attn: MultiHeadAttention,
    pub cross_norm: LayerNorm,
    pub cross_attn: MultiHeadAttention,
    pub norm2: LayerNorm,
    pub ffn: FeedForward,
    pub dropout: f32,
}

/// A decoder layer's caches: its own keys/values (growing) and the memory's (computed once).
#[derive(Default)]
pub struct CrossLayerCache {
    pub self_kv: KvCache,
    pub cross_kv: KvCache,
}

impl CrossAttentionLayer {
    pub fn new(init: &mut Init, name: &str, s: LayerSizes) -> Result<Self> {
        let attn = |init: &mut Init, part: &str| {
            MultiHeadAttention::new(init, &join(name, part), s.d_model, s.num_heads)
        };
        Ok(CrossAttentionLayer {
            norm1: LayerNorm::new(init, &join(name, "norm1"), s.d_model)?,
            self_attn: attn(init, "self_attn")?,
            cross_norm: LayerNorm::new(init, &join(name, "cross_norm"), s.d_model)?,
            cross_attn: attn(init, "cross_attn")?,
            norm2: LayerNorm::new(init, &join(name, "norm2"), s.d_model)?,
            ffn: FeedForward::new(init, &join(name, "ffn"), s)?,
            dropout: s.dropout,
        })
    }

    /// x: [B, T, d] (target positions), memory: [B, S, d] -> [B, T, d]. `self_mask` is
    /// causal; `memory_mask` hides the memory's padded frames. With a cache, `x` holds only
    /// the new positions.
    pub fn forward(
        &self,
        x: &Tensor,
        memory: &Tensor,
        self_mask: &AttentionMask,
        memory_mask: &AttentionMask,
        ctx: &Ctx,
        cache: Option<&mut CrossLayerCache>,
    ) -> Result<Tensor> {
        // With a cache: self-attention appends the new positions' keys and values; the
        // memory's are computed on the first step and reused.
        let (self_kv, cross_kv) = match cache {
            Some(c) => (Some(&mut c.self_kv), Some(&mut c.cross_kv)),
            None => (None, None),
        };
        let p = self.dropout;
        let x = self_attention_branch(x, &self.norm1, &self.self_attn, self_mask, ctx, p, self_kv)?;
        let h = self.cross_norm.forward(&x)?;
        let x = residual(&x, ctx, p, |r| match cross_kv {
            Some(kv) => self
                .cross_attn
                .forward_cross_cached(&h, memory, memory_mask, kv, r),
            None => self.cross_attn.forward_add(&h, memory, memory_mask, r),
        })?;
        feed_forward_branch(&x, &self.norm2, &self.ffn, ctx, p)
    }
}

impl Module for CrossAttentionLayer {
    fn params(&self) -> Vec<Tensor> {
        [
            self.norm1.params(),
            self.self_attn.params(),
            self.cross_norm.params(),
            self.cross_attn.params(),
            self.norm2.params(),
            self.ffn.params(),
        ]
        .concat()
    }
}
