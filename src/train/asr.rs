//! The speech-recognition job (what `examples/train_asr.rs` runs): the corpus (synthesised
//! when missing) -> features -> `EncoderDecoderTransformer` trained with CE + CTC by the shared
//! loop (`fit`), validated by CER, then tested on the held-out sentences and the held-out
//! voices (`inference::asr_eval`).
//!
//! Run directory (`train.out_dir`): `metrics.jsonl`, `curves.png`, `summary.json`,
//! `config.yaml`, `tokenizer.json`, `features.json`, and `checkpoints/` with `latest`, `best`
//! (lowest validation CER) and the two newest `step-*`. A checkpoint holds
//! `model.safetensors`, `optimizer.safetensors`, `state.json`, `config.yaml`, `tokenizer.json`
//! and `features.json` (the feature pipeline with its normalisation statistics): everything
//! inference needs.

use super::asr_loss::asr_loss;
use super::distributed::{agree, Collective, Shard, SingleProcess};
use super::fit::{fit, open_run, LoopConfig, RunOptions, RunReport};
use super::run_dir::RunDir;
use super::task::{Evaluation, Task};
use super::trainer::Trainer;
use super::whisper::WhisperTask;
use crate::audio::{self, FeaturePipeline, Normalization, SpecAugmentConfig};
use crate::checkpoint;
use crate::config::{AsrConfig, DecodeMode};
use crate::data::asr::{
    asr_tokenizer, ensure_corpus, feature_pipeline, load_eval, load_train, manifest, mvn_stats,
    AsrBatch, AsrBatcher, TrainUtterance, Utterance,
};
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inference::asr_eval::{score, test_report, TestReport};
use crate::inference::clm;
use crate::inference::recognizer::model_config;
use crate::inference::{Decoding, ErrorRates, WhisperRecognizer};
use crate::models::EncoderDecoderTransformer;
use crate::nn::{Ctx, Module};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};

/// What a finished run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AsrSummary {
    pub steps: usize,
    pub train_utterances: usize,
    /// The best validation score: CER for a recognizer trained here, WER for a Whisper.
    pub best_val_cer: f64,
    /// `None` when `--resume` found the run finished and nothing was tested again.
    pub test: Option<TestReport>,
    pub train_seconds: f64,
    pub out_dir: PathBuf,
}

/// Train the recognizer `config` describes, then test it; `summary.json` in the run directory.
pub fn run(config: &AsrConfig, opts: &RunOptions) -> Result<AsrSummary> {
    run_with(config, opts, &SingleProcess)
}

/// `run` as one process of a data-parallel run (`coll`); only the first one writes files.
pub fn run_with(
    config: &AsrConfig,
    opts: &RunOptions,
    coll: &dyn Collective,
) -> Result<AsrSummary> {
    let (dir, gpu) = open_run(&config.train.out_dir, opts, coll)?;
    let verbose = opts.verbose && coll.is_root();
    let whisper = config
        .model
        .init_from
        .as_deref()
        .filter(|d| WhisperRecognizer::is_whisper_dir(d));
    let (r, train_utterances, test) = match whisper {
        Some(from) => {
            let recognizer = agree(coll, WhisperRecognizer::load(&gpu, from))?;
            let mut task = agree(coll, WhisperTask::new(recognizer, config, verbose))?;
            let r = train(&mut task, dir, config, opts, coll)?;
            (r, task.train_len(), task.test_report.take())
        }
        None => {
            // The first process builds a missing corpus; the others wait for it in `agree`.
            let built = match coll.is_root() {
                true => check_init_from(config).and_then(|()| ensure_corpus(config, verbose)),
                false => Ok(()),
            };
            agree(coll, built)?;
            let mut task = agree(coll, AsrTask::new(&gpu, config, verbose))?;
            let r = train(&mut task, dir, config, opts, coll)?;
            (r, task.train.len(), task.test_report.take())
        }
    };
    let summary = AsrSummary {
        steps: r.steps,
        train_utterances,
        best_val_cer: r.best_score,
        test,
        train_seconds: r.train_seconds,
        out_dir: r.out_dir,
    };
    if summary.test.is_some() {
        let path = summary.out_dir.join("summary.json");
        let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::format(&path, e))?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    }
    Ok(summary)
}

/// The optimizer and loop the config's sections describe, then `fit`.
fn train<T: Task>(
    task: &mut T,
    dir: Option<RunDir>,
    config: &AsrConfig,
    opts: &RunOptions,
    coll: &dyn Collective,
) -> Result<RunReport> {
    let t = &config.train;
    let mut trainer = Trainer::from_config(
        task.params(),
        &config.optimizer,
        &config.scheduler,
        task.total_steps(),
        t.max_grad_norm,
        t.seed,
    )?;
    let verbose = opts.verbose && coll.is_root();
    trainer.set_precision(t.precision, &t.loss_scale, verbose);
    let lc = LoopConfig {
        log_interval: t.log_interval,
        eval_interval: t.eval_interval,
        time_limit_minutes: t.time_limit_minutes,
        on_non_finite: t.on_non_finite,
        max_skipped_steps: t.max_skipped_steps,
    };
    fit(task, &mut trainer, dir, coll, &lc, opts)
}

/// The recognizer as a `Task`: features of the training copies, the validation set, the model.
pub struct AsrTask {
    pub model: EncoderDecoderTransformer,
    pub tokenizer: Tokenizer,
    pub pipeline: FeaturePipeline,
    config: AsrConfig,
    train: Vec<TrainUtterance>,
    val: Vec<Utterance>,
    spec: SpecAugmentConfig,
    /// Batches per epoch of the first epoch: the step budget of `train.epochs`.
    batches_per_epoch: usize,
    epoch: Epoch,
    files: Vec<(String, Vec<u8>)>,
    test_report: Option<TestReport>,
}

/// The epoch being trained: its number, the step it started at, and its batches (each epoch
/// draws new augmented copies, so its batch count can differ from the others').
#[derive(Default)]
struct Epoch {
    number: usize,
    start: usize,
    batches: Vec<AsrBatch>,
}

impl AsrTask {
    /// The task of `config`, whose corpus exists (`data::asr::ensure_corpus`).
    pub fn new(gpu: &Gpu, config: &AsrConfig, verbose: bool) -> Result<AsrTask> {
        check_init_from(config)?;
        let started = std::time::Instant::now();
        let tokenizer = asr_tokenizer();
        let mut pipeline = feature_pipeline(config);
        let t = &config.train;
        let mut entries = manifest(config, &config.data.train, None)?;
        if let Some(more) = &config.data.train_modern {
            entries.extend(manifest(config, more, None)?);
        }
        if let Some(n) = config.data.max_train_utterances {
            entries.truncate(n);
        }
        let mut train = load_train(&entries, &pipeline, config, &tokenizer)?;
        if train.is_empty() {
            return Err(Error::format(
                &config.origin,
                "data.train: the training manifest is empty",
            ));
        }
        if pipeline.normalization == Normalization::GlobalMvn {
            // Fine-tuning keeps the statistics the model was trained with.
            pipeline.mvn = match &config.model.init_from {
                Some(dir) => {
                    let bytes = checkpoint::read(dir, "features.json")?;
                    FeaturePipeline::from_json(&dir.join("features.json"), &bytes)?.mvn
                }
                None => Some(mvn_stats(&train)),
            };
        }
        for v in train.iter_mut().flat_map(|u| u.variants.iter_mut()) {
            pipeline.normalize(&mut v.features);
        }
        let val_limit = (t.eval_utterances > 0).then_some(t.eval_utterances);
        let val = load_eval(
            &manifest(config, &config.data.val, val_limit)?,
            &pipeline,
            &tokenizer,
        )?;
        if verbose {
            eprintln!(
                "features: {} training utterances ({} copies), {} validation, in {:.1} s",
                train.len(),
                train.iter().map(|u| u.variants.len()).sum::<usize>(),
                val.len(),
                started.elapsed().as_secs_f64()
            );
        }
        let model = EncoderDecoderTransformer::new(
            gpu,
            model_config(config, tokenizer.vocab_size()),
            t.seed,
        )?;
        init_model(gpu, &model, config, &tokenizer, verbose)?;
        let spec = spec_augment_config(config);
        let first = AsrBatcher::new(
            epoch_utterances(&train, &spec, 0),
            t.max_frames,
            t.max_batch,
            t.seed,
        )?;
        let files = vec![
            ("config.yaml".to_string(), config.to_yaml()?.into_bytes()),
            ("tokenizer.json".to_string(), tokenizer.to_json_bytes()?),
            ("features.json".to_string(), pipeline.to_json()?),
        ];
        Ok(AsrTask {
            batches_per_epoch: first.num_batches(),
            model,
            tokenizer,
            pipeline,
            config: config.clone(),
            train,
            val,
            spec,
            epoch: Epoch::default(),
            files,
            test_report: None,
        })
    }
}

/// A `model.init_from` that is not a recognizer checkpoint is refused before any work.
fn check_init_from(config: &AsrConfig) -> Result<()> {
    if let Some(dir) = &config.model.init_from {
        if !dir.join(checkpoint::PARAMS_FILE).exists() || !dir.join("features.json").exists() {
            return Err(Error::format(
                &config.origin,
                format!(
                    "model.init_from: {} is not a recognizer checkpoint (it needs {} and \
                     features.json)",
                    dir.display(),
                    checkpoint::PARAMS_FILE
                ),
            ));
        }
    }
    Ok(())
}

/// Start from a language model's weights (`model.init_decoder_from`) or a recognizer's
/// (`model.init_from`) when the config says so.
fn init_model(
    gpu: &Gpu,
    model: &EncoderDecoderTransformer,
    config: &AsrConfig,
    tokenizer: &Tokenizer,
    verbose: bool,
) -> Result<()> {
    if let Some(dir) = &config.model.init_decoder_from {
        let (lm, lm_tokenizer, _) = clm::load_model(gpu, dir)?;
        if &lm_tokenizer != tokenizer {
            return Err(Error::format(
                &config.origin,
                format!(
                    "model.init_decoder_from: {} uses another tokenizer than the recognizer's",
                    dir.display()
                ),
            ));
        }
        let n = model.load_decoder_from_clm(&lm)?;
        if verbose {
            eprintln!("decoder initialised from {} ({n} tensors)", dir.display());
        }
    }
    if let Some(dir) = &config.model.init_from {
        checkpoint::load_params_from_dir(dir, &model.params())?;
        if verbose {
            eprintln!("model initialised from {}", dir.display());
        }
    }
    Ok(())
}

fn spec_augment_config(config: &AsrConfig) -> SpecAugmentConfig {
    let s = &config.features.spec_augment;
    SpecAugmentConfig {
        freq_masks: s.freq_masks,
        max_freq_width: s.max_freq_width,
        time_masks: s.time_masks,
        max_time_width: s.max_time_width,
    }
}

/// An epoch's training set: one augmented copy of each utterance, SpecAugment applied.
fn epoch_utterances(
    train: &[TrainUtterance],
    spec: &SpecAugmentConfig,
    seed: u64,
) -> Vec<Utterance> {
    let mut rng = SplitMix64::new(seed);
    train
        .iter()
        .map(|u| {
            let pick = (rng.next_u64() % u.variants.len() as u64) as usize;
            let mut utt = u.variants[pick].clone();
            audio::spec_augment(&mut utt.features, spec, &mut rng);
            utt
        })
        .collect()
}

impl Task for AsrTask {
    type Batch = AsrBatch;
    const NAME: &'static str = "ASR";
    const RATE: &'static str = "audio_s_per_s";
    const PLOT_METRIC: &'static str = "val_cer";
    const SIZE_KEYS: &'static str = "train.max_frames or train.max_batch (or the model's size)";

    fn params(&self) -> Vec<Tensor> {
        self.model.params()
    }

    fn total_steps(&self) -> usize {
        let t = &self.config.train;
        match (t.epochs.map(|e| e * self.batches_per_epoch), t.max_steps) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        }
    }

    fn batches(&mut self, step: usize, shard: Shard) -> Result<Vec<AsrBatch>> {
        let t = &self.config.train;
        while self.epoch.batches.is_empty() || step >= self.epoch.start + self.epoch.batches.len() {
            if !self.epoch.batches.is_empty() {
                self.epoch.start += self.epoch.batches.len();
                self.epoch.number += 1;
            }
            let seed = t.seed ^ (self.epoch.number as u64 + 1);
            let utts = epoch_utterances(&self.train, &self.spec, seed);
            let batcher = AsrBatcher::new(utts, t.max_frames, t.max_batch, t.seed)?;
            self.epoch.batches = batcher.epoch(self.epoch.number).collect();
            if self.epoch.batches.is_empty() {
                return Err(Error::format(
                    &self.config.origin,
                    "data.train makes no batch",
                ));
            }
        }
        let batch = &self.epoch.batches[step - self.epoch.start];
        if shard.size == 1 {
            return Ok(vec![batch.clone()]);
        }
        // A process of a data-parallel run takes every size-th utterance; a batch of long
        // utterances may hold fewer than there are processes, and then some train on none.
        let picked: Vec<usize> = (shard.rank..batch.batch).step_by(shard.size).collect();
        Ok(match picked.is_empty() {
            true => Vec::new(),
            false => vec![batch.rows(&picked)],
        })
    }

    fn loss_terms(&self, batch: &AsrBatch) -> f64 {
        batch.target_lens.iter().map(|&n| n as f64 + 1.0).sum()
    }

    fn loss(&self, batch: &AsrBatch, ctx: &Ctx) -> Result<Tensor> {
        let (ls, ctc) = (
            self.config.train.label_smoothing,
            self.config.model.ctc_weight,
        );
        asr_loss(&self.model, batch, ctx, ls as f32, ctc as f32)
    }

    fn amount(&self, batch: &AsrBatch) -> f64 {
        let frames: u32 = batch.feature_lens.iter().sum();
        frames as f64 * self.pipeline.frame_seconds()
    }

    fn validation_sums(&mut self, shard: Shard) -> Result<Vec<f64>> {
        let val = shard.take(&self.val);
        let scored =
            |d: Decoding| score(&self.model, &self.tokenizer, &val, &self.config, &d, None);
        let mut sums = scored(Decoding::attention_greedy())?.counts().to_vec();
        if self.model.ctc_head.is_some() {
            sums.extend(scored(Decoding::ctc_best_path())?.counts());
        }
        Ok(sums)
    }

    fn evaluation(&mut self, _step: usize, sums: &[f64], _report: bool) -> Result<Evaluation> {
        let config = &self.config;
        let greedy = ErrorRates::from_counts(&sums[..5]);
        let ctc_cer = match sums.len() > 5 {
            true => ErrorRates::from_counts(&sums[5..]).cer(),
            false => f64::NAN,
        };
        // The best checkpoint is the best under the configured decoding (`auto`: the better
        // of the two, which its config then names as its decoding).
        let (cer, mode) = match config.decode.mode {
            DecodeMode::Ctc => (ctc_cer, DecodeMode::Ctc),
            DecodeMode::Auto if ctc_cer < greedy.cer() => (ctc_cer, DecodeMode::Ctc),
            _ => (greedy.cer(), DecodeMode::Attention),
        };
        let mut chosen = config.clone();
        chosen.decode.mode = mode;
        Ok(Evaluation {
            metrics: vec![
                ("val_cer", greedy.cer()),
                ("val_wer", greedy.wer()),
                ("val_ctc_cer", ctc_cer),
            ],
            score: cer,
            report: format!(
                "val CER {:.2}% WER {:.2}% (attention, greedy), CTC CER {:.2}% ({} utterances)",
                100.0 * greedy.cer(),
                100.0 * greedy.wer(),
                100.0 * ctc_cer,
                greedy.utterances
            ),
            best_files: vec![("config.yaml".to_string(), chosen.to_yaml()?.into_bytes())],
        })
    }

    fn test(&mut self, best: Option<&Path>) -> Result<Vec<(&'static str, f64)>> {
        if let Some(dir) = best {
            checkpoint::load_params_from_dir(dir, &self.model.params())?;
        }
        let decoding = Decoding::from_config(&self.config.decode);
        let r = test_report(
            &self.model,
            &self.tokenizer,
            &self.pipeline,
            &self.config,
            &decoding,
            None,
        )?;
        let nan = f64::NAN;
        let mut metrics = vec![
            ("test_greedy_cer", r.greedy.cer),
            ("test_beam_cer", r.beam.cer),
            ("test_ctc_cer", r.ctc.as_ref().map_or(nan, |c| c.cer)),
            ("test_voices_greedy_cer", r.voices_greedy.cer),
            ("test_voices_beam_cer", r.voices_beam.cer),
            (
                "test_voices_ctc_cer",
                r.voices_ctc.as_ref().map_or(nan, |c| c.cer),
            ),
        ];
        if let (Some(greedy), Some(beam)) = (&r.modern_greedy, &r.modern_beam) {
            metrics.push(("test_modern_greedy_cer", greedy.cer));
            metrics.push(("test_modern_beam_cer", beam.cer));
            let ctc = r.modern_ctc.as_ref().map_or(nan, |c| c.cer);
            metrics.push(("test_modern_ctc_cer", ctc));
        }
        self.test_report = Some(r);
        Ok(metrics)
    }

    fn checkpoint_files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    fn data_state(&self) -> serde_json::Value {
        serde_json::json!({ "epoch": self.epoch.number, "epoch_start": self.epoch.start })
    }

    fn restore_data_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let field = |k: &str| state.get(k).and_then(serde_json::Value::as_u64);
        let (Some(number), Some(start)) = (field("epoch"), field("epoch_start")) else {
            return Err(Error::format(
                "state.json",
                "data: expected {epoch, epoch_start}",
            ));
        };
        self.epoch = Epoch {
            number: number as usize,
            start: start as usize,
            batches: Vec::new(),
        };
        Ok(())
    }
}
