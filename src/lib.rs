//! wgformer: transformers trained and run entirely on GPU compute shaders through wgpu.
//!
//! Layers, lowest first; a module imports only from layers below it, except inside the
//! autograd core:
//! - `gpu`: device, kernel policy, buffer pool, pipeline cache, batched recording.
//! - the autograd core, `tensor` + `tape` + `ops`: one WGSL kernel family per op file, forward
//!   and backward side by side. The three call each other (a tensor is filled by `ops::fill`,
//!   the tape accumulates gradients with `ops::add`), so they are one layer.
//! - `optim` (fused optimizer kernels), `nn` (modules), `models`, `decode` (searches over a
//!   key/value cache), `inference` (load a trained model and use it).
//! - `train`: the shared training loop and the jobs; it uses `inference` to validate.
//! - `web` (feature `web`, wasm32 only): what a browser page calls, over `train` and
//!   `inference`, every GPU readback awaited.
//! - CPU-side helpers any layer above `tensor` may use: `config` (plain YAML data), `audio`
//!   (WAV, resampling, log-mel), `data` (corpora, tokenizers, batches, speech manifests),
//!   `checkpoint` (safetensors files, atomic checkpoint directories), `report` (plots).
//!
//! `reference` is the same math in plain Rust (f64), the oracle the tests check every kernel
//! against; it imports nothing of the crate.
//!
//! A character language model from start to end: build it, train a few steps on a batch, save
//! it, load it into a fresh model, generate.
//!
//! ```
//! use wgformer::data::{Batcher, Tokenizer, PAD, SOS};
//! use wgformer::decode::{greedy, CausalLmDecoder};
//! use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
//! use wgformer::nn::{Ctx, Module};
//! use wgformer::ops::{self, Activation, AdamWParams};
//! use wgformer::{AdamW, Gpu, Tensor};
//!
//! # fn main() -> wgformer::Result<()> {
//! let gpu = Gpu::shared()?;
//! let text = "to be or not to be, that is the question";
//! let tokenizer = Tokenizer::char_level(text);
//! let config = DecoderOnlyConfig {
//!     vocab_size: tokenizer.vocab_size(),
//!     d_model: 32,
//!     d_ff: 64,
//!     num_layers: 1,
//!     num_heads: 2,
//!     dropout: 0.0,
//!     layer_drop_rate: 0.0,
//!     weight_tying: true,
//!     max_seq_len: 48,
//!     activation: Activation::Gelu,
//! };
//! let model = DecoderOnlyTransformer::new(&gpu, config.clone(), 0)?;
//! let mut optimizer = AdamW::new(model.params(), AdamWParams { lr: 1e-2, ..Default::default() })?;
//!
//! // One window of the text: inputs [SOS] + text, targets the text.
//! let tokens = tokenizer.encode(text);
//! let batch = Batcher::new(tokens, 48, 1, 0)?.stream(0)?.next().unwrap();
//! let (b, t, v) = (batch.batch_size, batch.seq_len, config.vocab_size);
//! let ids = Tensor::from_u32(&gpu, &batch.inputs, &[b, t])?;
//! let lens = Tensor::from_u32(&gpu, &batch.lens, &[b])?;
//! let targets = Tensor::from_u32(&gpu, &batch.targets, &[b * t])?;
//! let mut losses = Vec::new();
//! for step in 0..60 {
//!     let logits = model.forward(&ids, Some(&lens), &Ctx::train(step))?; // [B, T, V]
//!     let loss = ops::cross_entropy(&logits.reshape(&[b * t, v])?, &targets, PAD, 0.0)?;
//!     loss.backward()?;
//!     optimizer.step()?;
//!     optimizer.zero_grad();
//!     losses.push(loss.to_scalar()?);
//! }
//! assert!(losses[59] < losses[0] / 10.0, "{losses:?}");
//!
//! let path = std::env::temp_dir().join(format!("wgformer-doc-{}.safetensors", std::process::id()));
//! model.save_safetensors(&path)?;
//! let loaded = DecoderOnlyTransformer::new(&gpu, config, 1)?;
//! loaded.load_safetensors(&path)?;
//! let generated = greedy(&CausalLmDecoder(&loaded), &[SOS], 12, None)?;
//! assert_eq!(tokenizer.decode(&generated), "to be or not");
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```

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
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

pub use error::{Error, Result};
pub use gpu::{Counters, Gpu};
pub use optim::AdamW;
pub use tape::no_grad;
pub use tensor::{DType, Tensor};
