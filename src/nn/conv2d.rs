//! 2-D convolution module: weight [C_out, C_in, KH, KW] and bias [C_out] as in PyTorch's
//! `nn.Conv2d`, initialised like it (uniform, bound 1/sqrt(fan_in)).

use super::{join, Init, Module};
use crate::error::Result;
use crate::ops::{self, Conv2dConfig};
use crate::tensor::Tensor;

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub config: Conv2dConfig,
}

impl Conv2d {
    pub fn new(
        init: &mut Init,
        name: &str,
        channels: [usize; 2],
        kernel: [usize; 2],
        config: Conv2dConfig,
    ) -> Result<Conv2d> {
        let [c_in, c_out] = channels;
        let bound = 1.0 / ((c_in * kernel[0] * kernel[1]) as f32).sqrt();
        Ok(Conv2d {
            weight: init.uniform(
                &join(name, "weight"),
                &[c_out, c_in, kernel[0], kernel[1]],
                bound,
            )?,
            bias: init.uniform(&join(name, "bias"), &[c_out], bound)?,
            config,
        })
    }

    /// x: [B, C_in, H, W] -> [B, C_out, H', W']
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d(x, &self.weight, Some(&self.bias), self.config)
    }

    /// Output length along dim `axis` (0: H, 1: W) for an input of length `n`.
    pub fn output_len(&self, n: usize, axis: usize) -> usize {
        let k = self.weight.shape()[2 + axis];
        let (s, p) = (self.config.stride[axis], self.config.padding[axis]);
        (n + 2 * p).saturating_sub(k) / s + 1
    }
}

impl Module for Conv2d {
    fn params(&self) -> Vec<Tensor> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
