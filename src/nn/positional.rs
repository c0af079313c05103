//! Sinusoidal positions (Vaswani et al. 2017): PE[t, 2i] = sin(t / 10000^(2i/d)),
//! PE[t, 2i+1] = cos(same). A fixed table on the GPU, added to the token embeddings.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops;
use crate::tensor::Tensor;

pub struct PositionalEncoding {
    table: Tensor, // [max_len, d], not trained
    max_len: usize,
}

/// The table on the CPU (also used by tests).
pub fn sinusoid_table(max_len: usize, d: usize) -> Vec<f32> {
    let mut pe = vec![0.0f32; max_len * d];
    for t in 0..max_len {
        for i in 0..d {
            let freq = (10000f64).powf(-((i / 2 * 2) as f64) / d as f64);
            let angle = t as f64 * freq;
            pe[t * d + i] = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    pe
}

impl PositionalEncoding {
    pub fn new(gpu: &Gpu, max_len: usize, d: usize) -> Result<PositionalEncoding> {
        Ok(PositionalEncoding {
            table: Tensor::from_slice(gpu, &sinusoid_table(max_len, d), &[max_len, d])?,
            max_len,
        })
    }

    /// x: [B, T, d] gets the encodings of positions start .. start + T.
    pub fn forward(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let t = x.shape()[x.dims() - 2];
        if start + t > self.max_len {
            return Err(Error::shape(
                "PositionalEncoding",
                format!(
                    "positions up to {} exceed max_seq_len {}",
                    start + t,
                    self.max_len
                ),
            ));
        }
        let pe = ops::slice(&self.table, 0, start, t)?; // [T, d]
        ops::add(x, &pe)
    }
}
