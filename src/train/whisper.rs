//! Fine-tuning a pretrained Whisper (`model.init_from` naming a Whisper directory, e.g.
//! `models/whisper-tiny.en`) on a speech manifest, with the shared loop (`fit`): the
//! transcripts' cross-entropy after Whisper's start sequence (`models::whisper::whisper_loss`),
//! validated and tested by WER of greedy (and beam) transcription. Transcripts are scored after
//! `normalize_transcript` on both sides (upper case letters, apostrophe, space), so Whisper's
//! punctuation and case do not count as errors.
//!
//! A checkpoint is a Whisper directory in the Hugging Face layout (`model.safetensors` under
//! Hugging Face's names, `config.json`, `tokenizer.json`) plus the training files, so `asr
//! --checkpoint runs/.../checkpoints/best` and `transformers` both load it.

use super::distributed::Shard;
use super::task::{Evaluation, Task};
use crate::audio;
use crate::config::AsrConfig;
use crate::data::asr::{manifest, normalize_transcript, ManifestEntry};
use crate::error::{Error, Result};
use crate::inference::asr_eval::{Rates, TestReport};
use crate::inference::{ErrorRates, Timestamps, WhisperOptions, WhisperRecognizer};
use crate::models::whisper::{whisper_loss, WhisperBatch, WhisperExample};
use crate::nn::{Ctx, Module};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::path::Path;

/// A clip to transcribe: 16 kHz samples and the reference transcript.
struct Clip {
    samples: Vec<f32>,
    transcript: String,
}

pub struct WhisperTask {
    pub recognizer: WhisperRecognizer,
    config: AsrConfig,
    train: Vec<WhisperExample>,
    val: Vec<Clip>,
    files: Vec<(String, Vec<u8>)>,
    pub test_report: Option<TestReport>,
}

fn clips(entries: &[ManifestEntry]) -> Result<Vec<Clip>> {
    entries
        .iter()
        .map(|e| {
            Ok(Clip {
                samples: audio::load_16k(&e.audio)?,
                transcript: e.transcript.clone(),
            })
        })
        .collect()
}

impl WhisperTask {
    /// The Whisper in `model.init_from`, the training examples of `data.train` (clips longer
    /// than one 30 s window are left out, and said) and the validation clips.
    pub fn new(
        recognizer: WhisperRecognizer,
        config: &AsrConfig,
        verbose: bool,
    ) -> Result<WhisperTask> {
        let d = &config.data;
        let entries = manifest(config, &d.train, d.max_train_utterances)?;
        let mut train = Vec::with_capacity(entries.len());
        for clip in clips(&entries)? {
            match recognizer.example(&clip.samples, &clip.transcript) {
                Ok(example) => train.push(example),
                Err(Error::Shape { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if verbose && train.len() < entries.len() {
            eprintln!(
                "{} clips longer than 30 s left out of training",
                entries.len() - train.len()
            );
        }
        if train.is_empty() {
            return Err(Error::format(
                &config.origin,
                "data.train: no clip to train on",
            ));
        }
        let limit = (config.train.eval_utterances > 0).then_some(config.train.eval_utterances);
        let val = clips(&manifest(config, &d.val, limit)?)?;
        let source = config.model.init_from.as_deref().unwrap_or(Path::new("."));
        let tokenizer = source.join("tokenizer.json");
        let files = vec![
            ("config.yaml".to_string(), config.to_yaml()?.into_bytes()),
            ("config.json".to_string(), recognizer.model.config_json()),
            (
                "tokenizer.json".to_string(),
                std::fs::read(&tokenizer).map_err(|e| Error::io(&tokenizer, e))?,
            ),
        ];
        Ok(WhisperTask {
            recognizer,
            config: config.clone(),
            train,
            val,
            files,
            test_report: None,
        })
    }

    /// Training examples.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batches_per_epoch(&self) -> usize {
        self.train
            .len()
            .div_ceil(self.config.train.max_batch.max(1))
    }

    /// Error counts of `clips` transcribed with `beam_width` beams.
    fn score<'a>(
        &self,
        clips: impl IntoIterator<Item = &'a Clip>,
        beam_width: usize,
    ) -> Result<ErrorRates> {
        let opts = WhisperOptions {
            beam_width,
            timestamps: Timestamps::Auto,
            ..WhisperOptions::default()
        };
        let mut rates = ErrorRates::default();
        for clip in clips {
            let hyp = self.recognizer.transcribe(&clip.samples, &opts)?;
            rates.add(
                &normalize_transcript(&clip.transcript),
                &normalize_transcript(&hyp),
            );
        }
        Ok(rates)
    }
}

impl Task for WhisperTask {
    type Batch = Vec<WhisperExample>;
    const NAME: &'static str = "Whisper";
    const RATE: &'static str = "clips_per_s";
    const PLOT_METRIC: &'static str = "val_wer";
    const SIZE_KEYS: &'static str = "train.max_batch";

    fn params(&self) -> Vec<Tensor> {
        self.recognizer.model.params()
    }

    fn saved_tensors(&self) -> Vec<Tensor> {
        self.recognizer.model.saved_tensors()
    }

    fn total_steps(&self) -> usize {
        let t = &self.config.train;
        match (t.epochs.map(|e| e * self.batches_per_epoch()), t.max_steps) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        }
    }

    fn batches(&mut self, step: usize, shard: Shard) -> Result<Vec<Self::Batch>> {
        // Epoch e visits the examples in an order shuffled from the seed; step s takes the
        // next max_batch of them, and a process of a data-parallel run its share of those.
        let per_epoch = self.batches_per_epoch();
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        SplitMix64::new(self.config.train.seed ^ (epoch as u64 + 1)).shuffle(&mut order);
        let size = self.config.train.max_batch.max(1);
        let picked: Vec<WhisperExample> = order
            .iter()
            .skip(index * size)
            .take(size)
            .map(|&i| self.train[i].clone())
            .collect();
        let mine = shard.take(&picked);
        Ok(if mine.is_empty() {
            Vec::new()
        } else {
            vec![mine]
        })
    }

    fn loss(&self, batch: &Self::Batch, _ctx: &Ctx) -> Result<Tensor> {
        let m = &self.recognizer.model;
        let b = WhisperBatch::new(m.gpu(), batch, m.config.window_frames(), m.config.n_mels)?;
        whisper_loss(m, &b)
    }

    fn loss_terms(&self, batch: &Self::Batch) -> f64 {
        batch.iter().map(|e| e.target.len() as f64).sum()
    }

    fn amount(&self, batch: &Self::Batch) -> f64 {
        batch.len() as f64
    }

    fn validation_sums(&mut self, shard: Shard) -> Result<Vec<f64>> {
        let _g = crate::no_grad();
        let mine = self.val.iter().skip(shard.rank).step_by(shard.size);
        Ok(self.score(mine, 1)?.counts().to_vec())
    }

    fn evaluation(&mut self, _step: usize, sums: &[f64], _report: bool) -> Result<Evaluation> {
        let r = ErrorRates::from_counts(sums);
        Ok(Evaluation {
            metrics: vec![("val_wer", r.wer()), ("val_cer", r.cer())],
            score: r.wer(),
            report: format!(
                "val WER {:.2}% CER {:.2}% (greedy, {} clips)",
                100.0 * r.wer(),
                100.0 * r.cer(),
                r.utterances
            ),
            best_files: Vec::new(),
        })
    }

    fn test(&mut self, best: Option<&Path>) -> Result<Vec<(&'static str, f64)>> {
        let _g = crate::no_grad();
        if let Some(dir) = best {
            crate::checkpoint::load_params_from_dir(dir, &self.saved_tensors())?;
        }
        let test = clips(&manifest(&self.config, &self.config.data.test, None)?)?;
        let greedy = Rates::from(&self.score(&test, 1)?);
        let beam = match self.config.decode.beam_width {
            0 | 1 => greedy.clone(),
            width => Rates::from(&self.score(&test, width)?),
        };
        let metrics = vec![
            ("test_greedy_wer", greedy.wer),
            ("test_greedy_cer", greedy.cer),
            ("test_beam_wer", beam.wer),
            ("test_beam_cer", beam.cer),
        ];
        // Whisper has no CTC head, and a corpus of real speech has no held-out-voices set.
        self.test_report = Some(TestReport {
            greedy,
            beam,
            ctc: None,
            voices_greedy: Rates::default(),
            voices_beam: Rates::default(),
            voices_ctc: None,
            modern_greedy: None,
            modern_beam: None,
            modern_ctc: None,
        });
        Ok(metrics)
    }

    fn checkpoint_files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }
}
