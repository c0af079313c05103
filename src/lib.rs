//! wgformer: transformers trained and run entirely on GPU compute shaders through wgpu.
//!
//! Layers, lowest first; a module imports only from layers below it, except inside the
//! autograd core:
//! - `gpu`: device, buffer pool, pipeline cache, batched recording.
//! - the autograd core, `tensor` + `tape` + `ops`: one WGSL kernel family per op file, forward
//!   and backward side by side. The three call each other (a tensor is filled by `ops::fill`,
//!   the tape accumulates gradients with `ops::add`), so they are one layer.
//! - `optim` (fused optimizer kernels), `nn` (modules), `models`, `decode` (searches over a
//!   key/value cache), `inference` (load a trained model and use it).
//! - `train`: the shared training loop and the jobs; it uses `inference` to validate.
//! - CPU-side helpers any layer above `tensor` may use: `config` (plain YAML data), `audio`
//!   (WAV, resampling, log-mel), `data` (corpora, tokenizers, batches, speech manifests),
//!   `checkpoint` (safetensors files, atomic checkpoint directories), `report` (plots).
//!
//! `reference` is the same math in plain Rust (f64), the oracle the tests check every kernel
//! against; it imports nothing of the crate.

pub mod audio;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod decode;
pub mod error;
pub mod gpu;
pub mod inference;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod reference;
pub mod report;
pub mod rng;
pub mod tape;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Counters, Gpu};
pub use optim::AdamW;
pub use tape::no_grad;
pub use tensor::{DType, Tensor};
