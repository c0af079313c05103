//! Token embedding: a [vocab, d_model] table gathered by id.

use super::{join, Init, Module};
use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

pub struct Embedding {
    pub weight: Tensor, // [vocab, d]
}

impl Embedding {
    pub fn new(init: &mut Init, name: &str, vocab: usize, d: usize) -> Result<Embedding> {
        Ok(Embedding {
            weight: init.normal(&join(name, "weight"), &[vocab, d], 0.02)?,
        })
    }

    /// ids: [...] u32 -> [..., d]
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        ops::embedding(&self.weight, ids)
    }
}

impl Module for Embedding {
    fn params(&self) -> Vec<Tensor> {
        vec![self.weight.clone()]
    }
}
