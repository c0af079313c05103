//! The speech front end of the recognizer: log-mel frames [B, T, F] -> two 3x3 convolutions
//! striding in time only (GELU after each) -> Linear(C * F -> d_model) per output frame.
//! Time shrinks by the product of the strides; frequency keeps its F bins (padding 1).

use super::{join, Conv2d, Init, Linear, Module};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, Conv2dConfig};
use crate::tensor::Tensor;

pub struct SpeechEmbedding {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub proj: Linear,
    pub n_mels: usize,
    pub channels: usize,
    pub activation: Activation,
}

impl SpeechEmbedding {
    /// `strides`: the time strides of the two convolutions.
    pub fn new(
        init: &mut Init,
        name: &str,
        n_mels: usize,
        channels: usize,
        strides: [usize; 2],
        d_model: usize,
        activation: Activation,
    ) -> Result<SpeechEmbedding> {
        let conv = |stride| Conv2dConfig {
            stride: [stride, 1],
            padding: [1, 1],
        };
        Ok(SpeechEmbedding {
            conv1: Conv2d::new(
                init,
                &join(name, "conv1"),
                [1, channels],
                [3, 3],
                conv(strides[0]),
            )?,
            conv2: Conv2d::new(
                init,
                &join(name, "conv2"),
                [channels, channels],
                [3, 3],
                conv(strides[1]),
            )?,
            proj: Linear::new(init, &join(name, "proj"), channels * n_mels, d_model, true)?,
            n_mels,
            channels,
            activation,
        })
    }

    /// Frames left of an input of `frames` frames: exact, per utterance.
    pub fn output_len(&self, frames: usize) -> usize {
        self.conv2.output_len(self.conv1.output_len(frames, 0), 0)
    }

    /// x: [B, T, F] -> [B, T', d_model]. Padded frames must be zero; frames past an
    /// utterance's end can reach its last output frame through the 3x3 window (as with any
    /// padded convolution); the encoder masks everything past `output_len`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dims() != 3 || x.shape()[2] != self.n_mels {
            return Err(Error::shape(
                "SpeechEmbedding",
                format!(
                    "features must be [B, T, {}], got {:?}",
                    self.n_mels,
                    x.shape()
                ),
            ));
        }
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let h = x.reshape(&[b, 1, t, self.n_mels])?;
        let h = self.activation.apply(&self.conv1.forward(&h)?)?;
        let h = self.activation.apply(&self.conv2.forward(&h)?)?; // [B, C, T', F]
        let t2 = h.shape()[2];
        let h = ops::permute(&h, &[0, 2, 1, 3])?; // [B, T', C, F]
        let h = h.reshape(&[b, t2, self.channels * self.n_mels])?;
        self.proj.forward(&h)
    }
}

impl Module for SpeechEmbedding {
    fn params(&self) -> Vec<Tensor> {
        [self.conv1.params(), self.conv2.params(), self.proj.params()].concat()
    }
}
