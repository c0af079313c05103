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

    /// The moment buffers by name (`m.<param>`, `v.<param>`), for checkpoints.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let name = p.name().unwrap_or_default();
            out.push((format!("m.{name}"), &self.m[i]));
            out.push((format!("v.{name}"), &self.v[i]));
        }
        out
    }

    /// Steps taken per parameter (bias correction), for checkpoints.
    pub fn steps(&self) -> &[u32] {
        &self.steps
    }

    /// Restore what `state` and `steps` saved.
    pub fn restore(&mut self, file: &std::path::Path, bytes: &[u8], steps: &[u32]) -> Result<()> {
        if steps.len() != self.params.len() {
            return Err(Error::format(file, format!("optimizer state has {} step counts for {} parameters", steps.len(), self.params.len())));
        }
        let saved = crate::serialize::tensors_from_bytes(file, bytes)?;
        for (name, t) in self.state() {
            let (shape, data) = saved.get(&name).ok_or_else(|| Error::format(file, format!("is missing optimizer tensor {name:?}")))?;
            if shape != t.shape() {
                return Err(Error::format(file, format!("{name:?} has shape {shape:?}, expected {:?}", t.shape())));
            }
            t.copy_from_slice(data)?;
        }
        self.steps = steps.to_vec();
        Ok(())
    }

    /// Drop every parameter's gradient (the next backward starts from nothing).
    pub fn zero_grad(&self) {
        self.params.iter().for_each(Tensor::zero_grad);
    }
}
