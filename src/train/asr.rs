//! The speech-recognition job end to end (what `examples/train_asr.rs` runs): the corpus
//! (synthesised when missing) -> features -> `EncoderDecoderTransformer` trained with CE +
//! CTC -> CER / WER on the held-out sentences and the held-out voices, greedy and beam.
//! `Recognizer` loads a checkpoint and transcribes audio (what `examples/asr.rs` runs).
//!
//! Run directory (`train.out_dir`): `metrics.jsonl`, `curves.png`, `summary.json`, and
//! `checkpoints/` with `latest` (resumable) and `best` (lowest validation CER). A checkpoint
//! holds `model.safetensors`, `optimizer.safetensors`, `state.json`, `config.yaml`,
//! `tokenizer.json` and `features.json` (the feature pipeline with its normalisation
//! statistics): everything inference needs.

use super::asr_data::{
    load_eval, load_train, manifest, mvn_stats, FeaturePipeline, TrainUtterance,
};
use super::asr_trainer::{evaluate, AsrTrainer, DecodeOptions};
use super::checkpoint;
use super::clm::{self, schedule};
use super::error_rate::ErrorRates;
use super::metrics::MetricsLog;
use super::non_finite::NonFiniteGuard;
use super::schedule::steps_within_budget;
use crate::audio::{self, SpecAugmentConfig};
use crate::config::{conv_strides, AsrConfig, DecodeMode};
use crate::data::asr::{
    asr_tokenizer, build_speech_corpus, AsrBatch, AsrBatcher, CorpusSizes, Utterance,
};
use crate::data::{Tokenizer, SOS};
use crate::decode::{
    beam_search, ctc_greedy, BeamConfig, CausalLmDecoder, ShallowFusion, SpeechDecoder,
};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::{DecoderOnlyTransformer, EncoderDecoderConfig, EncoderDecoderTransformer};
use crate::nn::{Ctx, Module};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Rates {
    pub cer: f64,
    pub wer: f64,
    pub mean_word_distance: f64,
    pub utterances: usize,
}

impl From<&ErrorRates> for Rates {
    fn from(r: &ErrorRates) -> Rates {
        Rates {
            cer: r.cer(),
            wer: r.wer(),
            mean_word_distance: r.mean_word_distance(),
            utterances: r.utterances,
        }
    }
}

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
    }
}

/// The synthetic corpus, built when its manifests are missing (and the config allows it).
fn ensure_corpus(config: &AsrConfig, verbose: bool) -> Result<()> {
    let dir = &config.data.corpus_dir;
    if dir.join(&config.data.train).exists() {
        return Ok(());
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

/// Utterances cut into padded batches of similar length (no shuffling: evaluation).
fn eval_batches(utts: &[Utterance], config: &AsrConfig) -> Result<Vec<AsrBatch>> {
    let batcher = AsrBatcher::new(
        utts.to_vec(),
        config.train.max_frames,
        config.train.max_batch,
        0,
    )?;
    Ok(batcher.in_order().collect())
}

fn references(utts: &[Utterance]) -> HashMap<String, String> {
    utts.iter()
        .map(|u| (u.id.clone(), u.transcript.clone()))
        .collect()
}

/// How `score` decodes: attention greedy (beam 1), attention beam search, or CTC best path.
#[derive(Clone, Copy)]
enum Mode {
    Beam(usize),
    Ctc,
}

fn score(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    utts: &[Utterance],
    config: &AsrConfig,
    mode: Mode,
) -> Result<ErrorRates> {
    let refs = references(utts);
    let opts = DecodeOptions {
        ctc: matches!(mode, Mode::Ctc),
        beam_width: match mode {
            Mode::Beam(w) => w,
            Mode::Ctc => 1,
        },
        length_penalty: config.decode.length_penalty as f32,
        max_len: config.model.max_target_len,
    };
    let batches = eval_batches(utts, config)?;
    evaluate(
        model,
        tokenizer,
        &batches,
        &|id| refs.get(id).cloned(),
        &opts,
    )
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
    ensure_corpus(config, opts.verbose)?;

    // Data: features on the CPU, normalisation statistics from the clean training copies.
    let started = Instant::now();
    let tokenizer = asr_tokenizer();
    let mut pipeline = FeaturePipeline::from_config(config)?;
    let train_entries = manifest(config, &config.data.train, config.data.max_train_utterances)?;
    let mut train = load_train(&train_entries, &pipeline, config, &tokenizer)?;
    if train.is_empty() {
        return Err(Error::format(
            &config.origin,
            "data.train: the training manifest is empty",
        ));
    }
    if pipeline.normalization == audio::Normalization::GlobalMvn {
        pipeline.mvn = Some(mvn_stats(&train));
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
    let optimizer = clm::optimizer(model.params(), &config.optimizer)?;
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
                let rates = score(&trainer.model, &tokenizer, &val, config, Mode::Beam(1))?;
                let ctc = match trainer.model.ctc_head {
                    Some(_) => Some(score(&trainer.model, &tokenizer, &val, config, Mode::Ctc)?),
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
                say(format!(
                    "step {step}: val CER {:.2}% WER {:.2}% (attention, greedy), CTC CER {:.2}% ({} utterances)",
                    100.0 * rates.cer(),
                    100.0 * rates.wer(),
                    100.0 * ctc_cer,
                    rates.utterances
                ));
                // The best checkpoint is the best under the configured decoding (`auto`: the
                // better of the two, which its config then names as its decoding).
                let (cer, mode) = match config.decode.mode {
                    DecodeMode::Ctc => (ctc_cer, DecodeMode::Ctc),
                    DecodeMode::Auto if ctc_cer < rates.cer() => (ctc_cer, DecodeMode::Ctc),
                    _ => (rates.cer(), DecodeMode::Attention),
                };
                if cer < best {
                    best = cer;
                    let state = TrainState {
                        step,
                        epoch,
                        best_val_cer: best,
                        optimizer_steps: trainer.optimizer.steps().to_vec(),
                    };
                    let mut chosen = config.clone();
                    chosen.decode.mode = mode;
                    let best_files = RunFiles {
                        config_yaml: chosen.to_yaml()?,
                        ..files.clone()
                    };
                    save_checkpoint(&trainer, &best_files, "best", &state)?;
                }
                let state = TrainState {
                    step,
                    epoch,
                    best_val_cer: best,
                    optimizer_steps: trainer.optimizer.steps().to_vec(),
                };
                save_checkpoint(&trainer, &files, &format!("step-{step:07}"), &state)?;
                checkpoint::prune(&files.root, "step-", 2)?;
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

/// Error rates on both test sets with every decoding.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestReport {
    /// Held-out sentences, training voices: attention greedy, attention beam, CTC best path.
    pub greedy: Rates,
    pub beam: Rates,
    pub ctc: Option<Rates>,
    /// Held-out sentences spoken by voices never heard in training.
    pub voices_greedy: Rates,
    pub voices_beam: Rates,
    pub voices_ctc: Option<Rates>,
}

/// Score `model` on the config's test and test_voices manifests.
pub fn test_report(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    pipeline: &FeaturePipeline,
    config: &AsrConfig,
) -> Result<TestReport> {
    let split = |file: &str| load_eval(&manifest(config, file, None)?, pipeline, tokenizer);
    let (test, voices) = (split(&config.data.test)?, split(&config.data.test_voices)?);
    let rates = |utts: &[Utterance], mode| -> Result<Rates> {
        Ok((&score(model, tokenizer, utts, config, mode)?).into())
    };
    let ctc = |utts: &[Utterance]| -> Result<Option<Rates>> {
        model
            .ctc_head
            .as_ref()
            .map(|_| rates(utts, Mode::Ctc))
            .transpose()
    };
    let beam = Mode::Beam(config.decode.beam_width);
    Ok(TestReport {
        greedy: rates(&test, Mode::Beam(1))?,
        beam: rates(&test, beam)?,
        ctc: ctc(&test)?,
        voices_greedy: rates(&voices, Mode::Beam(1))?,
        voices_beam: rates(&voices, beam)?,
        voices_ctc: ctc(&voices)?,
    })
}

/// `test_report` of the checkpoint in `dir`, on the test sets its own config names.
pub fn evaluate_checkpoint(gpu: &Gpu, dir: &Path) -> Result<TestReport> {
    let config = AsrConfig::load_with_overrides(dir.join("config.yaml"), &[] as &[&str])?;
    let r = Recognizer::load(gpu, dir, None)?;
    test_report(&r.model, &r.tokenizer, &r.pipeline, &config)
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
        checkpoint::load_params(
            &dir.join(checkpoint::PARAMS_FILE),
            &checkpoint::read(dir, checkpoint::PARAMS_FILE)?,
            &model.params(),
        )?;
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
                let fused = ShallowFusion::new(asr, CausalLmDecoder(lm), opts.lm_weight)?;
                beam_search(&fused, &[SOS], &cfg)?
            }
            _ => beam_search(&asr, &[SOS], &cfg)?,
        };
        tokens.retain(|&t| t != crate::data::EOS);
        Ok(self.tokenizer.decode(&tokens))
    }
}
