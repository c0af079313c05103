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
    /// A re-ordering of the sequences (`reorder`) not applied yet: sequence i is row
    /// `pending_rows[i]` of `k` and `v`. The next append applies it in the same dispatch as
    /// the new position (`ops::gather_concat`), so beam search copies each cache once a step.
    pending_rows: Option<Vec<u32>>,
}

impl KvCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.shape()[2])
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequences the cache holds, after any pending re-ordering (0 when empty).
    pub fn sequences(&self) -> usize {
        match (&self.pending_rows, &self.k) {
            (Some(rows), _) => rows.len(),
            (None, Some(k)) => k.shape()[0],
            (None, None) => 0,
        }
    }

    /// Keep sequence `order[i]` as sequence i (beam search re-ranking its beams). Deferred
    /// until the cache is next used; several re-orderings compose. A cache of one row (one
    /// utterance's memory, or a search's first step) serves any number of sequences.
    pub fn reorder(&mut self, order: &[u32]) -> Result<()> {
        let Some(k) = &self.k else {
            return Ok(()); // nothing cached: nothing to re-order
        };
        if self.pending_rows.is_none() && k.shape()[0] == 1 {
            self.pending_rows = Some(vec![0; order.len()]);
            return Ok(());
        }
        let sequences = self.sequences();
        if let Some(bad) = order.iter().find(|&&i| i as usize >= sequences) {
            return Err(Error::shape(
                "KvCache::reorder",
                format!("sequence {bad} of a cache of {sequences} ({k:?})"),
            ));
        }
        self.pending_rows = Some(match &self.pending_rows {
            Some(rows) => order.iter().map(|&i| rows[i as usize]).collect(),
            None => order.to_vec(),
        });
        Ok(())
    }

    /// Append `k_new` and `v_new` ([B, H, t, Dh], the sequences in their current order) and
    /// return the whole cache.
    fn append(&mut self, k_new: Tensor, v_new: Tensor) -> Result<(Tensor, Tensor)> {
        let rows = self.pending_rows.take();
        let grow = |old: &Option<Tensor>, new: Tensor| match (old, &rows) {
            (Some(old), Some(rows)) => ops::gather_concat(old, rows, &new, 2),
            (Some(old), None) => ops::concat(&[old, &new], 2),
            (None, _) => Ok(new),
        };
        let (k, v) = (grow(&self.k, k_new)?, grow(&self.v, v_new)?);
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok((k, v))
    }

    /// The cached keys and values with any pending re-ordering applied, or None when empty.
    /// A cache of one row stays as it is: every sequence shares it (see
    /// `forward_cross_cached`).
    fn current(&mut self) -> Result<Option<(Tensor, Tensor)>> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else {
            return Ok(None);
        };
        let (k, v) = match self.pending_rows.take() {
            Some(rows) if k.shape()[0] > 1 => {
                let idx = Tensor::from_u32(k.gpu(), &rows, &[rows.len()])?;
                (ops::gather_rows(k, &idx)?, ops::gather_rows(v, &idx)?)
            }
            _ => (k.clone(), v.clone()),
        };
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok(Some((k, v)))
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
        let (k, v) = cache.append(k_new, v_new)?;
        let o = ops::attention_auto(&q, &k, &v, mask)?;
        self.out_proj.forward_add(&self.merge_heads(&o)?, residual)
    }

    /// Cross-attention whose keys and values (from `memory`) are computed once and cached.
    /// `residual` as in `forward_add`. When the cache holds one memory and `x` several
    /// sequences (the beams of one utterance), the sequences share it: their queries are
    /// taken as the queries of one batch item, since each attends to all of the memory on its
    /// own, so the keys and values are never copied per sequence.
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
        let Some((k, v)) = cache.current()? else {
            return Err(Error::shape(
                "forward_cross_cached",
                "cache holds keys without values",
            ));
        };
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let shared = k.shape()[0] == 1 && b > 1;
        let x_q = match shared {
            true => x.reshape(&[1, b * t, self.d_model])?,
            false => x.clone(),
        };
        let q = self.split_heads(&self.q_proj.forward(&x_q)?)?;
        let o = ops::attention_auto(&q, &k, &v, mask)?;
        let o = self.merge_heads(&o)?.reshape(&[b, t, self.d_model])?;
        self.out_proj.forward_add(&o, residual)
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
