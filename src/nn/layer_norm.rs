//! LayerNorm over the last dim, with PyTorch's parameter names (`weight` = gamma, `bias` = beta).

use super::{join, Init, Module};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct LayerNorm {
    pub weight: Tensor, // [d]
    pub bias: Tensor,   // [d]
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(init: &mut Init, name: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: init.constant(&join(name, "weight"), &[d], 1.0)?,
            bias: init.constant(&join(name, "bias"), &[d], 0.0)?,
            eps: 1e-5,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn params(&self) -> Vec<Tensor> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
