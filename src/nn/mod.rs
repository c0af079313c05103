//! Neural-network modules. A module is a small struct of parameters built by `new` (from a
//! config or plain sizes) plus a `forward`; `params()` lists its parameters with PyTorch-style
//! dotted names (`layers.0.self_attn.q_proj.weight`) for optimizers and checkpoints.

mod attention;
mod conv2d;
mod embedding;
mod feed_forward;
mod layer_norm;
mod linear;
mod positional;
mod speech_embedding;
mod transformer_layer;

pub use attention::{KvCache, MultiHeadAttention};
pub use conv2d::Conv2d;
pub use embedding::Embedding;
pub use feed_forward::FeedForward;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use positional::PositionalEncoding;
pub use speech_embedding::SpeechEmbedding;
pub use transformer_layer::{CrossAttentionLayer, CrossLayerCache, LayerSizes, SelfAttentionLayer};

use crate::checkpoint::{self, TiedName};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::path::Path;

pub trait Module {
    /// Every trainable parameter, each named.
    fn params(&self) -> Vec<Tensor>;

    /// Other names a PyTorch model may save one of `params()` under (a tied output
    /// projection's `lm_head.weight`); loading accepts them when they equal the parameter.
    fn tied_names(&self) -> Vec<TiedName> {
        Vec::new()
    }

    /// Write every parameter under its name to a safetensors file (f32, PyTorch layouts; the
    /// file is replaced atomically). Tied parameters are stored once, under their own name.
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        let params = self.params();
        let named = checkpoint::named_params(&params);
        checkpoint::write_atomically(path.as_ref(), &checkpoint::tensors_to_bytes(&named)?)
    }

    /// Copy a safetensors file's tensors (f32, f16 or bf16) into the parameters, matched by
    /// name; a missing, extra or misshapen tensor is an error naming the file and the tensor.
    fn load_safetensors(&self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| crate::error::Error::io(path, e))?;
        checkpoint::load_params_tied(path, &bytes, &self.params(), &self.tied_names())
    }
}

/// Creates named parameters with seeded random values: the same seed gives the same model.
pub struct Init {
    pub gpu: Gpu,
    rng: SplitMix64,
}

impl Init {
    pub fn new(gpu: &Gpu, seed: u64) -> Init {
        Init {
            gpu: gpu.clone(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Normal(0, std^2).
    pub fn normal(&mut self, name: &str, shape: &[usize], std: f32) -> Result<Tensor> {
        let seed = self.rng.next_u64();
        Ok(Tensor::randn(&self.gpu, shape, std, seed)?.into_param(name))
    }

    /// Uniform(-bound, bound): PyTorch's default for Linear layers (bound = 1/sqrt(fan_in)).
    pub fn uniform(&mut self, name: &str, shape: &[usize], bound: f32) -> Result<Tensor> {
        let seed = self.rng.next_u64();
        Ok(Tensor::rand_uniform(&self.gpu, shape, -bound, bound, seed)?.into_param(name))
    }

    pub fn constant(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        Ok(Tensor::full(&self.gpu, shape, value)?.into_param(name))
    }
}

/// Join a module prefix and a parameter name: `join("layers.0", "norm1") == "layers.0.norm1"`.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Per-forward state: training or inference, and the seeds for dropout masks and layer drop.
pub struct Ctx {
    pub training: bool,
    rng: RefCell<SplitMix64>,
}

impl Ctx {
    pub fn train(seed: u64) -> Ctx {
        Ctx {
            training: true,
            rng: RefCell::new(SplitMix64::new(seed)),
        }
    }

    pub fn eval() -> Ctx {
        Ctx {
            training: false,
            rng: RefCell::new(SplitMix64::new(0)),
        }
    }

    /// Dropout in training, identity otherwise.
    /// Whether `dropout(_, p)` changes anything (training, p > 0).
    pub fn drops(&self, p: f32) -> bool {
        self.training && p > 0.0
    }

    pub fn dropout(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        if !self.drops(p) {
            return Ok(x.clone());
        }
        let seed = self.rng.borrow_mut().next_u64() as u32;
        crate::ops::dropout(x, p, seed)
    }

    /// True with probability `p` in training (layer drop); never in inference.
    pub fn coin(&self, p: f32) -> bool {
        self.training && p > 0.0 && (self.rng.borrow_mut().next_f64() as f32) < p
    }
}
