//! A trained recognizer loaded from a checkpoint directory, transcribing audio: features on
//! the CPU, the encoder on the GPU, then CTC best path or the attention decoder (greedy or
//! beam search over its KV caches, optionally fused with a causal LM). What `examples/asr.rs`
//! runs.

use super::clm;
use crate::audio::{self, FeaturePipeline};
use crate::checkpoint;
use crate::config::{conv_strides, AsrConfig, DecodeMode};
use crate::data::{Tokenizer, SOS};
use crate::decode::{
    beam_search, ctc_greedy, BeamConfig, Boundary, CausalLmDecoder, ShallowFusion, SpeechDecoder,
};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::{DecoderOnlyTransformer, EncoderDecoderConfig, EncoderDecoderTransformer};
use crate::nn::{Ctx, Module};
use crate::tensor::Tensor;
use std::path::Path;

/// The model an ASR config describes, for a tokenizer of `vocab_size` ids.
pub fn model_config(config: &AsrConfig, vocab_size: usize) -> EncoderDecoderConfig {
    let m = &config.model;
    EncoderDecoderConfig {
        vocab_size,
        n_mels: config.features.n_mels,
        conv_channels: m.conv_channels,
        conv_strides: conv_strides(m.time_reduction),
        d_model: m.d_model,
        num_heads: m.num_heads,
        d_ff: m.d_ff,
        encoder_layers: m.encoder_layers,
        decoder_layers: m.decoder_layers,
        dropout: m.dropout as f32,
        ctc_head: m.ctc_weight > 0.0,
        max_source_len: m.max_source_len,
        max_target_len: m.max_target_len,
        activation: m.activation,
    }
}

/// How `Recognizer::transcribe` decodes.
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    /// Attention decoder or CTC best path; None: the checkpoint's `decode.mode`.
    pub mode: Option<DecodeMode>,
    /// 1: greedy.
    pub beam_width: usize,
    pub length_penalty: f32,
    /// Shallow-fusion weight of the LM given to `Recognizer::load` (0: the LM is unused).
    pub lm_weight: f32,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            mode: None,
            beam_width: 1,
            length_penalty: 1.0,
            lm_weight: 0.3,
        }
    }
}

/// A trained recognizer: model, tokenizer and feature pipeline from one checkpoint.
pub struct Recognizer {
    /// The decoding the checkpoint was selected with (`decode.mode` of its config).
    pub mode: DecodeMode,
    /// Its config's `decode.beam_width`: what a command-line user gets for the attention
    /// decoder unless they ask for another width.
    pub beam_width: usize,
    pub model: EncoderDecoderTransformer,
    pub tokenizer: Tokenizer,
    pub pipeline: FeaturePipeline,
    pub lm: Option<DecoderOnlyTransformer>,
}

impl Recognizer {
    /// Load the checkpoint directory `dir` (and optionally a CLM checkpoint for shallow fusion).
    pub fn load(gpu: &Gpu, dir: &Path, lm_dir: Option<&Path>) -> Result<Recognizer> {
        if !dir.join(checkpoint::PARAMS_FILE).exists() {
            return Err(Error::format(
                dir,
                format!(
                    "not a recognizer checkpoint: no {} in it",
                    checkpoint::PARAMS_FILE
                ),
            ));
        }
        let config = AsrConfig::load_with_overrides(dir.join("config.yaml"), &[] as &[&str])?;
        let tokenizer = Tokenizer::load(dir.join("tokenizer.json"))?;
        let features_path = dir.join("features.json");
        let pipeline =
            FeaturePipeline::from_json(&features_path, &checkpoint::read(dir, "features.json")?)?;
        let model = EncoderDecoderTransformer::new(
            gpu,
            model_config(&config, tokenizer.vocab_size()),
            config.train.seed,
        )?;
        checkpoint::load_params_from_dir(dir, &model.params())?;
        let lm = match lm_dir {
            Some(d) => {
                let (lm, lm_tokenizer, _) = clm::load_model(gpu, d)?;
                if lm_tokenizer != tokenizer {
                    return Err(Error::format(d, "the LM's tokenizer differs from the recognizer's: train it on transcripts with the recognizer's tokenizer"));
                }
                Some(lm)
            }
            None => None,
        };
        Ok(Recognizer {
            mode: config.decode.mode,
            beam_width: config.decode.beam_width.max(1),
            model,
            tokenizer,
            pipeline,
            lm,
        })
    }

    /// Transcript of a WAV file (any sample rate, any channel count).
    pub fn transcribe_file(&self, path: &Path, opts: &TranscribeOptions) -> Result<String> {
        self.transcribe(&audio::load_16k(path)?, opts)
    }

    /// Transcript of 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32], opts: &TranscribeOptions) -> Result<String> {
        let _g = crate::no_grad();
        let features = self.pipeline.features(samples)?;
        let c = &self.model.config;
        let enc_len = self.model.encoded_len(features.frames.max(1));
        if features.frames == 0 {
            return Ok(String::new());
        }
        if enc_len > c.max_source_len {
            return Err(Error::shape(
                "transcribe",
                format!(
                    "{:.1} s of audio is longer than the model's {:.1} s",
                    features.frames as f64 * 0.01,
                    c.max_source_len as f64 * 0.01 * (c.conv_strides[0] * c.conv_strides[1]) as f64
                ),
            ));
        }
        let x = Tensor::from_slice(
            self.model.gpu(),
            &features.data,
            &[1, features.frames, features.bins],
        )?;
        let encoded = self.model.encode(&x, &[features.frames], &Ctx::eval())?;
        if opts.mode.unwrap_or(self.mode) == DecodeMode::Ctc {
            // (A checkpoint saved by `auto` names the decoding that won.)
            let logits = self.model.ctc_logits(&encoded)?;
            let (frames, vocab) = (logits.shape()[1], logits.shape()[2]);
            let paths = ctc_greedy(
                &logits.to_vec()?,
                &encoded.lens,
                frames,
                vocab,
                crate::data::PAD,
            );
            return Ok(self.tokenizer.decode(&paths[0]));
        }
        let asr = SpeechDecoder {
            model: &self.model,
            encoded: &encoded,
        };
        let cfg = BeamConfig {
            beam_width: opts.beam_width.max(1),
            max_new_tokens: (c.max_target_len - 1).min(enc_len + 10),
            length_penalty: opts.length_penalty,
            eos: Some(crate::data::EOS),
        };
        let mut tokens = match &self.lm {
            Some(lm) if opts.lm_weight != 0.0 => {
                // The LM read the transcripts' text, lines joined by spaces.
                let boundary = Boundary {
                    token: self.tokenizer.encode(" ").first().copied().unwrap_or(SOS),
                    sos: SOS,
                    eos: crate::data::EOS,
                };
                let fused = ShallowFusion::new(asr, CausalLmDecoder(lm), opts.lm_weight)?
                    .with_boundary(boundary)?;
                beam_search(&fused, &[SOS], &cfg)?
            }
            _ => beam_search(&asr, &[SOS], &cfg)?,
        };
        tokens.retain(|&t| t != crate::data::EOS);
        Ok(self.tokenizer.decode(&tokens))
    }
}
