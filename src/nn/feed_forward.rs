//! Position-wise feed-forward block: Linear(d -> d_ff) with its activation (GELU) in the same
//! pass, dropout, Linear(d_ff -> d).

use super::{join, Ctx, Init, LayerSizes, Linear, Module};
use crate::error::Result;
use crate::ops::Activation;
use crate::tensor::Tensor;

pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
    pub activation: Activation,
    pub dropout: f32,
}

impl FeedForward {
    pub fn new(init: &mut Init, name: &str, s: LayerSizes) -> Result<FeedForward> {
        Ok(FeedForward {
            linear1: Linear::new(init, &join(name, "linear1"), s.d_model, s.d_ff, true)?,
            linear2: Linear::new(init, &join(name, "linear2"), s.d_ff, s.d_model, true)?,
            activation: s.activation,
            dropout: s.dropout,
        })
    }

    /// x: [B, T, d] -> [B, T, d]
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.forward_add(x, ctx, None)
    }

    /// `forward`, plus `residual` ([B, T, d]) added by the second Linear's epilogue.
    pub fn forward_add(&self, x: &Tensor, ctx: &Ctx, residual: Option<&Tensor>) -> Result<Tensor> {
        let h = self.linear1.forward_act(x, self.activation)?; // [B, T, d_ff]
        let h = ctx.dropout(&h, self.dropout)?;
        self.linear2.forward_add(&h, residual)
    }
}

impl Module for FeedForward {
    fn params(&self) -> Vec<Tensor> {
        [self.linear1.params(), self.linear2.params()].concat()
    }
}
