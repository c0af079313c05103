//! The causal-LM job (what `examples/train_clm.rs` runs): corpus -> tokenizer -> model, then
//! the shared loop (`fit`) with this task's evaluation (validation loss, token and character
//! perplexity, a sampled continuation) and test.
//!
//! Run directory (`train.out_dir`): `metrics.jsonl`, `curves.png`, `tokenizer.json`,
//! `config.yaml`, and `checkpoints/` with `latest` (resumable), `best` (lowest validation
//! character perplexity) and the two newest `step-*`. Each checkpoint holds
//! `model.safetensors` (PyTorch names and layouts), `optimizer.safetensors`, `state.json`,
//! `config.yaml` and `tokenizer.json`.

use super::distributed::{agree, Collective, Shard, SingleProcess};
use super::fit::{fit, open_run, LoopConfig, RunOptions};
use super::task::{Evaluation, Task};
use super::trainer::Trainer;
use crate::config::Config;
use crate::data::{build_tokenizer, prepare_text, Batch, Batcher, Corpus, Tokenizer, PAD};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::inference::clm::{model_config, sample_text};
use crate::models::DecoderOnlyTransformer;
use crate::nn::{Ctx, Module};
use crate::ops;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};

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
    /// `--resume` found the run finished: nothing was trained.
    pub already_finished: bool,
}

/// Train the causal LM `config` describes.
pub fn run(config: &Config, opts: &RunOptions) -> Result<ClmSummary> {
    run_with(config, opts, &SingleProcess)
}

/// `run` as one process of a data-parallel run (`coll`); only the first one writes files.
pub fn run_with(config: &Config, opts: &RunOptions, coll: &dyn Collective) -> Result<ClmSummary> {
    let (dir, gpu) = open_run(&config.train.out_dir, opts, coll)?;
    let verbose = opts.verbose && coll.is_root();
    let mut task = agree(coll, ClmTask::new(&gpu, config, verbose))?;
    let t = &config.train;
    let mut trainer = Trainer::from_config(
        task.model.params(),
        &config.optimizer,
        &config.scheduler,
        task.total_steps(),
        t.max_grad_norm,
        t.seed,
    )?;
    trainer.set_precision(t.precision, &t.loss_scale, verbose);
    let lc = LoopConfig {
        log_interval: t.log_interval,
        eval_interval: t.eval_interval,
        time_limit_minutes: t.time_limit_minutes,
        on_non_finite: t.on_non_finite,
        max_skipped_steps: t.max_skipped_steps,
    };
    let r = fit(&mut task, &mut trainer, dir, coll, &lc, opts)?;
    Ok(ClmSummary {
        steps: r.steps,
        val_char_perplexity: r.metric("val_char_perplexity"),
        test_char_perplexity: r.metric("test_char_perplexity"),
        unigram_char_perplexity: task.unigram,
        tokens_per_second: r.rate,
        out_dir: r.out_dir,
        already_finished: r.already_finished,
        losses: r.losses,
    })
}

/// The causal LM as a `Task`: the corpus split and tokenized, the model, and what scores it.
pub struct ClmTask {
    pub model: DecoderOnlyTransformer,
    pub tokenizer: Tokenizer,
    config: Config,
    train: Batcher,
    val: Vec<Batch>,
    test: Vec<Batch>,
    val_chars_per_token: f64,
    test_chars_per_token: f64,
    /// Character perplexity of a unigram model on the validation text: the baseline.
    pub unigram: f64,
    files: Vec<(String, Vec<u8>)>,
}

impl ClmTask {
    pub fn new(gpu: &Gpu, config: &Config, verbose: bool) -> Result<ClmTask> {
        let corpus = load_corpus(config, verbose)?;
        let tokenizer = build_tokenizer(&config.tokenizer, &corpus.train)?;
        let splits = corpus.encode(&tokenizer);
        let t = &config.train;
        let batcher =
            |tokens: &[u32]| Batcher::new(tokens.to_vec(), t.seq_len, t.batch_size, t.seed);
        let train = batcher(&splits.train)?;
        if train.batches_per_epoch() == 0 {
            return Err(Error::format(
                &config.origin,
                format!(
                    "data.path: the training part of {} is {} tokens, less than one batch of \
                     train.batch_size x train.seq_len = {} x {}: lower them or give more text",
                    config.data.path.display(),
                    splits.train.len(),
                    t.batch_size,
                    t.seq_len
                ),
            ));
        }
        let per_token =
            |text: &str, tokens: &[u32]| text.chars().count() as f64 / tokens.len().max(1) as f64;
        let val_chars_per_token = per_token(&corpus.val, &splits.val);
        let unigram = char_perplexity(
            unigram_cross_entropy(&splits.train, &splits.val, tokenizer.vocab_size()),
            val_chars_per_token,
        );
        let model =
            DecoderOnlyTransformer::new(gpu, model_config(config, tokenizer.vocab_size()), t.seed)?;
        let files = vec![
            ("config.yaml".to_string(), config.to_yaml()?.into_bytes()),
            ("tokenizer.json".to_string(), tokenizer.to_json_bytes()?),
        ];
        Ok(ClmTask {
            val: batcher(&splits.val)?.eval_batches(t.eval_batches),
            test: batcher(&splits.test)?.eval_batches(t.eval_batches),
            test_chars_per_token: per_token(&corpus.test, &splits.test),
            val_chars_per_token,
            unigram,
            model,
            tokenizer,
            config: config.clone(),
            train,
            files,
        })
    }

    /// Token-weighted mean cross-entropy (no label smoothing, no dropout) over `batches`.
    pub fn mean_loss(&self, batches: &[Batch]) -> Result<f64> {
        let (sum, count) = self.loss_sums(batches)?;
        Ok(if count == 0.0 { f64::NAN } else { sum / count })
    }

    /// (sum of token cross-entropies, tokens) over `batches`.
    fn loss_sums(&self, batches: &[Batch]) -> Result<(f64, f64)> {
        let _g = crate::no_grad();
        let (mut sum, mut count) = (0.0f64, 0.0f64);
        for batch in batches {
            let n = batch.targets.iter().filter(|&&t| t != PAD).count() as f64;
            if n > 0.0 {
                let loss = lm_loss(&self.model, batch, &Ctx::eval(), 0.0)?.to_scalar()?;
                sum += loss as f64 * n;
                count += n;
            }
        }
        Ok((sum, count))
    }
}

/// The text of `data.path` (without the lines spoken in `data.exclude_transcripts_of`), split
/// into train / val / test and prepared for the tokenizer.
fn load_corpus(config: &Config, verbose: bool) -> Result<Corpus> {
    let d = &config.data;
    let mut corpus = match d.exclude_transcripts_of.as_slice() {
        [] => Corpus::load(&d.path, d.val_fraction, d.test_fraction)?,
        manifests => {
            let text = crate::data::read_text(&d.path)?;
            let (text, removed) = crate::data::asr::without_transcripts_of(&text, manifests)?;
            if verbose {
                eprintln!("data: {removed} lines spoken in the excluded manifests removed");
            }
            Corpus::split(&text, d.val_fraction, d.test_fraction)?
        }
    };
    for part in [&mut corpus.train, &mut corpus.val, &mut corpus.test] {
        *part = prepare_text(&config.tokenizer, part);
    }
    Ok(corpus)
}

/// The rows of `batch` that process `shard` trains on.
fn rows(batch: &Batch, shard: Shard) -> Batch {
    if shard.size == 1 {
        return batch.clone();
    }
    let t = batch.seq_len;
    let picked: Vec<usize> = (0..batch.batch_size)
        .skip(shard.rank)
        .step_by(shard.size)
        .collect();
    let gather = |v: &[u32]| {
        picked
            .iter()
            .flat_map(|&r| v[r * t..(r + 1) * t].iter().copied())
            .collect()
    };
    Batch {
        inputs: gather(&batch.inputs),
        targets: gather(&batch.targets),
        lens: picked.iter().map(|&r| batch.lens[r]).collect(),
        batch_size: picked.len(),
        seq_len: t,
    }
}

/// Mean token cross-entropy of `batch` under `model` ([] tensor on the tape, not read back).
pub fn lm_loss(
    model: &DecoderOnlyTransformer,
    batch: &Batch,
    ctx: &Ctx,
    label_smoothing: f32,
) -> Result<Tensor> {
    let gpu = model.token_embedding.weight.gpu();
    let (b, t) = (batch.batch_size, batch.seq_len);
    let ids = Tensor::from_u32(gpu, &batch.inputs, &[b, t])?;
    let targets = Tensor::from_u32(gpu, &batch.targets, &[b * t])?;
    let lens = Tensor::from_u32(gpu, &batch.lens, &[b])?;
    let logits = model.forward(&ids, Some(&lens), ctx)?; // [B, T, V]
    let logits = logits.reshape(&[b * t, model.config.vocab_size])?;
    ops::cross_entropy(&logits, &targets, PAD, label_smoothing)
}

impl Task for ClmTask {
    type Batch = Batch;
    const NAME: &'static str = "CLM";
    const RATE: &'static str = "tokens_per_s";
    const PLOT_METRIC: &'static str = "val_loss";
    const SIZE_KEYS: &'static str = "train.batch_size or train.seq_len (or the model's size)";

    fn params(&self) -> Vec<Tensor> {
        self.model.params()
    }

    fn total_steps(&self) -> usize {
        self.config.total_steps(self.train.batches_per_epoch())
    }

    fn batches(&mut self, step: usize, shard: Shard) -> Result<Vec<Batch>> {
        // Step s takes global batches s * accum .. (s + 1) * accum: a resumed run sees the
        // batches an uninterrupted one would. A process of a data-parallel run takes its rows.
        let accum = self.config.train.grad_accumulation.max(1);
        let global = self.train.stream(step * accum)?.take(accum);
        if shard.size > self.config.train.batch_size {
            return Err(Error::format(
                &self.config.origin,
                format!(
                    "train.batch_size {} gives {} processes fewer than one row each",
                    self.config.train.batch_size, shard.size
                ),
            ));
        }
        Ok(global.map(|b| rows(&b, shard)).collect())
    }

    fn loss_terms(&self, batch: &Batch) -> f64 {
        batch.targets.iter().filter(|&&t| t != PAD).count() as f64
    }

    fn loss(&self, batch: &Batch, ctx: &Ctx) -> Result<Tensor> {
        lm_loss(
            &self.model,
            batch,
            ctx,
            self.config.train.label_smoothing as f32,
        )
    }

    fn amount(&self, batch: &Batch) -> f64 {
        (batch.batch_size * batch.seq_len) as f64
    }

    fn validation_sums(&mut self, shard: Shard) -> Result<Vec<f64>> {
        let (sum, count) = self.loss_sums(&shard.take(&self.val))?;
        Ok(vec![sum, count])
    }

    fn evaluation(&mut self, step: usize, sums: &[f64], report: bool) -> Result<Evaluation> {
        let val_ce = if sums[1] > 0.0 {
            sums[0] / sums[1]
        } else {
            f64::NAN
        };
        let char_ppl = char_perplexity(val_ce, self.val_chars_per_token);
        let prompt = prepare_text(&self.config.tokenizer, "ROMEO:\n");
        let sample = match report {
            true => sample_text(&self.model, &self.tokenizer, &prompt, 120, step as u64)?,
            false => String::new(),
        };
        Ok(Evaluation {
            metrics: vec![
                ("val_loss", val_ce),
                ("val_token_perplexity", val_ce.exp()),
                ("val_char_perplexity", char_ppl),
            ],
            score: char_ppl,
            report: format!(
                "val loss {val_ce:.3}, char perplexity {char_ppl:.2} (unigram {:.2})\n\
                 --- sample ---\n{sample}\n--------------",
                self.unigram
            ),
            best_files: Vec::new(),
        })
    }

    fn test(&mut self, _best: Option<&Path>) -> Result<Vec<(&'static str, f64)>> {
        // The final model (the best checkpoint is on disk for whoever wants it).
        let test_ce = self.mean_loss(&self.test)?;
        Ok(vec![
            ("test_loss", test_ce),
            (
                "test_char_perplexity",
                char_perplexity(test_ce, self.test_chars_per_token),
            ),
            ("unigram_char_perplexity", self.unigram),
        ])
    }

    fn checkpoint_files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }
}

/// A causal LM ready to train on a text held in memory, without a run directory, evaluation
/// or checkpoints: what a browser page trains (`web::ClmTrainer`) and
/// `examples/page_baseline.rs` times natively. The text is split and tokenized as `run` does
/// it, and training takes its train part.
pub struct ClmTraining {
    pub model: DecoderOnlyTransformer,
    pub tokenizer: Tokenizer,
    pub train: Batcher,
    pub trainer: Trainer,
    label_smoothing: f32,
}

impl ClmTraining {
    pub fn new(gpu: &Gpu, config: &Config, text: &str) -> Result<ClmTraining> {
        let d = &config.data;
        let mut corpus = Corpus::split(text, d.val_fraction, d.test_fraction)?;
        corpus.train = prepare_text(&config.tokenizer, &corpus.train);
        let tokenizer = build_tokenizer(&config.tokenizer, &corpus.train)?;
        let t = &config.train;
        let train = Batcher::new(
            tokenizer.encode(&corpus.train),
            t.seq_len,
            t.batch_size,
            t.seed,
        )?;
        if train.batches_per_epoch() == 0 {
            return Err(Error::format(
                &config.origin,
                "the text's training part is shorter than one batch of train.batch_size x \
                 train.seq_len",
            ));
        }
        let model =
            DecoderOnlyTransformer::new(gpu, model_config(config, tokenizer.vocab_size()), t.seed)?;
        let trainer = Trainer::from_config(
            model.params(),
            &config.optimizer,
            &config.scheduler,
            config.total_steps(train.batches_per_epoch()),
            t.max_grad_norm,
            t.seed,
        )?;
        Ok(ClmTraining {
            model,
            tokenizer,
            train,
            trainer,
            label_smoothing: t.label_smoothing as f32,
        })
    }

    /// One optimizer step on the next batch.
    pub fn step(&mut self) -> Result<super::StepStats> {
        crate::gpu::block_on(self.step_async())
    }

    /// `step` with its readback awaited (a browser page).
    pub async fn step_async(&mut self) -> Result<super::StepStats> {
        let batch = self
            .train
            .stream(self.trainer.step)?
            .next()
            .ok_or_else(|| Error::shape("ClmTraining::step", "the batcher ran dry"))?;
        let (model, smoothing) = (&self.model, self.label_smoothing);
        self.trainer
            .step_async(1, |_, ctx| lm_loss(model, &batch, ctx, smoothing))
            .await
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
