//! A trained recognizer loaded from a checkpoint directory, transcribing audio of any length:
//! cut into windows at pauses when long, each window's features on the CPU, the encoder on the
//! GPU, a check that the window holds speech at all, then `decoding::transcribe_encoded`
//! (CTC best path, or the attention decoder's beam search joined with CTC prefix scores and
//! optionally a causal LM). What `examples/asr.rs` runs.

use super::clm;
use super::decoding::{transcribe_encoded_async, Decoding};
use super::speech_presence::SpeechEvidence;
use crate::audio::{self, FeaturePipeline, Waveform, TARGET_RATE};
use crate::checkpoint;
use crate::config::{conv_strides, AsrConfig};
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::gpu::{block_on, Gpu};
use crate::models::{DecoderOnlyTransformer, EncoderDecoderConfig, EncoderDecoderTransformer};
use crate::nn::{Ctx, Module};
use crate::tensor::Tensor;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Audio longer than this (or than the model's encoder window, if shorter) is cut into windows
/// at pauses (`audio::windows`), each decoded on its own and the transcripts joined with
/// spaces. The shipped model learnt from single sentences of 1 to 5 s; its encoder's positions
/// end at 40.96 s.
pub const WINDOW_SECONDS: f64 = 5.0;

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

/// One file of a checkpoint, read: where it came from (for messages) and its bytes.
pub struct CheckpointFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl CheckpointFile {
    fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.bytes).map_err(|e| Error::format(&self.path, e))
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

/// The files of a recognizer checkpoint (what `train_asr` saves).
pub struct RecognizerFiles {
    pub config: CheckpointFile,
    pub tokenizer: CheckpointFile,
    pub features: CheckpointFile,
    pub model: CheckpointFile,
}

/// A trained recognizer: model, tokenizer and feature pipeline from one checkpoint.
pub struct Recognizer {
    /// How it decodes unless told otherwise: its config's `decode` section.
    pub decoding: Decoding,
    pub model: EncoderDecoderTransformer,
    pub tokenizer: Tokenizer,
    pub pipeline: FeaturePipeline,
    pub lm: Option<DecoderOnlyTransformer>,
}

/// What the recognizer heard.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    /// The windows' transcripts joined by spaces; empty when `no_speech`.
    pub text: String,
    /// No window held speech (silence, noise): `text` is empty because there was nothing to
    /// transcribe, not because the model failed.
    pub no_speech: bool,
    /// The windows the audio was decoded in, in order (one for audio of up to
    /// `WINDOW_SECONDS`; none for audio too short to make a feature frame).
    pub windows: Vec<Window>,
}

/// One window of the audio and what was heard in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Seconds from the start of the audio.
    pub seconds: Range<f64>,
    pub evidence: SpeechEvidence,
    /// Empty where `evidence` shows no speech.
    pub text: String,
}

impl Recognizer {
    /// Load the checkpoint directory `dir` (and optionally a CLM checkpoint for shallow fusion).
    pub fn load(gpu: &Gpu, dir: &Path, lm_dir: Option<&Path>) -> Result<Recognizer> {
        match checkpoint::Kind::of(dir) {
            checkpoint::Kind::Recognizer => {}
            checkpoint::Kind::Unknown => {
                return Err(Error::format(
                    dir,
                    "not a recognizer checkpoint: it needs config.yaml, tokenizer.json, \
                     features.json and model.safetensors (what train_asr saves)",
                ))
            }
            other => {
                return Err(Error::format(
                    dir,
                    format!(
                        "is {}, not a speech recognizer trained by train_asr",
                        other.describe()
                    ),
                ))
            }
        }
        let file = |name: &str| -> Result<CheckpointFile> {
            Ok(CheckpointFile {
                path: dir.join(name),
                bytes: checkpoint::read(dir, name)?,
            })
        };
        let mut recognizer = Recognizer::from_files(
            gpu,
            &RecognizerFiles {
                config: file("config.yaml")?,
                tokenizer: file("tokenizer.json")?,
                features: file("features.json")?,
                model: file(checkpoint::PARAMS_FILE)?,
            },
        )?;
        recognizer.lm = match lm_dir {
            Some(d) => {
                let (lm, lm_tokenizer, _) = clm::load_model(gpu, d)?;
                if lm_tokenizer != recognizer.tokenizer {
                    return Err(Error::format(d, "the LM's tokenizer differs from the recognizer's: train it on transcripts with the recognizer's tokenizer"));
                }
                Some(lm)
            }
            None => None,
        };
        Ok(recognizer)
    }

    /// A recognizer from its checkpoint's files held in memory (what a browser page fetched);
    /// errors name each file by its path.
    pub fn from_files(gpu: &Gpu, files: &RecognizerFiles) -> Result<Recognizer> {
        let config = AsrConfig::from_yaml_str(files.config.text()?, &files.config.origin())?;
        let tokenizer = Tokenizer::from_json(&files.tokenizer.path, files.tokenizer.text()?)?;
        let pipeline = FeaturePipeline::from_json(&files.features.path, &files.features.bytes)?;
        let model = EncoderDecoderTransformer::new(
            gpu,
            model_config(&config, tokenizer.vocab_size()),
            config.train.seed,
        )?;
        checkpoint::load_params(&files.model.path, &files.model.bytes, &model.params())?;
        Ok(Recognizer {
            decoding: Decoding::from_config(&config.decode),
            model,
            tokenizer,
            pipeline,
            lm: None,
        })
    }

    /// Transcript of a WAV file (any sample rate, any channel count).
    pub fn transcribe_file(&self, path: &Path, decoding: &Decoding) -> Result<Transcript> {
        self.transcribe_waveform(&audio::read_wav(path)?, decoding)
    }

    /// Transcript of mono audio at any sample rate. Audio recorded below 16 kHz lacks the top
    /// of the model's band; its features there read the training mean
    /// (`FeaturePipeline::features_band_limited`).
    pub fn transcribe_waveform(&self, wave: &Waveform, decoding: &Decoding) -> Result<Transcript> {
        block_on(self.transcribe_waveform_async(wave, decoding))
    }

    /// `transcribe_waveform` with every readback awaited (a browser page).
    pub async fn transcribe_waveform_async(
        &self,
        wave: &Waveform,
        decoding: &Decoding,
    ) -> Result<Transcript> {
        let samples = audio::resample(&wave.samples, wave.sample_rate, TARGET_RATE)?;
        let bandwidth = (wave.sample_rate.min(TARGET_RATE) / 2) as f64;
        self.transcribe_band_limited(&samples, bandwidth, decoding)
            .await
    }

    /// Transcript of 16 kHz mono samples of any length.
    pub fn transcribe(&self, samples: &[f32], decoding: &Decoding) -> Result<Transcript> {
        block_on(self.transcribe_band_limited(samples, (TARGET_RATE / 2) as f64, decoding))
    }

    async fn transcribe_band_limited(
        &self,
        samples: &[f32],
        bandwidth_hz: f64,
        decoding: &Decoding,
    ) -> Result<Transcript> {
        decoding.check(&self.model)?;
        let mut windows = Vec::new();
        for range in audio::windows(samples, self.window_seconds()) {
            let seconds = range.start as f64 / 16_000.0..range.end as f64 / 16_000.0;
            let window = &samples[range];
            if let Some((evidence, text)) = self
                .transcribe_window(window, bandwidth_hz, decoding)
                .await?
            {
                windows.push(Window {
                    seconds,
                    evidence,
                    text,
                });
            }
        }
        let heard: Vec<&str> = windows
            .iter()
            .filter(|w| w.evidence.is_speech() && !w.text.is_empty())
            .map(|w| w.text.as_str())
            .collect();
        Ok(Transcript {
            text: heard.join(" "),
            no_speech: windows.iter().all(|w| !w.evidence.is_speech()),
            windows,
        })
    }

    /// The longest window decoded whole: `WINDOW_SECONDS`, or the encoder's positions if
    /// they end sooner.
    pub fn window_seconds(&self) -> f64 {
        let c = &self.model.config;
        let frames = c.max_source_len * c.conv_strides.iter().product::<usize>();
        WINDOW_SECONDS.min(0.98 * frames as f64 * self.pipeline.frame_seconds())
    }

    /// The evidence of speech in one window and its transcript (empty without speech); None
    /// for a window too short to make a feature frame.
    async fn transcribe_window(
        &self,
        samples: &[f32],
        bandwidth_hz: f64,
        decoding: &Decoding,
    ) -> Result<Option<(SpeechEvidence, String)>> {
        let features = if bandwidth_hz < (TARGET_RATE / 2) as f64 {
            self.pipeline.features_band_limited(samples, bandwidth_hz)?
        } else {
            self.pipeline.features(samples)?
        };
        if features.frames == 0 {
            return Ok(None);
        }
        let encoded = {
            let _g = crate::no_grad();
            let x = Tensor::from_slice(
                self.model.gpu(),
                &features.data,
                &[1, features.frames, features.bins],
            )?;
            self.model.encode(&x, &[features.frames], &Ctx::eval())?
        };
        let evidence = self.evidence(samples, &encoded).await?;
        if !evidence.is_speech() {
            return Ok(Some((evidence, String::new())));
        }
        let text = transcribe_encoded_async(
            &self.model,
            &self.tokenizer,
            &encoded,
            decoding,
            self.lm.as_ref(),
        )
        .await?;
        Ok(Some((evidence, text.concat())))
    }

    /// Loudness and CTC evidence of speech; a model without a CTC head has only loudness.
    async fn evidence(
        &self,
        samples: &[f32],
        encoded: &crate::models::Encoded,
    ) -> Result<SpeechEvidence> {
        let vocab = self.model.config.vocab_size;
        let is_letter: Vec<bool> = (0..vocab as u32)
            .map(|id| {
                let text = self.tokenizer.token_text(id);
                !text.is_empty() && text.chars().all(char::is_alphanumeric)
            })
            .collect();
        let logits = match &self.model.ctc_head {
            Some(_) => {
                let logits = {
                    let _g = crate::no_grad();
                    self.model.ctc_logits(encoded)?
                };
                logits.to_vec_async().await?
            }
            None => Vec::new(),
        };
        let mut evidence = SpeechEvidence::of(samples, &logits, vocab, &is_letter);
        if self.model.ctc_head.is_none() {
            evidence.letters = f32::INFINITY;
        }
        Ok(evidence)
    }
}
