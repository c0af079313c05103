//! A trained causal LM loaded from a checkpoint directory for inference: the model, its
//! tokenizer and its config, and a sampled continuation of a prompt.

use crate::checkpoint;
use crate::config::Config;
use crate::data::{Tokenizer, SOS};
use crate::decode::{sample_async, CausalLmDecoder, SamplingConfig};
use crate::error::Result;
use crate::gpu::{block_on, Gpu};
use crate::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use crate::nn::Module;
use std::path::Path;

/// The model a CLM config describes, for a tokenizer of `vocab_size` ids.
pub fn model_config(config: &Config, vocab_size: usize) -> DecoderOnlyConfig {
    let m = &config.model;
    DecoderOnlyConfig {
        vocab_size,
        d_model: m.d_model,
        d_ff: m.d_ff,
        num_layers: m.num_layers,
        num_heads: m.num_heads,
        dropout: m.dropout as f32,
        layer_drop_rate: m.layer_drop_rate as f32,
        weight_tying: m.weight_tying,
        max_seq_len: m.max_seq_len,
        activation: m.activation,
    }
}

/// Load a model (and its tokenizer and config) from a checkpoint directory.
pub fn load_model(gpu: &Gpu, dir: &Path) -> Result<(DecoderOnlyTransformer, Tokenizer, Config)> {
    let kind = checkpoint::Kind::of(dir);
    if matches!(
        kind,
        checkpoint::Kind::Recognizer | checkpoint::Kind::Whisper
    ) {
        return Err(crate::error::Error::format(
            dir,
            format!(
                "is {}, not a language model trained by train_clm",
                kind.describe()
            ),
        ));
    }
    let config_path = dir.join("config.yaml");
    let config = Config::load(&config_path)?;
    let tokenizer = Tokenizer::load(dir.join("tokenizer.json"))?;
    let model = DecoderOnlyTransformer::new(
        gpu,
        model_config(&config, tokenizer.vocab_size()),
        config.train.seed,
    )?;
    model.load_safetensors(dir.join(checkpoint::PARAMS_FILE))?;
    Ok((model, tokenizer, config))
}

/// A sample continuation of `prompt` (temperature 0.8, top-k 20).
pub fn sample_text(
    model: &DecoderOnlyTransformer,
    tokenizer: &Tokenizer,
    prompt: &str,
    n: usize,
    seed: u64,
) -> Result<String> {
    block_on(sample_text_async(model, tokenizer, prompt, n, seed))
}

/// `sample_text` with each step's readback awaited (a browser page).
pub async fn sample_text_async(
    model: &DecoderOnlyTransformer,
    tokenizer: &Tokenizer,
    prompt: &str,
    n: usize,
    seed: u64,
) -> Result<String> {
    let (ids, cfg) = sampling_setup(model, tokenizer, prompt, n, seed);
    let out = sample_async(&CausalLmDecoder(model), &ids, &cfg).await?;
    Ok(format!("{prompt}{}", tokenizer.decode(&out)))
}

/// The prompt's ids ([SOS] first) and the sampling settings of `sample_text`.
fn sampling_setup(
    model: &DecoderOnlyTransformer,
    tokenizer: &Tokenizer,
    prompt: &str,
    n: usize,
    seed: u64,
) -> (Vec<u32>, SamplingConfig) {
    let mut ids = vec![SOS];
    ids.extend(tokenizer.encode(prompt));
    // The model has no positions beyond max_seq_len: stop there.
    let n = n.min(model.config.max_seq_len.saturating_sub(ids.len()));
    let cfg = SamplingConfig {
        max_new_tokens: n,
        temperature: 0.8,
        top_k: 20,
        seed,
        ..Default::default()
    };
    (ids, cfg)
}
