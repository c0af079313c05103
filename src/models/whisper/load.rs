//! Whisper weights from a model directory in either layout users have:
//!
//! - Hugging Face (`openai/whisper-tiny.en`): `config.json` + `model.safetensors`, names such as
//!   `model.encoder.layers.0.self_attn.k_proj.weight` (the names this crate uses);
//! - CTranslate2 (faster-whisper): `model.bin` (`checkpoint::ct2`), names such as
//!   `encoder/layer_0/self_attention/linear_0/weight` with q, k and v fused into one [3d, d]
//!   matrix (and the cross-attention's k and v into one [2d, d]); sizes come from the shapes
//!   and the stored `num_heads`.
//!
//! f16 and bf16 values become f32 on load. `Whisper::save_hf` writes the Hugging Face layout
//! (f32), which `load_whisper` and `transformers` read back: where fine-tuned weights go.

use super::{
    Whisper, WhisperConfig, WhisperConv, WhisperDecoderLayer, WhisperEncoderLayer,
    WhisperFeedForward,
};
use crate::checkpoint::ct2::{Ct2Dtype, Ct2Model};
use crate::checkpoint::{tensors_from_bytes, tensors_to_bytes, NamedArrays};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::Module;
use crate::nn::{LayerNorm, Linear, MultiHeadAttention};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// The two directory layouts `load_whisper` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhisperFormat {
    /// `config.json` + `model.safetensors`.
    HuggingFace,
    /// `model.bin` (+ `config.json` with generation settings).
    CTranslate2,
}

impl WhisperFormat {
    /// Which layout `dir` holds, by its files: `model.safetensors` or `model.bin`.
    pub fn detect(dir: &Path) -> Result<WhisperFormat> {
        if dir.join("model.safetensors").is_file() {
            Ok(WhisperFormat::HuggingFace)
        } else if dir.join("model.bin").is_file() {
            Ok(WhisperFormat::CTranslate2)
        } else {
            Err(Error::format(
                dir,
                "holds neither model.safetensors (Hugging Face) nor model.bin (CTranslate2): \
                 not a Whisper model directory (scripts/fetch_whisper tiny.en puts one in \
                 models/whisper-tiny.en)",
            ))
        }
    }
}

/// The model in `dir` (either layout) on `gpu`, and the layout it was in.
pub fn load_whisper(gpu: &Gpu, dir: &Path) -> Result<(Whisper, WhisperFormat)> {
    with_whisper_files(dir, |weights| whisper_from_weights(gpu, weights))
}

/// `then` of the weight files in `dir` (either layout), read into memory.
pub fn with_whisper_files<T>(
    dir: &Path,
    then: impl FnOnce(WhisperWeights) -> Result<T>,
) -> Result<T> {
    let read = |file: &Path| std::fs::read(file).map_err(|e| Error::io(file, e));
    match WhisperFormat::detect(dir)? {
        WhisperFormat::HuggingFace => {
            let (config_file, file) = (dir.join("config.json"), dir.join("model.safetensors"));
            then(WhisperWeights::HuggingFace {
                config: &read(&config_file)?,
                config_file: &config_file,
                bytes: &read(&file)?,
                file: &file,
            })
        }
        WhisperFormat::CTranslate2 => {
            let file = dir.join("model.bin");
            then(WhisperWeights::CTranslate2 {
                file: &file,
                bytes: &read(&file)?,
            })
        }
    }
}

/// A Whisper model's files held in memory (what a browser page fetched); the paths name them
/// in errors.
pub enum WhisperWeights<'a> {
    /// `model.bin`.
    CTranslate2 { file: &'a Path, bytes: &'a [u8] },
    /// `config.json` and `model.safetensors`.
    HuggingFace {
        config_file: &'a Path,
        config: &'a [u8],
        file: &'a Path,
        bytes: &'a [u8],
    },
}

/// The model of `weights` on `gpu`, and the layout it was in.
pub fn whisper_from_weights(
    gpu: &Gpu,
    weights: WhisperWeights,
) -> Result<(Whisper, WhisperFormat)> {
    let parsed = ParsedWhisper::parse(weights)?;
    let format = parsed.format;
    Ok((parsed.upload(gpu)?, format))
}

/// A model's weights parsed on the CPU (f32 arrays under the Hugging Face names), before
/// they go to a device: what the recognizer reads its half-precision output projection from.
pub struct ParsedWhisper<'a> {
    pub config: WhisperConfig,
    pub arrays: NamedArrays,
    pub format: WhisperFormat,
    /// The weight file, named in errors.
    pub file: &'a Path,
}

impl<'a> ParsedWhisper<'a> {
    pub fn parse(weights: WhisperWeights<'a>) -> Result<ParsedWhisper<'a>> {
        let (config, arrays, file, format) = match weights {
            WhisperWeights::HuggingFace {
                config_file,
                config,
                file,
                bytes,
            } => {
                let text =
                    std::str::from_utf8(config).map_err(|e| Error::format(config_file, e))?;
                let config = hf_config(config_file, text)?;
                let arrays = tensors_from_bytes(file, bytes)?;
                (config, arrays, file, WhisperFormat::HuggingFace)
            }
            WhisperWeights::CTranslate2 { file, bytes } => {
                let (config, arrays) = from_ct2(file, &Ct2Model::parse(file, bytes)?)?;
                (config, arrays, file, WhisperFormat::CTranslate2)
            }
        };
        Ok(ParsedWhisper {
            config,
            arrays,
            format,
            file,
        })
    }

    /// The model on `gpu`.
    pub fn upload(self, gpu: &Gpu) -> Result<Whisper> {
        Whisper::from_arrays(gpu, self.config, self.arrays, self.file)
    }
}

fn json_usize(file: &Path, json: &serde_json::Value, key: &str) -> Result<usize> {
    json[key]
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| Error::format(file, format!("has no whole number {key:?}")))
}

/// `WhisperConfig` from the text of a Hugging Face `config.json`; `file` names it in errors.
fn hf_config(file: &Path, text: &str) -> Result<WhisperConfig> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::format(file, format!("not JSON: {e}")))?;
    if let Some(act) = json["activation_function"].as_str() {
        if act != "gelu" {
            return Err(Error::format(
                file,
                format!("activation_function is {act:?}; Whisper uses \"gelu\""),
            ));
        }
    }
    let get = |key| json_usize(file, &json, key);
    let config = WhisperConfig {
        n_mels: get("num_mel_bins")?,
        d_model: get("d_model")?,
        encoder_layers: get("encoder_layers")?,
        encoder_heads: get("encoder_attention_heads")?,
        encoder_ffn: get("encoder_ffn_dim")?,
        decoder_layers: get("decoder_layers")?,
        decoder_heads: get("decoder_attention_heads")?,
        decoder_ffn: get("decoder_ffn_dim")?,
        vocab_size: get("vocab_size")?,
        max_source_positions: get("max_source_positions")?,
        max_target_positions: get("max_target_positions")?,
    };
    config
        .validate()
        .map_err(|e| Error::format(file, e.to_string()))?;
    Ok(config)
}

/// Layers `prefix/layer_0`, `prefix/layer_1`, ... present in a CT2 model.
fn ct2_layer_count(m: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            let head = format!("{prefix}/layer_{i}/");
            m.variables.keys().any(|k| k.starts_with(&head))
        })
        .count()
}

/// A CT2 `WhisperSpec` -> its config and its variables under the Hugging Face names.
pub fn from_ct2(file: &Path, m: &Ct2Model) -> Result<(WhisperConfig, NamedArrays)> {
    if m.spec != "WhisperSpec" {
        return Err(Error::format(
            file,
            format!("holds a CTranslate2 {:?}, not a WhisperSpec", m.spec),
        ));
    }
    if let Some((name, dtype)) = m
        .dtypes
        .iter()
        .find(|(n, &d)| n.ends_with("/weight") && matches!(d, Ct2Dtype::I8 | Ct2Dtype::I16))
    {
        return Err(Error::format(
            file,
            format!(
                "{name:?} is quantized ({dtype:?}); convert the model with \
                 --quantization float16 or float32"
            ),
        ));
    }
    let get = |name: &str| m.get(file, name);
    let shape_dim =
        |name: &str, dim: usize| -> Result<usize> {
            get(name)?.0.get(dim).copied().ok_or_else(|| {
                Error::format(file, format!("variable {name:?} has no dimension {dim}"))
            })
        };
    let scalar = |name: &str| -> Result<usize> {
        get(name)?
            .1
            .first()
            .map(|&v| v as usize)
            .ok_or_else(|| Error::format(file, format!("variable {name:?} is empty")))
    };
    let config = WhisperConfig {
        n_mels: shape_dim("encoder/conv1/weight", 1)?,
        d_model: shape_dim("encoder/conv1/weight", 0)?,
        encoder_layers: ct2_layer_count(m, "encoder"),
        encoder_heads: scalar("encoder/num_heads")?,
        encoder_ffn: shape_dim("encoder/layer_0/ffn/linear_0/weight", 0)?,
        decoder_layers: ct2_layer_count(m, "decoder"),
        decoder_heads: scalar("decoder/num_heads")?,
        decoder_ffn: shape_dim("decoder/layer_0/ffn/linear_0/weight", 0)?,
        vocab_size: shape_dim("decoder/embeddings/weight", 0)?,
        max_source_positions: shape_dim("encoder/position_encodings/encodings", 0)?,
        max_target_positions: shape_dim("decoder/position_encodings/encodings", 0)?,
    };
    config
        .validate()
        .map_err(|e| Error::format(file, e.to_string()))?;
    let d = config.d_model;
    let mut out: NamedArrays = HashMap::new();
    let put = |out: &mut NamedArrays, hf: String, ct2: &str| -> Result<()> {
        out.insert(hf, get(ct2)?.clone());
        Ok(())
    };
    for (hf, ct2) in [
        ("model.encoder.conv1", "encoder/conv1"),
        ("model.encoder.conv2", "encoder/conv2"),
        ("model.encoder.layer_norm", "encoder/layer_norm"),
        ("model.decoder.layer_norm", "decoder/layer_norm"),
    ] {
        let (w, b) = if hf.ends_with("layer_norm") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        put(&mut out, format!("{hf}.weight"), &format!("{ct2}/{w}"))?;
        put(&mut out, format!("{hf}.bias"), &format!("{ct2}/{b}"))?;
    }
    put(
        &mut out,
        "model.encoder.embed_positions.weight".into(),
        "encoder/position_encodings/encodings",
    )?;
    put(
        &mut out,
        "model.decoder.embed_positions.weight".into(),
        "decoder/position_encodings/encodings",
    )?;
    put(
        &mut out,
        "model.decoder.embed_tokens.weight".into(),
        "decoder/embeddings/weight",
    )?;
    // Layer by layer: (HF module, CT2 module) for norms and single linears.
    let layers = (0..config.encoder_layers)
        .map(|i| ("encoder", i))
        .chain((0..config.decoder_layers).map(|i| ("decoder", i)));
    for (side, i) in layers {
        let hf = format!("model.{side}.layers.{i}");
        let ct = format!("{side}/layer_{i}");
        let mut pairs = vec![
            ("self_attn_layer_norm", "self_attention/layer_norm"),
            ("self_attn.out_proj", "self_attention/linear_1"),
            ("final_layer_norm", "ffn/layer_norm"),
            ("fc1", "ffn/linear_0"),
            ("fc2", "ffn/linear_1"),
        ];
        if side == "decoder" {
            pairs.extend([
                ("encoder_attn_layer_norm", "attention/layer_norm"),
                ("encoder_attn.q_proj", "attention/linear_0"),
                ("encoder_attn.out_proj", "attention/linear_2"),
            ]);
        }
        for (h, c) in pairs {
            let (w, b) = if h.ends_with("layer_norm") {
                ("gamma", "beta")
            } else {
                ("weight", "bias")
            };
            put(
                &mut out,
                format!("{hf}.{h}.weight"),
                &format!("{ct}/{c}/{w}"),
            )?;
            put(&mut out, format!("{hf}.{h}.bias"), &format!("{ct}/{c}/{b}"))?;
        }
        // Fused projections: rows [q; k; v] of self-attention, [k; v] of cross-attention. The
        // k rows' bias is zero in the file (Whisper's keys have none) and is dropped.
        let split = |out: &mut NamedArrays, ct2: String, parts: &[&str]| -> Result<()> {
            let (shape, w) = get(&format!("{ct2}/weight"))?;
            let (_, b) = get(&format!("{ct2}/bias"))?;
            if shape != &[parts.len() * d, d] {
                return Err(Error::format(
                    file,
                    format!(
                        "{ct2}/weight is {shape:?}, expected [{}, {d}] (fused projections)",
                        parts.len() * d
                    ),
                ));
            }
            for (j, part) in parts.iter().enumerate() {
                let rows = w[j * d * d..(j + 1) * d * d].to_vec();
                out.insert(format!("{hf}.{part}.weight"), (vec![d, d], rows));
                if !part.ends_with("k_proj") {
                    out.insert(
                        format!("{hf}.{part}.bias"),
                        (vec![d], b[j * d..(j + 1) * d].to_vec()),
                    );
                }
            }
            Ok(())
        };
        split(
            &mut out,
            format!("{ct}/self_attention/linear_0"),
            &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
        )?;
        if side == "decoder" {
            split(
                &mut out,
                format!("{ct}/attention/linear_1"),
                &["encoder_attn.k_proj", "encoder_attn.v_proj"],
            )?;
        }
    }
    Ok((config, out))
}

/// Takes named arrays off a map into tensors, checking each shape; errors name the file,
/// the tensor and the shape expected.
struct Loader<'a> {
    gpu: &'a Gpu,
    file: &'a Path,
    arrays: NamedArrays,
    /// Makes the tensors the arrays lack from uniform values in +-0.05 (`Whisper::random`).
    random: Option<SplitMix64>,
}

impl Loader<'_> {
    fn constant(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let numel = shape.iter().product();
        let found = match (self.arrays.remove(name), &mut self.random) {
            (Some(array), _) => Some(array),
            (None, Some(rng)) => {
                let values = (0..numel).map(|_| (rng.next_f64() * 0.1 - 0.05) as f32);
                Some((shape.to_vec(), values.collect()))
            }
            (None, None) => None,
        };
        let (got, values) = found.ok_or_else(|| {
            Error::format(
                self.file,
                format!("has no tensor {name:?} (expected {shape:?})"),
            )
        })?;
        if got != shape {
            return Err(Error::format(
                self.file,
                format!("tensor {name:?} is {got:?}, the config expects {shape:?}"),
            ));
        }
        Tensor::from_slice(self.gpu, &values, shape)
    }

    fn param(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.constant(name, shape)?.into_param(name))
    }

    fn linear(&mut self, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.param(&format!("{name}.weight"), &[d_out, d_in])?,
            bias: match bias {
                true => Some(self.param(&format!("{name}.bias"), &[d_out])?),
                false => None,
            },
        })
    }

    fn layer_norm(&mut self, name: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.param(&format!("{name}.weight"), &[d])?,
            bias: self.param(&format!("{name}.bias"), &[d])?,
            eps: 1e-5,
        })
    }

    /// Whisper's attention: q, v and out projections with biases, k without.
    fn attention(&mut self, name: &str, d: usize, heads: usize) -> Result<MultiHeadAttention> {
        Ok(MultiHeadAttention {
            q_proj: self.linear(&format!("{name}.q_proj"), d, d, true)?,
            k_proj: self.linear(&format!("{name}.k_proj"), d, d, false)?,
            v_proj: self.linear(&format!("{name}.v_proj"), d, d, true)?,
            out_proj: self.linear(&format!("{name}.out_proj"), d, d, true)?,
            num_heads: heads,
            d_model: d,
        })
    }

    fn feed_forward(&mut self, name: &str, d: usize, ffn: usize) -> Result<WhisperFeedForward> {
        Ok(WhisperFeedForward {
            final_layer_norm: self.layer_norm(&format!("{name}.final_layer_norm"), d)?,
            fc1: self.linear(&format!("{name}.fc1"), d, ffn, true)?,
            fc2: self.linear(&format!("{name}.fc2"), ffn, d, true)?,
        })
    }

    fn conv(&mut self, name: &str, c_in: usize, d: usize, stride: usize) -> Result<WhisperConv> {
        Ok(WhisperConv {
            weight: self.param(&format!("{name}.weight"), &[d, c_in, 3])?,
            bias: self.param(&format!("{name}.bias"), &[d])?,
            stride,
        })
    }
}

impl Whisper {
    /// Build the model of `config` from arrays under the Hugging Face names (`file` names
    /// their source in errors). `proj_out.weight`, the tied output projection that some
    /// exports store, is ignored; any other tensor left over is an error.
    pub fn from_arrays(
        gpu: &Gpu,
        config: WhisperConfig,
        arrays: NamedArrays,
        file: &Path,
    ) -> Result<Whisper> {
        let loader = Loader {
            gpu,
            file,
            arrays,
            random: None,
        };
        Whisper::build(config, loader)
    }

    /// A model of `config` with uniform random weights, seeded: what benchmarks time where
    /// no weights are at hand (speed does not depend on the values).
    pub fn random(gpu: &Gpu, config: WhisperConfig, seed: u64) -> Result<Whisper> {
        let loader = Loader {
            gpu,
            file: Path::new("(random weights)"),
            arrays: NamedArrays::new(),
            random: Some(SplitMix64::new(seed)),
        };
        Whisper::build(config, loader)
    }

    fn build(config: WhisperConfig, mut l: Loader) -> Result<Whisper> {
        config.validate()?;
        let c = &config;
        let d = c.d_model;
        let conv1 = l.conv("model.encoder.conv1", c.n_mels, d, 1)?;
        let conv2 = l.conv("model.encoder.conv2", d, d, 2)?;
        let name = "model.encoder.embed_positions.weight";
        let encoder_positions = l
            .constant(name, &[c.max_source_positions, d])?
            .into_named_constant(name);
        let encoder_layers = (0..c.encoder_layers)
            .map(|i| {
                let name = format!("model.encoder.layers.{i}");
                Ok(WhisperEncoderLayer {
                    self_attn_layer_norm: l
                        .layer_norm(&format!("{name}.self_attn_layer_norm"), d)?,
                    self_attn: l.attention(&format!("{name}.self_attn"), d, c.encoder_heads)?,
                    ffn: l.feed_forward(&name, d, c.encoder_ffn)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder_layer_norm = l.layer_norm("model.encoder.layer_norm", d)?;
        let embed_tokens = l.param("model.decoder.embed_tokens.weight", &[c.vocab_size, d])?;
        let decoder_positions = l.param(
            "model.decoder.embed_positions.weight",
            &[c.max_target_positions, d],
        )?;
        let decoder_layers = (0..c.decoder_layers)
            .map(|i| {
                let name = format!("model.decoder.layers.{i}");
                Ok(WhisperDecoderLayer {
                    self_attn_layer_norm: l
                        .layer_norm(&format!("{name}.self_attn_layer_norm"), d)?,
                    self_attn: l.attention(&format!("{name}.self_attn"), d, c.decoder_heads)?,
                    encoder_attn_layer_norm: l
                        .layer_norm(&format!("{name}.encoder_attn_layer_norm"), d)?,
                    encoder_attn: l.attention(
                        &format!("{name}.encoder_attn"),
                        d,
                        c.decoder_heads,
                    )?,
                    ffn: l.feed_forward(&name, d, c.decoder_ffn)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_layer_norm = l.layer_norm("model.decoder.layer_norm", d)?;
        l.arrays.remove("proj_out.weight");
        if let Some(extra) = l.arrays.keys().min() {
            return Err(Error::format(
                l.file,
                format!("holds tensor {extra:?}, which a Whisper model does not have"),
            ));
        }
        Ok(Whisper {
            config,
            conv1,
            conv2,
            encoder_positions,
            encoder_layers,
            encoder_layer_norm,
            embed_tokens,
            decoder_positions,
            decoder_layers,
            decoder_layer_norm,
        })
    }
}

impl Whisper {
    /// Every tensor `model.safetensors` holds: the parameters and the encoder's position table
    /// (a constant), under their Hugging Face names.
    pub fn saved_tensors(&self) -> Vec<Tensor> {
        let mut t = self.params();
        t.push(self.encoder_positions.clone());
        t
    }

    /// The Hugging Face `config.json` of this model.
    pub fn config_json(&self) -> Vec<u8> {
        let c = &self.config;
        let config = serde_json::json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "activation_function": "gelu",
            "num_mel_bins": c.n_mels,
            "d_model": c.d_model,
            "encoder_layers": c.encoder_layers,
            "encoder_attention_heads": c.encoder_heads,
            "encoder_ffn_dim": c.encoder_ffn,
            "decoder_layers": c.decoder_layers,
            "decoder_attention_heads": c.decoder_heads,
            "decoder_ffn_dim": c.decoder_ffn,
            "vocab_size": c.vocab_size,
            "max_source_positions": c.max_source_positions,
            "max_target_positions": c.max_target_positions,
            "scale_embedding": false,
            "tie_word_embeddings": true,
        });
        serde_json::to_vec_pretty(&config).unwrap_or_default()
    }

    /// Write `config.json` and `model.safetensors` (`saved_tensors`, f32, Hugging Face names)
    /// into `dir`, creating it.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config_file = dir.join("config.json");
        std::fs::write(&config_file, self.config_json()).map_err(|e| Error::io(&config_file, e))?;
        let tensors = self.saved_tensors();
        let named: Vec<(String, &Tensor)> = tensors
            .iter()
            .map(|t| (t.name().unwrap_or_default().to_string(), t))
            .collect();
        let file = dir.join("model.safetensors");
        std::fs::write(&file, tensors_to_bytes(&named)?).map_err(|e| Error::io(&file, e))
    }
}
