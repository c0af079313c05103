//! The speech-recognition job end to end (what `examples/train_asr.rs` runs): the corpus
//! (synthesised when missing) -> features -> `EncoderDecoderTransformer` trained with CE +
//! CTC -> CER / WER on the held-out sentences and the held-out voices, greedy and beam.
//! Scoring is in `asr_eval.rs`; `Recognizer` (`recognizer.rs`) loads a checkpoint and
//! transcribes audio (what `examples/asr.rs` runs). Both are re-exported here.
//!
//! Run directory (`train.out_dir`): `metrics.jsonl`, `curves.png`, `summary.json`, and
//! `checkpoints/` with `latest` (resumable) and `best` (lowest validation CER). A checkpoint
//! holds `model.safetensors`, `optimizer.safetensors`, `state.json`, `config.yaml`,
//! `tokenizer.json` and `features.json` (the feature pipeline with its normalisation
//! statistics): everything inference needs.

use super::asr_trainer::AsrTrainer;
use super::clm::{optimizer, schedule};
use super::metrics::MetricsLog;
use super::non_finite::NonFiniteGuard;
use super::schedule::steps_within_budget;
use crate::audio::{self, FeaturePipeline, SpecAugmentConfig};
use crate::checkpoint;
use crate::config::{AsrConfig, DecodeMode};
use crate::data::asr::{
    asr_tokenizer, build_speech_corpus, feature_pipeline, is_synthetic_split, load_eval,
    load_train, manifest, mvn_stats, read_manifest, AsrBatch, AsrBatcher, CorpusSizes, Split,
    TrainUtterance, Utterance,
};
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inference::asr_eval::{score, test_report, Mode, TestReport};
use crate::inference::clm;
use crate::inference::recognizer::model_config;
use crate::models::EncoderDecoderTransformer;
use crate::nn::Module;
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::path::PathBuf;
use std::time::Instant;

pub struct AsrRunOptions {
    pub resume: bool,
    pub verbose: bool,
    /// Stop after this many steps of this run (tests).
    pub stop_after: Option<usize>,
}

/// What a finished run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AsrSummary {
    pub steps: usize,
    pub train_utterances: usize,
    pub best_val_cer: f64,
    pub test: TestReport,
    pub train_seconds: f64,
    pub out_dir: PathBuf,
}

/// The synthetic corpus, built when its manifests are missing (and the config allows it).
fn ensure_corpus(config: &AsrConfig, verbose: bool) -> Result<()> {
    let dir = &config.data.corpus_dir;
    let train_manifest = dir.join(&config.data.train);
    if train_manifest.exists() {
        // A config asking for more training utterances than a synthetic corpus holds grows it
        // in place (configs/asr-finetune.yaml after configs/asr.yaml); any other manifest is
        // the user's data and is left alone.
        let entries = read_manifest(&train_manifest)?;
        let grow = config.data.build_corpus
            && !entries.is_empty()
            && entries.len() < config.data.corpus.train
            && is_synthetic_split(dir, Split::Train, &entries);
        if !grow {
            return Ok(());
        }
        if verbose {
            eprintln!(
                "{} has {} training utterances and data.corpus.train asks for {}: growing it",
                train_manifest.display(),
                entries.len(),
                config.data.corpus.train
            );
        }
    }
    if !config.data.build_corpus {
        return Err(Error::format(
            &config.origin,
            format!(
                "data.corpus_dir: {} has no {} (set data.build_corpus: true to synthesise it)",
                dir.display(),
                config.data.train
            ),
        ));
    }
    if verbose {
        eprintln!(
            "building the speech corpus in {} (text-to-speech)",
            dir.display()
        );
    }
    let c = &config.data.corpus;
    let text_path = &c.text;
    let text = crate::data::read_text(text_path)?;
    let sizes = CorpusSizes {
        train: c.train,
        val: c.val,
        test: c.test,
        test_voices: c.test_voices,
    };
    let progress = |done: usize, total: usize| {
        if verbose && (done.is_multiple_of(200) || done == total) {
            eprintln!("  synthesised {done}/{total} utterances");
        }
    };
    let report = build_speech_corpus(&text, dir, sizes, c.seed, 2, &progress)?;
    if verbose {
        eprintln!("corpus built: {report:?}");
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

/// This epoch's training set: one augmented copy of each utterance, SpecAugment applied.
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

#[derive(serde::Serialize, serde::Deserialize)]
struct TrainState {
    step: usize,
    epoch: usize,
    best_val_cer: f64,
    optimizer_steps: Vec<u32>,
}

#[derive(Clone)]
struct RunFiles {
    root: PathBuf,
    config_yaml: String,
    tokenizer_json: Vec<u8>,
    features_json: Vec<u8>,
}

fn save_checkpoint(
    trainer: &AsrTrainer,
    files: &RunFiles,
    name: &str,
    state: &TrainState,
) -> Result<()> {
    let params = trainer.model.params();
    let named: Vec<(String, &Tensor)> = params
        .iter()
        .map(|p| (p.name().unwrap_or_default().to_string(), p))
        .collect();
    let state_json =
        serde_json::to_vec_pretty(state).map_err(|e| Error::format("state.json", e))?;
    checkpoint::save(
        &files.root,
        name,
        &[
            (
                checkpoint::PARAMS_FILE,
                checkpoint::tensors_to_bytes(&named)?,
            ),
            (
                "optimizer.safetensors",
                checkpoint::tensors_to_bytes(&trainer.optimizer.state())?,
            ),
            ("state.json", state_json),
            ("config.yaml", files.config_yaml.as_bytes().to_vec()),
            ("tokenizer.json", files.tokenizer_json.clone()),
            ("features.json", files.features_json.clone()),
        ],
    )?;
    Ok(())
}

/// What a validation during training needs besides the trainer.
struct Validation<'a> {
    config: &'a AsrConfig,
    tokenizer: &'a Tokenizer,
    val: &'a [Utterance],
    files: &'a RunFiles,
    verbose: bool,
}

impl Validation<'_> {
    /// Greedy and CTC error rates on the validation utterances, logged and printed; the best
    /// checkpoint replaced when the CER under the configured decoding improved on `best`, and
    /// a step checkpoint saved (the last two kept). Returns the best CER so far.
    fn run(
        &self,
        trainer: &AsrTrainer,
        log: &mut MetricsLog,
        (step, epoch): (usize, usize),
        mut best: f64,
    ) -> Result<f64> {
        let (config, files) = (self.config, self.files);
        let score = |mode| score(&trainer.model, self.tokenizer, self.val, config, mode);
        let rates = score(Mode::Beam(1))?;
        let ctc = match trainer.model.ctc_head {
            Some(_) => Some(score(Mode::Ctc)?),
            None => None,
        };
        let ctc_cer = ctc.as_ref().map_or(f64::NAN, |r| r.cer());
        log.write(
            "eval",
            &[
                ("step", step as f64),
                ("val_cer", rates.cer()),
                ("val_wer", rates.wer()),
                ("val_ctc_cer", ctc_cer),
            ],
        )?;
        if self.verbose {
            eprintln!(
                "step {step}: val CER {:.2}% WER {:.2}% (attention, greedy), CTC CER {:.2}% ({} utterances)",
                100.0 * rates.cer(),
                100.0 * rates.wer(),
                100.0 * ctc_cer,
                rates.utterances
            );
        }
        // The best checkpoint is the best under the configured decoding (`auto`: the better
        // of the two, which its config then names as its decoding).
        let (cer, mode) = match config.decode.mode {
            DecodeMode::Ctc => (ctc_cer, DecodeMode::Ctc),
            DecodeMode::Auto if ctc_cer < rates.cer() => (ctc_cer, DecodeMode::Ctc),
            _ => (rates.cer(), DecodeMode::Attention),
        };
        let state = |best_val_cer| TrainState {
            step,
            epoch,
            best_val_cer,
            optimizer_steps: trainer.optimizer.steps().to_vec(),
        };
        if cer < best {
            best = cer;
            let mut chosen = config.clone();
            chosen.decode.mode = mode;
            let best_files = RunFiles {
                config_yaml: chosen.to_yaml()?,
                ..files.clone()
            };
            save_checkpoint(trainer, &best_files, "best", &state(best))?;
        }
        save_checkpoint(trainer, files, &format!("step-{step:07}"), &state(best))?;
        checkpoint::prune(&files.root, "step-", 2)?;
        Ok(best)
    }
}

pub fn run(config: &AsrConfig, opts: &AsrRunOptions) -> Result<AsrSummary> {
    let gpu = Gpu::shared()?;
    let t = &config.train;
    let out_dir = t.out_dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let say = |msg: String| {
        if opts.verbose {
            eprintln!("{msg}");
        }
    };
    say(format!("adapter: {}", gpu.adapter_name()));
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

    ensure_corpus(config, opts.verbose)?;

    // Data: features on the CPU, normalisation statistics from the clean training copies.
    let started = Instant::now();
    let tokenizer = asr_tokenizer();
    let mut pipeline = feature_pipeline(config);
    let train_entries = manifest(config, &config.data.train, config.data.max_train_utterances)?;
    let mut train = load_train(&train_entries, &pipeline, config, &tokenizer)?;
    if train.is_empty() {
        return Err(Error::format(
            &config.origin,
            "data.train: the training manifest is empty",
        ));
    }
    if pipeline.normalization == audio::Normalization::GlobalMvn {
        // Fine-tuning keeps the statistics the model was trained with.
        pipeline.mvn = match &config.model.init_from {
            Some(dir) => {
                let path = dir.join("features.json");
                let bytes = checkpoint::read(dir, "features.json")?;
                FeaturePipeline::from_json(&path, &bytes)?.mvn
            }
            None => None,
        }
        .or_else(|| Some(mvn_stats(&train)));
    }
    for u in train.iter_mut() {
        for v in u.variants.iter_mut() {
            pipeline.normalize(&mut v.features);
        }
    }
    let eval_split = |file: &str, limit: Option<usize>| -> Result<Vec<Utterance>> {
        load_eval(&manifest(config, file, limit)?, &pipeline, &tokenizer)
    };
    let val_limit = (t.eval_utterances > 0).then_some(t.eval_utterances);
    let val = eval_split(&config.data.val, val_limit)?;
    say(format!(
        "features: {} training utterances ({} copies), {} validation, in {:.1} s",
        train.len(),
        train.iter().map(|u| u.variants.len()).sum::<usize>(),
        val.len(),
        started.elapsed().as_secs_f64()
    ));

    // Model, optimizer, schedule.
    let model =
        EncoderDecoderTransformer::new(&gpu, model_config(config, tokenizer.vocab_size()), t.seed)?;
    if let Some(dir) = &config.model.init_decoder_from {
        let (lm, lm_tokenizer, _) = clm::load_model(&gpu, dir)?;
        if lm_tokenizer != tokenizer {
            return Err(Error::format(
                &config.origin,
                format!(
                    "model.init_decoder_from: {} uses another tokenizer than the recognizer's",
                    dir.display()
                ),
            ));
        }
        let n = model.load_decoder_from_clm(&lm)?;
        say(format!(
            "decoder initialised from {} ({n} tensors)",
            dir.display()
        ));
    }
    if let Some(dir) = &config.model.init_from {
        checkpoint::load_params(
            &dir.join(checkpoint::PARAMS_FILE),
            &checkpoint::read(dir, checkpoint::PARAMS_FILE)?,
            &model.params(),
        )?;
        say(format!("model initialised from {}", dir.display()));
    }
    let optimizer = optimizer(model.params(), &config.optimizer)?;
    let spec = spec_augment_config(config);
    let batches_per_epoch = AsrBatcher::new(
        epoch_utterances(&train, &spec, 0),
        t.max_frames,
        t.max_batch,
        t.seed,
    )?
    .num_batches();
    let from_epochs = t.epochs.map(|e| e * batches_per_epoch);
    let planned_steps = match (from_epochs, t.max_steps) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 0,
    };
    let mut total_steps = planned_steps;
    let mut trainer = AsrTrainer {
        schedule: schedule(&config.optimizer, &config.scheduler, total_steps),
        model,
        optimizer,
        label_smoothing: t.label_smoothing as f32,
        ctc_weight: config.model.ctc_weight as f32,
        max_grad_norm: t.max_grad_norm as f32,
        step: 0,
        seed: t.seed,
    };
    let tokenizer_path = out_dir.join("tokenizer.json");
    tokenizer.save(&tokenizer_path)?;
    let files = RunFiles {
        root: out_dir.join("checkpoints"),
        config_yaml: config.to_yaml()?,
        tokenizer_json: std::fs::read(&tokenizer_path)
            .map_err(|e| Error::io(&tokenizer_path, e))?,
        features_json: pipeline.to_json()?,
    };
    std::fs::write(out_dir.join("config.yaml"), &files.config_yaml)
        .map_err(|e| Error::io(out_dir.join("config.yaml"), e))?;

    let (mut epoch, mut best) = (0usize, f64::MAX); // JSON has no infinity
    for line in checkpoint::recover(&files.root)? {
        say(format!("checkpoints: {line}"));
    }
    if opts.resume {
        if let Some(dir) = checkpoint::latest(&files.root)? {
            let state: TrainState = serde_json::from_slice(&checkpoint::read(&dir, "state.json")?)
                .map_err(|e| Error::format(dir.join("state.json"), e))?;
            checkpoint::load_params(
                &dir.join(checkpoint::PARAMS_FILE),
                &checkpoint::read(&dir, checkpoint::PARAMS_FILE)?,
                &trainer.model.params(),
            )?;
            trainer.optimizer.restore(
                &dir.join("optimizer.safetensors"),
                &checkpoint::read(&dir, "optimizer.safetensors")?,
                &state.optimizer_steps,
            )?;
            trainer.step = state.step;
            epoch = state.epoch;
            best = state.best_val_cer;
            say(format!(
                "resumed from {} at step {}",
                dir.display(),
                state.step
            ));
        }
    }

    let mut log = MetricsLog::open(&out_dir.join("metrics.jsonl"), opts.resume)?;
    let train_started = Instant::now();
    let first_step = trainer.step;
    let (mut frames_seen, mut last_loss) = (0usize, f32::NAN);
    let mut guard = NonFiniteGuard::new(t.on_non_finite, t.max_skipped_steps);
    let validation = Validation {
        config,
        tokenizer: &tokenizer,
        val: &val,
        files: &files,
        verbose: opts.verbose,
    };
    let mut pace_from = (first_step, 0.0);
    'training: while trainer.step < total_steps {
        let utts = epoch_utterances(&train, &spec, t.seed ^ (epoch as u64 + 1));
        let batches: Vec<AsrBatch> = AsrBatcher::new(utts, t.max_frames, t.max_batch, t.seed)?
            .epoch(epoch)
            .collect();
        // A resumed run skips the batches of this epoch it has already trained on.
        let done_in_epoch = trainer
            .step
            .saturating_sub(epoch * batches_per_epoch)
            .min(batches.len());
        for batch in &batches[done_in_epoch..] {
            if trainer.step >= total_steps
                || opts
                    .stop_after
                    .is_some_and(|n| trainer.step - first_step >= n)
            {
                break 'training;
            }
            if super::interrupt::stop_requested() {
                let step = trainer.step;
                let name = format!("step-{step:07}");
                if !files.root.join(&name).exists() {
                    let state = TrainState {
                        step,
                        epoch,
                        best_val_cer: best,
                        optimizer_steps: trainer.optimizer.steps().to_vec(),
                    };
                    save_checkpoint(&trainer, &files, &name, &state)?;
                }
                return Err(Error::Interrupted {
                    step,
                    checkpoint: files.root.join(name),
                });
            }
            let stats = trainer.train_step(batch)?;
            let (loss, lr) = (stats.loss, stats.lr);
            if !guard.after_step(trainer.step, &stats, &mut log)? {
                last_loss = loss;
            }
            frames_seen += batch
                .feature_lens
                .iter()
                .map(|&n| n as usize)
                .sum::<usize>();
            let step = trainer.step;
            let secs = train_started.elapsed().as_secs_f64();
            if let Some(minutes) = t.time_limit_minutes {
                // The pace is measured from the 20th step on: the first ones compile
                // pipelines (and run autotune trials).
                if step - first_step == 20 {
                    pace_from = (step, secs);
                }
                let paced = (step - pace_from.0, secs - pace_from.1);
                let paced = if step - first_step >= 20 {
                    paced
                } else {
                    (0, 0.0)
                };
                total_steps = steps_within_budget(planned_steps, step, paced, secs, minutes * 60.0);
                trainer.schedule.total_steps = total_steps;
            }
            if step.is_multiple_of(t.log_interval) || step == total_steps {
                // Seconds of audio trained on per second (10 ms frames).
                let audio_rate = frames_seen as f64 * 0.01 / secs.max(1e-9);
                log.write(
                    "train",
                    &[
                        ("step", step as f64),
                        ("loss", loss as f64),
                        ("lr", lr),
                        ("audio_s_per_s", audio_rate),
                    ],
                )?;
                say(format!("step {step}/{total_steps} epoch {epoch}: loss {loss:.3}, lr {lr:.2e}, {audio_rate:.1} s of audio per s"));
            }
            if step.is_multiple_of(t.eval_interval) || step == total_steps {
                best = validation.run(&trainer, &mut log, (step, epoch), best)?;
            }
        }
        epoch += 1;
    }
    let train_seconds = train_started.elapsed().as_secs_f64();
    say(format!(
        "trained {} steps in {train_seconds:.0} s (last loss {last_loss:.3})",
        trainer.step
    ));

    // Test with the best checkpoint.
    let best_dir = files.root.join("best");
    if best_dir.exists() {
        checkpoint::load_params(
            &best_dir.join(checkpoint::PARAMS_FILE),
            &checkpoint::read(&best_dir, checkpoint::PARAMS_FILE)?,
            &trainer.model.params(),
        )?;
    }
    let summary = AsrSummary {
        steps: trainer.step,
        train_utterances: train.len(),
        best_val_cer: best,
        test: test_report(&trainer.model, &tokenizer, &pipeline, config)?,
        train_seconds,
        out_dir: out_dir.clone(),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::format("summary.json", e))?;
    std::fs::write(out_dir.join("summary.json"), json)
        .map_err(|e| Error::io(out_dir.join("summary.json"), e))?;
    Ok(summary)
}
