//! A tiny MLP (2 -> 16 -> 16 -> 1, GELU) on XOR, trained through the tape with AdamW; shared by
//! tests/mlp.rs (it learns) and tests/steady_state.rs (a step allocates and compiles nothing).
#![allow(dead_code)]

use wgformer::ops::{self, AdamWParams};
use wgformer::{AdamW, Gpu, Result, Tensor};

pub const HIDDEN: usize = 16;

pub struct ToyMlp {
    /// [4, 2]: the four corners of the unit square.
    pub x: Tensor,
    /// [4, 1]: XOR of the corner's coordinates.
    pub y: Tensor,
    pub opt: AdamW,
}

fn layer(
    gpu: &Gpu,
    name: &str,
    fan_in: usize,
    fan_out: usize,
    seed: u64,
) -> Result<(Tensor, Tensor)> {
    let w = Tensor::randn(gpu, &[fan_in, fan_out], (1.0 / fan_in as f32).sqrt(), seed)?;
    let b = Tensor::zeros(gpu, &[fan_out])?;
    Ok((
        w.into_param(format!("{name}.weight")),
        b.into_param(format!("{name}.bias")),
    ))
}

impl ToyMlp {
    pub fn new(gpu: &Gpu, lr: f32) -> Result<ToyMlp> {
        let x = Tensor::from_slice(gpu, &[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], &[4, 2])?;
        let y = Tensor::from_slice(gpu, &[0.0, 1.0, 1.0, 0.0], &[4, 1])?;
        let (w1, b1) = layer(gpu, "l1", 2, HIDDEN, 1)?;
        let (w2, b2) = layer(gpu, "l2", HIDDEN, HIDDEN, 2)?;
        let (w3, b3) = layer(gpu, "l3", HIDDEN, 1, 3)?;
        let hyper = AdamWParams {
            lr,
            ..AdamWParams::default()
        };
        let opt = AdamW::new(vec![w1, b1, w2, b2, w3, b3], hyper)?;
        Ok(ToyMlp { x, y, opt })
    }

    /// [4, 1] predictions.
    pub fn forward(&self) -> Result<Tensor> {
        let p = self.opt.params();
        let dense = |h: &Tensor, i: usize| ops::add(&ops::matmul(h, &p[2 * i])?, &p[2 * i + 1]);
        let h1 = ops::gelu(&dense(&self.x, 0)?)?; // [4, HIDDEN]
        let h2 = ops::gelu(&dense(&h1, 1)?)?; // [4, HIDDEN]
        dense(&h2, 2) // [4, 1]
    }

    /// Mean squared error, a one-element tensor: mean((pred - y)^2) with pred - y = pred + (-1) y.
    pub fn loss(&self) -> Result<Tensor> {
        let diff = ops::add(&self.forward()?, &ops::scale(&self.y, -1.0)?)?;
        let sq = ops::mul(&diff, &diff)?.reshape(&[4])?;
        ops::mean_axis(&sq, 0)
    }

    /// One training step; returns the loss before the update (the only value read back).
    pub fn step(&mut self) -> Result<f32> {
        let loss = self.loss()?;
        loss.backward()?;
        self.opt.step()?;
        self.opt.zero_grad();
        loss.to_scalar()
    }
}
