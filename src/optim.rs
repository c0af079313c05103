//! Optimizers. The state (Adam moments, SGD momentum) lives on the GPU next to the parameters
//! and the parameters are updated by fused kernels (`ops::adamw_update_group`, six parameters
//! per dispatch where the adapter allows; `ops::sgd_update`), so a step reads nothing back. AdamW is the default; Adam (coupled L2 decay, via
//! `AdamWParams::coupled_weight_decay`) and SGD with momentum share the bookkeeping.

use crate::error::{Error, Result};
use crate::ops::{adamw_update_group, sgd_update, AdamWParams, AdamWSlot};
use crate::tensor::{DType, Tensor};

/// What one training step reports back: the gradient norm before clipping, the loss, and
/// whether the GPU skipped the update because one of them was NaN or infinite.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    pub grad_norm: f32,
    pub loss: f32,
    pub skipped: bool,
}

/// AdamW as `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments) unless
/// built with `Optimizer::sgd`.
pub type AdamW = Optimizer;

pub struct Optimizer {
    /// SGD: Some(momentum); m is then the momentum buffer and v is unused.
    sgd_momentum: Option<f32>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken per parameter: like PyTorch, a parameter that got no gradient in a step
    /// does not advance its own bias correction.
    steps: Vec<u32>,
    /// The parameters the last `step_clipped` updated, so `undo_step_count` can take a skipped
    /// step back out of the bias correction.
    last_stepped: Vec<usize>,
    pub hyper: AdamWParams,
}

impl AdamW {
    /// An optimizer over trainable f32 leaves (`Tensor::into_param`), moments starting at zero.
    pub fn new(params: Vec<Tensor>, hyper: AdamWParams) -> Result<Optimizer> {
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
        Ok(Optimizer {
            sgd_momentum: None,
            params,
            m,
            v,
            steps,
            last_stepped: Vec::new(),
            hyper,
        })
    }

    /// SGD with momentum and coupled weight decay, as `torch.optim.SGD`.
    pub fn sgd(
        params: Vec<Tensor>,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    ) -> Result<Optimizer> {
        let hyper = AdamWParams {
            lr,
            weight_decay,
            ..Default::default()
        };
        let mut opt = Optimizer::new(params, hyper)?;
        opt.sgd_momentum = Some(momentum);
        Ok(opt)
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

    /// One training step's end: clip the gradients to a global norm of `max_norm` (<= 0: no
    /// clipping), update, zero the gradients. All on the GPU; nothing is read back. Returns the
    /// `[norm, coefficient, loss]` tensor of `ops::grad_norm_and_clip` for the caller to read
    /// once: if the loss or the norm is not finite the GPU skipped the update (coefficient 0),
    /// and the caller should call `undo_step_count`.
    ///
    /// `loss_scale`: the gradients are those of the loss times this (mixed precision; 1
    /// otherwise); the update divides it out (`ops::grad_norm_and_clip`).
    pub fn clip_step_zero(
        &mut self,
        max_norm: f32,
        loss: Option<&Tensor>,
        loss_scale: f32,
    ) -> Result<Tensor> {
        let grads: Vec<Tensor> = self.params.iter().filter_map(Tensor::grad).collect();
        let refs: Vec<&Tensor> = grads.iter().collect();
        let clip = crate::ops::grad_norm_and_clip(&refs, max_norm, loss, loss_scale)?;
        self.step_clipped(Some(&clip))?;
        self.zero_grad();
        Ok(clip)
    }

    /// Read back what `clip_step_zero` returned (the step's one readback) and, when the GPU
    /// skipped the step, take it back out of the step counts.
    pub fn read_step_report(&mut self, report: &Tensor) -> Result<StepReport> {
        Ok(self.take_step_report(&report.to_vec()?))
    }

    /// `read_step_report` as a future (a browser page awaits the readback).
    pub async fn read_step_report_async(&mut self, report: &Tensor) -> Result<StepReport> {
        Ok(self.take_step_report(&report.to_vec_async().await?))
    }

    /// The report from the values of `clip_step_zero`'s tensor: [norm, clip coefficient, loss].
    fn take_step_report(&mut self, values: &[f32]) -> StepReport {
        let skipped = values[1] == 0.0;
        if skipped {
            self.undo_step_count();
        }
        StepReport {
            grad_norm: values[0],
            loss: values[2],
            skipped,
        }
    }

    /// Take the last step back out of the per-parameter step counts, after the GPU skipped it
    /// (a non-finite loss or gradient): the weights and moments were left as they were, so the
    /// bias correction must not advance either.
    pub fn undo_step_count(&mut self) {
        for &i in &self.last_stepped {
            self.steps[i] -= 1;
        }
        self.last_stepped.clear();
    }

    /// `step`, with every gradient first scaled by the clipping coefficient in `clip`
    /// (the tensor of `ops::grad_norm_and_clip`), which stays on the GPU.
    pub fn step_clipped(&mut self, clip: Option<&Tensor>) -> Result<()> {
        self.last_stepped.clear();
        let grads: Vec<(usize, Tensor)> = (self.params.iter().enumerate())
            .filter_map(|(i, p)| p.grad().map(|g| (i, g)))
            .collect();
        let h = &self.hyper;
        match self.sgd_momentum {
            Some(momentum) => {
                for (i, g) in &grads {
                    let (p, m) = (&self.params[*i], &self.m[*i]);
                    sgd_update(p, g, m, h.lr, momentum, h.weight_decay, clip)?;
                }
            }
            None => {
                // Several parameters per dispatch where the adapter allows.
                let slots: Vec<AdamWSlot> = (grads.iter())
                    .map(|(i, g)| AdamWSlot {
                        param: &self.params[*i],
                        grad: g,
                        m: &self.m[*i],
                        v: &self.v[*i],
                        step: self.steps[*i] + 1,
                    })
                    .collect();
                adamw_update_group(&slots, h, clip)?;
            }
        }
        for (i, _) in grads {
            self.steps[i] += 1;
            self.last_stepped.push(i);
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
            return Err(Error::format(
                file,
                format!(
                    "optimizer state has {} step counts for {} parameters",
                    steps.len(),
                    self.params.len()
                ),
            ));
        }
        let saved = crate::checkpoint::tensors_from_bytes(file, bytes)?;
        for (name, t) in self.state() {
            let (shape, data) = saved.get(&name).ok_or_else(|| {
                Error::format(file, format!("is missing optimizer tensor {name:?}"))
            })?;
            if shape != t.shape() {
                return Err(Error::format(
                    file,
                    format!("{name:?} has shape {shape:?}, expected {:?}", t.shape()),
                ));
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
