//! Optimizers. `AdamW` keeps its moment buffers on the GPU next to the parameters and updates
//! each parameter with one fused kernel (`ops::adamw_update`), so a step reads nothing back.

use crate::error::{Error, Result};
use crate::ops::{adamw_update, AdamWParams};
use crate::tensor::{DType, Tensor};

/// AdamW as `torch.optim.AdamW`: decoupled weight decay, bias-corrected moments.
pub struct AdamW {
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken per parameter: like PyTorch, a parameter that got no gradient in a step
    /// does not advance its own bias correction.
    steps: Vec<u32>,
    pub hyper: AdamWParams,
}

impl AdamW {
    /// An optimizer over trainable f32 leaves (`Tensor::into_param`), moments starting at zero.
    pub fn new(params: Vec<Tensor>, hyper: AdamWParams) -> Result<AdamW> {
        let mut m = Vec::with_capacity(params.len());
        let mut v = Vec::with_capacity(params.len());
        for p in &params {
            if p.dtype() != DType::F32 || !p.is_requires_grad() {
                return Err(Error::shape(
                    "AdamW::new",
                    format!("{p:?} is not a trainable f32 parameter (use into_param)"),
                ));
            }
            m.push(Tensor::zeros(p.gpu(), p.shape())?);
            v.push(Tensor::zeros(p.gpu(), p.shape())?);
        }
        let steps = vec![0; params.len()];
        Ok(AdamW {
            params,
            m,
            v,
            steps,
            hyper,
        })
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    pub fn lr(&self) -> f32 {
        self.hyper.lr
    }

    /// Change the learning rate (schedules call this before each step).
    pub fn set_lr(&mut self, lr: f32) {
        self.hyper.lr = lr;
    }

    /// Update every parameter that has a gradient; parameters without one are left alone.
    pub fn step(&mut self) -> Result<()> {
        self.step_clipped(None)
    }

    /// `step`, with every gradient first scaled by the clipping coefficient in `clip`
    /// (the [2] tensor of `ops::grad_norm_and_clip`), which stays on the GPU.
    pub fn step_clipped(&mut self, clip: Option<&Tensor>) -> Result<()> {
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = p.grad() else { continue };
            adamw_update(
                p,
                &g,
                &self.m[i],
                &self.v[i],
                &self.hyper,
                self.steps[i] + 1,
                clip,
            )?;
            self.steps[i] += 1;
        }
        Ok(())
    }

    /// Drop every parameter's gradient (the next backward starts from nothing).
    pub fn zero_grad(&self) {
        self.params.iter().for_each(Tensor::zero_grad);
    }
}
