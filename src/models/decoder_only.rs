//! A GPT-style causal language model: token embedding * sqrt(d) + sinusoidal positions,
//! pre-LN decoder layers (causal self-attention + feed-forward, each a residual branch),
//! a final LayerNorm and a projection to the vocabulary (optionally tied to the embedding).

use crate::checkpoint::TiedName;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{
    Ctx, Embedding, Init, KvCache, LayerNorm, LayerSizes, Linear, Module, PositionalEncoding,
    SelfAttentionLayer,
};
use crate::ops::{self, Activation, AttentionMask};
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq)]
pub struct DecoderOnlyConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub dropout: f32,
    /// Probability of skipping a whole layer in a training step (stochastic depth).
    pub layer_drop_rate: f32,
    /// Share the output projection with the token embedding.
    pub weight_tying: bool,
    pub max_seq_len: usize,
    /// The feed-forward nonlinearity.
    pub activation: Activation,
}

impl DecoderOnlyConfig {
    pub fn layer_sizes(&self) -> LayerSizes {
        LayerSizes {
            d_model: self.d_model,
            num_heads: self.num_heads,
            d_ff: self.d_ff,
            dropout: self.dropout,
            activation: self.activation,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::shape("DecoderOnlyConfig", msg));
        if self.vocab_size == 0
            || self.d_model == 0
            || self.d_ff == 0
            || self.num_layers == 0
            || self.max_seq_len == 0
        {
            return bad(format!("sizes must be positive: {self:?}"));
        }
        if self.num_heads == 0 || !self.d_model.is_multiple_of(self.num_heads) {
            return bad(format!(
                "num_heads {} does not divide d_model {}",
                self.num_heads, self.d_model
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.layer_drop_rate) {
            return bad("dropout and layer_drop_rate must be in [0, 1)".into());
        }
        Ok(())
    }
}

pub struct DecoderOnlyTransformer {
    pub config: DecoderOnlyConfig,
    pub token_embedding: Embedding,
    pub positions: PositionalEncoding,
    pub layers: Vec<SelfAttentionLayer>,
    pub norm: LayerNorm,
    /// `None` when tied to `token_embedding`.
    pub lm_head: Option<Linear>,
}

impl DecoderOnlyTransformer {
    pub fn new(gpu: &Gpu, config: DecoderOnlyConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let mut init = Init::new(gpu, seed);
        let token_embedding =
            Embedding::new(&mut init, "token_embedding", c.vocab_size, c.d_model)?;
        let layers = (0..c.num_layers)
            .map(|i| SelfAttentionLayer::new(&mut init, &format!("layers.{i}"), c.layer_sizes()))
            .collect::<Result<Vec<_>>>()?;
        let norm = LayerNorm::new(&mut init, "norm", c.d_model)?;
        let lm_head = if c.weight_tying {
            None
        } else {
            Some(Linear::new(
                &mut init,
                "lm_head",
                c.d_model,
                c.vocab_size,
                false,
            )?)
        };
        Ok(DecoderOnlyTransformer {
            positions: PositionalEncoding::new(gpu, c.max_seq_len, c.d_model)?,
            token_embedding,
            layers,
            norm,
            lm_head,
            config,
        })
    }

    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let x = self.token_embedding.forward(ids)?; // [B, T, d]
        let x = ops::scale(&x, (self.config.d_model as f32).sqrt())?;
        self.positions.forward(&x, start)
    }

    fn project(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(x)?;
        match &self.lm_head {
            Some(head) => head.forward(&h),
            None => ops::matmul_nt(&h, &self.token_embedding.weight), // [B, T, V]
        }
    }

    fn check_ids(&self, ids: &Tensor) -> Result<(usize, usize)> {
        if ids.dims() != 2 || ids.dtype() != crate::tensor::DType::U32 {
            return Err(Error::shape(
                "DecoderOnlyTransformer",
                format!("ids must be [B, T] u32, got {ids:?}"),
            ));
        }
        Ok((ids.shape()[0], ids.shape()[1]))
    }

    /// ids: [B, T] u32 -> logits [B, T, V]. `lens` ([B] u32, optional) masks padded keys.
    pub fn forward(&self, ids: &Tensor, lens: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        self.check_ids(ids)?;
        let mask = AttentionMask {
            causal: true,
            key_lens: lens.cloned(),
        };
        let mut x = ctx.dropout(&self.embed(ids, 0)?, self.config.dropout)?;
        for layer in &self.layers {
            if ctx.coin(self.config.layer_drop_rate) {
                continue;
            }
            x = layer.forward(&x, &mask, ctx, None)?;
        }
        self.project(&x)
    }

    /// Incremental decoding: `ids` [B, T_new] are the positions after those in `caches`
    /// (one cache per layer); returns logits [B, T_new, V] and extends the caches.
    pub fn forward_cached(&self, ids: &Tensor, caches: &mut [KvCache]) -> Result<Tensor> {
        self.check_ids(ids)?;
        if caches.len() != self.layers.len() {
            return Err(Error::shape(
                "forward_cached",
                format!("{} caches for {} layers", caches.len(), self.layers.len()),
            ));
        }
        let start = caches[0].len();
        let ctx = Ctx::eval();
        let mask = AttentionMask {
            causal: true,
            key_lens: None,
        };
        let mut x = self.embed(ids, start)?;
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            x = layer.forward(&x, &mask, &ctx, Some(cache))?;
        }
        self.project(&x)
    }

    /// Fresh empty caches, one per layer.
    pub fn new_caches(&self) -> Vec<KvCache> {
        self.layers.iter().map(|_| KvCache::default()).collect()
    }
}

impl Module for DecoderOnlyTransformer {
    fn params(&self) -> Vec<Tensor> {
        let mut p = self.token_embedding.params();
        for l in &self.layers {
            p.extend(l.params());
        }
        p.extend(self.norm.params());
        if let Some(h) = &self.lm_head {
            p.extend(h.params());
        }
        p
    }

    /// Tied, the output projection is `token_embedding.weight`; a PyTorch model tied the usual
    /// way also saves it as `lm_head.weight`.
    fn tied_names(&self) -> Vec<TiedName> {
        match self.lm_head {
            Some(_) => Vec::new(),
            None => vec![TiedName {
                alias: "lm_head.weight".into(),
                param: "token_embedding.weight".into(),
            }],
        }
    }
}
