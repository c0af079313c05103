//! y = x W^T + b, with W stored [out, in] as in PyTorch so checkpoints load there unchanged.

use super::{join, Init, Module};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct Linear {
    pub weight: Tensor,       // [out, in]
    pub bias: Option<Tensor>, // [out]
}

impl Linear {
    pub fn new(
        init: &mut Init,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear> {
        let bound = 1.0 / (d_in as f32).sqrt();
        Ok(Linear {
            weight: init.uniform(&join(name, "weight"), &[d_out, d_in], bound)?,
            bias: if bias {
                Some(init.uniform(&join(name, "bias"), &[d_out], bound)?)
            } else {
                None
            },
        })
    }

    /// x: [..., in] -> [..., out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.weight, self.bias.as_ref())
    }

    /// `act(forward(x))`, the activation applied in the same pass (`ops::linear_act`).
    pub fn forward_act(&self, x: &Tensor, act: ops::Activation) -> Result<Tensor> {
        ops::linear_act(x, &self.weight, self.bias.as_ref(), act)
    }

    /// `forward(x)`, plus `residual` (when given: same shape as the output) added in the
    /// same pass (`ops::linear_add`).
    pub fn forward_add(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        match residual {
            Some(r) => ops::linear_add(x, &self.weight, self.bias.as_ref(), r),
            None => self.forward(x),
        }
    }
}

impl Module for Linear {
    fn params(&self) -> Vec<Tensor> {
        std::iter::once(self.weight.clone())
            .chain(self.bias.clone())
            .collect()
    }
}
