//! wgformer: transformers trained and run entirely on GPU compute shaders through wgpu.
//!
//! Layers, lowest first: `gpu` (device, kernel policy, buffer pool, pipeline cache, batched
//! recording) imports nothing above it; `tensor`, `tape` and `ops` (kernel families, forward
//! and backward) form the autograd core and call each other (a tensor fills itself with
//! `ops::fill`, the tape sums gradients with `ops::add`). `reference` is the same math in plain
//! Rust, the oracle the tests check every kernel against, and imports nothing of the crate.

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
