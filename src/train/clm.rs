//! The causal-LM job end to end (what `examples/train_clm.rs` runs): corpus -> tokenizer ->
//! model -> training with evaluation, samples, metrics, checkpoints and a plot.
//!
//! Run directory (`train.out_dir`): `metrics.jsonl`, `curves.png`, `tokenizer.json`,
//! `config.yaml`, and `checkpoints/` with `latest` (resumable) and `best` (lowest validation
//! character perplexity). Each checkpoint holds `model.safetensors` (PyTorch names and
//! layouts), `optimizer.safetensors`, `state.json`, `config.yaml` and `tokenizer.json`.

use super::lm::LmTrainer;
use super::metrics::{read_records, MetricsLog};
use super::non_finite::NonFiniteGuard;
use super::schedule::{Decay, LrSchedule, Warmup};
use crate::checkpoint;
use crate::config::{
    Config, OptimizerConfig, OptimizerKind, SchedulerConfig, SchedulerKind, WarmupKind,
};
use crate::data::{Batcher, Corpus, PAD};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inference::clm::{model_config, sample_text};
use crate::models::DecoderOnlyTransformer;
use crate::nn::Module;
use crate::ops::AdamWParams;
use crate::optim::Optimizer;
use crate::report::{plot_curves, Series};
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct ClmSummary {
    pub steps: usize,
    pub losses: Vec<f32>,
    pub val_char_perplexity: f64,
    pub test_char_perplexity: f64,
    pub unigram_char_perplexity: f64,
    pub tokens_per_second: f64,
    pub out_dir: PathBuf,
}

pub struct RunOptions {
    pub resume: bool,
    /// Progress bar and samples on stderr.
    pub verbose: bool,
    /// Stop after this many steps of this invocation (tests simulate an interruption).
    pub stop_after: Option<usize>,
}

/// The learning-rate schedule a config's `optimizer.lr` and `scheduler` section describe.
pub fn schedule(o: &OptimizerConfig, s: &SchedulerConfig, total_steps: usize) -> LrSchedule {
    let warmup = match s.warmup {
        WarmupKind::Linear => Warmup::Linear,
        WarmupKind::Exponential => Warmup::Exponential,
    };
    let decay = match s.kind {
        SchedulerKind::Constant => Decay::Constant,
        SchedulerKind::Cosine => Decay::Cosine,
        SchedulerKind::CosineWarmRestarts => Decay::CosineWarmRestarts {
            period: s.restart_period,
        },
        SchedulerKind::ReduceOnPlateau => Decay::ReduceOnPlateau {
            factor: s.factor,
            patience: s.patience,
        },
    };
    LrSchedule::new(o.lr, s.min_lr, s.warmup_steps, warmup, decay, total_steps)
}

/// The optimizer a config's `optimizer` section describes, over `params`.
pub fn optimizer(params: Vec<Tensor>, o: &OptimizerConfig) -> Result<Optimizer> {
    let hyper = AdamWParams {
        lr: o.lr as f32,
        beta1: o.betas[0] as f32,
        beta2: o.betas[1] as f32,
        eps: o.eps as f32,
        weight_decay: o.weight_decay as f32,
        coupled_weight_decay: o.kind == OptimizerKind::Adam,
    };
    match o.kind {
        OptimizerKind::Sgd => Optimizer::sgd(
            params,
            o.lr as f32,
            o.momentum as f32,
            o.weight_decay as f32,
        ),
        OptimizerKind::Adam | OptimizerKind::AdamW => Optimizer::new(params, hyper),
    }
}

/// Cross-entropy (nats per token) of a unigram model fitted on `train` (add-one smoothing),
/// evaluated on `eval`: the baseline a language model must beat.
pub fn unigram_cross_entropy(train: &[u32], eval: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for &t in train {
        counts[t as usize] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let n = eval.len().max(1) as f64;
    eval.iter()
        .map(|&t| -(counts[t as usize] / total).ln())
        .sum::<f64>()
        / n
}

/// exp(token cross-entropy / characters per token): comparable across tokenizers.
pub fn char_perplexity(token_ce: f64, chars_per_token: f64) -> f64 {
    (token_ce / chars_per_token).exp()
}

/// JSON has no infinity: "nothing yet" is stored as f64::MAX.
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        f64::MAX
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TrainState {
    step: usize,
    best_val_char_ppl: f64,
    optimizer_steps: Vec<u32>,
    plateau: (f64, f64, usize),
}

fn train_state(trainer: &LmTrainer, step: usize, best: f64) -> TrainState {
    let (scale, best_val, bad) = trainer.schedule.plateau_state();
    TrainState {
        step,
        best_val_char_ppl: finite(best),
        optimizer_steps: trainer.optimizer.steps().to_vec(),
        plateau: (scale, finite(best_val), bad),
    }
}

fn save_checkpoint(
    trainer: &LmTrainer,
    root: &Path,
    name: &str,
    state: &TrainState,
    config_yaml: &str,
    tokenizer_json: &[u8],
) -> Result<()> {
    let params = trainer.model.params();
    let named: Vec<(String, &crate::Tensor)> = params
        .iter()
        .map(|p| (p.name().unwrap_or_default().to_string(), p))
        .collect();
    let files = vec![
        (
            checkpoint::PARAMS_FILE,
            checkpoint::tensors_to_bytes(&named)?,
        ),
        (
            "optimizer.safetensors",
            checkpoint::tensors_to_bytes(&trainer.optimizer.state())?,
        ),
        (
            "state.json",
            serde_json::to_vec_pretty(state).map_err(|e| Error::Gpu(e.to_string()))?,
        ),
        ("config.yaml", config_yaml.as_bytes().to_vec()),
        ("tokenizer.json", tokenizer_json.to_vec()),
    ];
    checkpoint::save(root, name, &files)?;
    Ok(())
}

pub fn run(config: &Config, opts: &RunOptions) -> Result<ClmSummary> {
    let gpu = Gpu::shared()?;
    let out_dir = config.train.out_dir.clone();
    let ckpt_root = out_dir.join("checkpoints");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    if opts.verbose {
        eprintln!("adapter: {}", gpu.adapter_name());
    }

    // Data and tokenizer (rebuilt deterministically from the corpus and config).
    let mut corpus = match config.data.exclude_transcripts_of.as_slice() {
        [] => Corpus::load(
            &config.data.path,
            config.data.val_fraction,
            config.data.test_fraction,
        )?,
        manifests => {
            let text = crate::data::read_text(&config.data.path)?;
            let (text, removed) = crate::data::asr::without_transcripts_of(&text, manifests)?;
            if opts.verbose {
                eprintln!("data: {removed} lines spoken in the excluded manifests removed");
            }
            Corpus::split(&text, config.data.val_fraction, config.data.test_fraction)?
        }
    };
    for part in [&mut corpus.train, &mut corpus.val, &mut corpus.test] {
        *part = config.tokenizer.prepare(part);
    }
    let tokenizer = config.tokenizer.build(&corpus.train)?;
    let tok_path = out_dir.join("tokenizer.json");
    tokenizer.save(&tok_path)?;
    let tokenizer_json = std::fs::read(&tok_path).map_err(|e| Error::io(&tok_path, e))?;
    let splits = corpus.encode(&tokenizer);
    let t = &config.train;
    let train_batches = Batcher::new(splits.train.clone(), t.seq_len, t.batch_size, t.seed)?;
    let val = Batcher::new(splits.val.clone(), t.seq_len, t.batch_size, t.seed)?
        .eval_batches(t.eval_batches);
    let test = Batcher::new(splits.test.clone(), t.seq_len, t.batch_size, t.seed)?
        .eval_batches(t.eval_batches);
    let val_chars_per_token = corpus.val.chars().count() as f64 / splits.val.len().max(1) as f64;
    let test_chars_per_token = corpus.test.chars().count() as f64 / splits.test.len().max(1) as f64;
    let unigram = char_perplexity(
        unigram_cross_entropy(&splits.train, &splits.val, tokenizer.vocab_size()),
        val_chars_per_token,
    );

    // Model, optimizer, schedule.
    let model =
        DecoderOnlyTransformer::new(&gpu, model_config(config, tokenizer.vocab_size()), t.seed)?;
    let optimizer = optimizer(model.params(), &config.optimizer)?;
    let total_steps = config.total_steps(train_batches.batches_per_epoch());
    let mut trainer = LmTrainer {
        schedule: schedule(&config.optimizer, &config.scheduler, total_steps),
        model,
        optimizer,
        label_smoothing: t.label_smoothing as f32,
        max_grad_norm: t.max_grad_norm as f32,
        pad_id: PAD,
        step: 0,
        seed: t.seed,
    };
    let config_yaml = config.to_yaml()?;
    std::fs::write(out_dir.join("config.yaml"), &config_yaml)
        .map_err(|e| Error::io(out_dir.join("config.yaml"), e))?;

    let mut best = f64::INFINITY;
    for line in checkpoint::recover(&ckpt_root)? {
        if opts.verbose {
            eprintln!("checkpoints: {line}");
        }
    }
    if opts.resume {
        if let Some(dir) = checkpoint::latest(&ckpt_root)? {
            let state_path = dir.join("state.json");
            let state: TrainState = serde_json::from_slice(&checkpoint::read(&dir, "state.json")?)
                .map_err(|e| Error::format(&state_path, e))?;
            let params_file = dir.join(checkpoint::PARAMS_FILE);
            checkpoint::load_params(
                &params_file,
                &checkpoint::read(&dir, checkpoint::PARAMS_FILE)?,
                &trainer.model.params(),
            )?;
            let opt_file = dir.join("optimizer.safetensors");
            trainer.optimizer.restore(
                &opt_file,
                &checkpoint::read(&dir, "optimizer.safetensors")?,
                &state.optimizer_steps,
            )?;
            trainer.schedule.set_plateau_state(state.plateau);
            trainer.step = state.step;
            best = state.best_val_char_ppl;
            if opts.verbose {
                eprintln!("resumed from {} at step {}", dir.display(), state.step);
            }
        }
    }

    let mut log = MetricsLog::open(&out_dir.join("metrics.jsonl"), opts.resume)?;
    let accum = t.grad_accumulation.max(1);
    let mut stream = train_batches.stream(trainer.step * accum)?;
    let bar = opts
        .verbose
        .then(|| progress_bar(total_steps as u64, trainer.step as u64));
    let mut losses = Vec::new();
    let mut guard = NonFiniteGuard::new(t.on_non_finite, t.max_skipped_steps);
    let mut last_val = f64::NAN;
    let (mut tokens_seen, started) = (0usize, Instant::now());
    let first_step = trainer.step;
    while trainer.step < total_steps {
        if opts
            .stop_after
            .is_some_and(|n| trainer.step - first_step >= n)
        {
            break;
        }
        if super::interrupt::stop_requested() {
            let step = trainer.step;
            let name = format!("step-{step:07}");
            if !ckpt_root.join(&name).exists() {
                let state = train_state(&trainer, step, best);
                save_checkpoint(
                    &trainer,
                    &ckpt_root,
                    &name,
                    &state,
                    &config_yaml,
                    &tokenizer_json,
                )?;
            }
            return Err(Error::Interrupted {
                step,
                checkpoint: ckpt_root.join(name),
            });
        }
        let micro: Vec<_> = (&mut stream).take(accum).collect();
        let stats = trainer.train_step(&micro)?;
        if !guard.after_step(trainer.step, &stats, &mut log)? {
            losses.push(stats.loss);
        }
        tokens_seen += stats.tokens;
        let tps = tokens_seen as f64 / started.elapsed().as_secs_f64();
        let step = trainer.step;
        if step.is_multiple_of(t.log_interval.max(1)) || step == total_steps {
            log.write(
                "train",
                &[
                    ("step", step as f64),
                    ("loss", stats.loss as f64),
                    ("lr", stats.lr),
                    ("tokens_per_s", tps),
                ],
            )?;
        }
        if let Some(b) = &bar {
            b.set_position(step as u64);
            b.set_message(format!("loss {:.3} | {:.0} tok/s", stats.loss, tps));
        }
        if step.is_multiple_of(t.eval_interval.max(1)) || step == total_steps {
            let val_ce = trainer.evaluate(&val)?;
            trainer.schedule.observe_validation(val_ce);
            last_val = char_perplexity(val_ce, val_chars_per_token);
            log.write(
                "eval",
                &[
                    ("step", step as f64),
                    ("val_loss", val_ce),
                    ("val_token_perplexity", val_ce.exp()),
                    ("val_char_perplexity", last_val),
                ],
            )?;
            let sample = sample_text(
                &trainer.model,
                &tokenizer,
                &config.tokenizer.prepare("ROMEO:\n"),
                120,
                step as u64,
            )?;
            let msg = format!("step {step}: val loss {val_ce:.3}, char perplexity {last_val:.2} (unigram {unigram:.2})\n--- sample ---\n{sample}\n--------------");
            match &bar {
                // A hidden bar (stderr is not a terminal) prints nothing: fall back to eprintln.
                Some(b) if !b.is_hidden() => b.println(msg),
                _ if opts.verbose => eprintln!("{msg}"),
                _ => {}
            }
            if last_val < best {
                best = last_val;
                let state = train_state(&trainer, step, best);
                save_checkpoint(
                    &trainer,
                    &ckpt_root,
                    "best",
                    &state,
                    &config_yaml,
                    &tokenizer_json,
                )?;
            }
            let state = train_state(&trainer, step, best);
            save_checkpoint(
                &trainer,
                &ckpt_root,
                &format!("step-{step:07}"),
                &state,
                &config_yaml,
                &tokenizer_json,
            )?;
            checkpoint::prune(&ckpt_root, "step-", 2)?;
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    let test_ce = trainer.evaluate(&test)?;
    let summary = ClmSummary {
        steps: trainer.step,
        losses,
        val_char_perplexity: last_val,
        test_char_perplexity: char_perplexity(test_ce, test_chars_per_token),
        unigram_char_perplexity: unigram,
        tokens_per_second: tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        out_dir: out_dir.clone(),
    };
    log.write(
        "test",
        &[
            ("step", trainer.step as f64),
            ("test_loss", test_ce),
            ("test_char_perplexity", summary.test_char_perplexity),
            ("unigram_char_perplexity", unigram),
        ],
    )?;
    write_plot(&out_dir)?;
    Ok(summary)
}

fn progress_bar(total: u64, at: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] step {pos}/{len} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(at);
    bar
}

/// `curves.png` from `metrics.jsonl`: training loss and validation loss against steps.
pub fn write_plot(out_dir: &Path) -> Result<()> {
    let path = out_dir.join("metrics.jsonl");
    // A resumed run may have logged some steps twice: keep the last value of each step.
    let points = |kind: &str, field: &str| -> Result<Vec<(f64, f64)>> {
        let mut by_step = std::collections::BTreeMap::new();
        for r in read_records(&path, kind)? {
            if let (Some(step), Some(y)) = (
                r.get("step").and_then(|v| v.as_f64()),
                r.get(field).and_then(|v| v.as_f64()),
            ) {
                by_step.insert(step as u64, y);
            }
        }
        Ok(by_step.into_iter().map(|(s, y)| (s as f64, y)).collect())
    };
    let series = vec![
        Series {
            name: "train loss".into(),
            points: points("train", "loss")?,
        },
        Series {
            name: "val loss".into(),
            points: points("eval", "val_loss")?,
        },
    ];
    plot_curves(
        &out_dir.join("curves.png"),
        "CLM training",
        &series,
        false,
        800,
        500,
    )
}
