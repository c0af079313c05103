//! Multi-head attention (self or cross) with an optional key/value cache for incremental
//! decoding. The attention itself is `ops::attention_auto_token_major` (without a cache) or
//! `ops::attention_auto` (with one, which holds [B, H, T, Dh]): the fused kernels or the
//! unfused path, as the device's kernel policy picks.

use super::{join, Init, Linear, Module};
use crate::error::{Error, Result};
use crate::ops::{self, AttentionMask};
use crate::tensor::Tensor;

pub struct MultiHeadAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
    pub d_model: usize,
}

/// Keys and values seen so far, [B, H, T, Dh] each. For self-attention each decoding step
/// appends one position; for cross-attention they are computed once from the encoder output.
#[derive(Default)]
pub struct KvCache {
    pub k: Option<Tensor>,
    pub v: Option<Tensor>,
}

impl KvCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.shape()[2])
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MultiHeadAttention {
    pub fn new(init: &mut Init, name: &str, d_model: usize, num_heads: usize) -> Result<Self> {
        if num_heads == 0 || !d_model.is_multiple_of(num_heads) {
            return Err(Error::shape(
                "MultiHeadAttention",
                format!("num_heads {num_heads} does not divide d_model {d_model}"),
            ));
        }
        Ok(MultiHeadAttention {
            q_proj: Linear::new(init, &join(name, "q_proj"), d_model, d_model, true)?,
            k_proj: Linear::new(init, &join(name, "k_proj"), d_model, d_model, true)?,
            v_proj: Linear::new(init, &join(name, "v_proj"), d_model, d_model, true)?,
            out_proj: Linear::new(init, &join(name, "out_proj"), d_model, d_model, true)?,
            num_heads,
            d_model,
        })
    }

    /// [B, T, d] -> [B, H, T, Dh], the layout of the key/value cache.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        ops::permute(&self.heads_view(x)?, &[0, 2, 1, 3])
    }

    /// [B, H, T, Dh] -> [B, T, d]
    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t) = (x.shape()[0], x.shape()[2]);
        ops::permute(x, &[0, 2, 1, 3])?.reshape(&[b, t, self.d_model])
    }

    /// Self-attention when `x_kv` is `x_q`, cross-attention otherwise.
    /// x_q: [B, Tq, d], x_kv: [B, Tk, d] -> [B, Tq, d].
    pub fn forward(&self, x_q: &Tensor, x_kv: &Tensor, mask: &AttentionMask) -> Result<Tensor> {
        self.forward_add(x_q, x_kv, mask, None)
    }

    /// `forward`, plus `residual` ([B, Tq, d]) added by the output projection's epilogue:
    /// a pre-LN layer's x + Attn(LN(x)) in one pass.
    pub fn forward_add(
        &self,
        x_q: &Tensor,
        x_kv: &Tensor,
        mask: &AttentionMask,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        // The projections viewed per head, [B, T, H, Dh]: the fused kernels read them as they
        // are, and their output [B, Tq, H, Dh] is the out projection's input as it is.
        let q = self.heads_view(&self.q_proj.forward(x_q)?)?;
        let k = self.heads_view(&self.k_proj.forward(x_kv)?)?;
        let v = self.heads_view(&self.v_proj.forward(x_kv)?)?;
        let o = ops::attention_auto_token_major(&q, &k, &v, mask)?;
        let (b, tq) = (o.shape()[0], o.shape()[1]);
        self.out_proj
            .forward_add(&o.reshape(&[b, tq, self.d_model])?, residual)
    }

    /// [B, T, d] viewed as [B, T, H, Dh] (no copy).
    fn heads_view(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t) = (x.shape()[0], x.shape()[1]);
        x.reshape(&[b, t, self.num_heads, self.d_model / self.num_heads])
    }

    /// Incremental self-attention: `x` holds the new positions only; their keys and values
    /// are appended to `cache` and the queries attend to everything cached. `residual` as in
    /// `forward_add`.
    pub fn forward_self_cached(
        &self,
        x: &Tensor,
        mask: &AttentionMask,
        cache: &mut KvCache,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = self.split_heads(&self.q_proj.forward(x)?)?;
        let k_new = self.split_heads(&self.k_proj.forward(x)?)?;
        let v_new = self.split_heads(&self.v_proj.forward(x)?)?;
        let (k, v) = match (&cache.k, &cache.v) {
            (Some(k), Some(v)) => (ops::concat(&[k, &k_new], 2)?, ops::concat(&[v, &v_new], 2)?),
            _ => (k_new, v_new),
        };
        cache.k = Some(k.clone());
        cache.v = Some(v.clone());
        let o = ops::attention_auto(&q, &k, &v, mask)?;
        self.out_proj.forward_add(&self.merge_heads(&o)?, residual)
    }

    /// Cross-attention whose keys and values (from `memory`) are computed once and cached.
    /// `residual` as in `forward_add`.
    pub fn forward_cross_cached(
        &self,
        x: &Tensor,
        memory: &Tensor,
        mask: &AttentionMask,
        cache: &mut KvCache,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        if cache.k.is_none() {
            cache.k = Some(self.split_heads(&self.k_proj.forward(memory)?)?);
            cache.v = Some(self.split_heads(&self.v_proj.forward(memory)?)?);
        }
        let (Some(k), Some(v)) = (&cache.k, &cache.v) else {
            return Err(Error::shape(
                "forward_cross_cached",
                "cache holds keys without values",
            ));
        };
        let q = self.split_heads(&self.q_proj.forward(x)?)?;
        let o = ops::attention_auto(&q, k, v, mask)?;
        self.out_proj.forward_add(&self.merge_heads(&o)?, residual)
    }
}

impl Module for MultiHeadAttention {
    fn params(&self) -> Vec<Tensor> {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.out_proj]
            .iter()
            .flat_map(|l| l.params())
            .collect()
    }
}
