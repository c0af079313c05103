//! Position-wise feed-forward block: Linear(d -> d_ff), GELU, dropout, Linear(d_ff -> d).

use super::{join, Ctx, Init, Linear, Module};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
    pub dropout: f32,
}

impl FeedForward {
    pub fn new(
        init: &mut Init,
        name: &str,
        d: usize,
        d_ff: usize,
        dropout: f32,
    ) -> Result<FeedForward> {
        Ok(FeedForward {
            linear1: Linear::new(init, &join(name, "linear1"), d, d_ff, true)?,
            linear2: Linear::new(init, &join(name, "linear2"), d_ff, d, true)?,
            dropout,
        })
    }

    /// x: [B, T, d] -> [B, T, d]
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = ops::gelu(&self.linear1.forward(x)?)?; // [B, T, d_ff]
        let h = ctx.dropout(&h, self.dropout)?;
        self.linear2.forward(&h)
    }
}

impl Module for FeedForward {
    fn params(&self) -> Vec<Tensor> {
        [self.linear1.params(), self.linear2.params()].concat()
    }
}
