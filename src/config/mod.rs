//! Every hyperparameter of a causal-LM training run, read from YAML (`configs/clm.yaml`).
//!
//! Sections and keys are fixed (`deny_unknown_fields`): a misspelt key is an error naming it,
//! not a silently ignored setting. Missing keys take the defaults below. Errors name the file,
//! the key path and what was expected. Float keys accept `1e-4` as well as `1.0e-4`: serde_yaml
//! 0.9 reads both as numbers, but YAML 1.1 readers (serde_yaml 0.8 among them) read `1e-4` as
//! a string, as every reader does a quoted `"1e-4"`, so float fields also accept a string that
//! parses as a finite number.

use crate::error::{Error, Result};
use crate::ops::Activation;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use yaml::float;

/// `train.time_limit_minutes` must be a positive number of minutes when it is set.
fn time_limit_problem(minutes: Option<f64>) -> Option<(&'static str, String)> {
    let m = minutes.filter(|m| !(m.is_finite() && *m > 0.0))?;
    Some((
        "train.time_limit_minutes",
        format!("{m} must be a positive number of minutes (or null)"),
    ))
}

/// Ids every tokenizer reserves (`[PAD] [UNK] [SOS] [EOS]`, `data::NUM_SPECIAL`).
const SPECIAL_TOKENS: usize = 4;

mod asr;
pub(crate) mod yaml;

pub use asr::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub tokenizer: TokenizerConfig,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub optimizer: OptimizerConfig,
    pub scheduler: SchedulerConfig,
    /// Where the config came from (its file name), the prefix of every error message.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    Char,
    Bpe,
    /// The speech recognizer's characters (A-Z, apostrophe, space) over the text normalised
    /// as transcripts are: an LM for shallow fusion or to initialise the ASR decoder.
    Asr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    pub kind: TokenizerKind,
    /// BPE only: target vocabulary size, the 4 special ids included. A char tokenizer's
    /// vocabulary is the corpus's character set.
    pub vocab_size: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// UTF-8 text file, relative to the working directory.
    pub path: PathBuf,
    /// Contiguous fractions of the text, from its end: test last, val before it.
    #[serde(deserialize_with = "float::f64")]
    pub val_fraction: f64,
    #[serde(deserialize_with = "float::f64")]
    pub test_fraction: f64,
    /// Speech manifests (TSV) whose transcripts are removed from the text before it is split:
    /// an LM for the recognizer must not read the sentences the recognizer is tested on.
    pub exclude_transcripts_of: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub d_model: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(deserialize_with = "float::f64")]
    pub dropout: f64,
    /// Probability of skipping a whole layer in a training step.
    #[serde(deserialize_with = "float::f64")]
    pub layer_drop_rate: f64,
    /// Share the token embedding with the output projection.
    pub weight_tying: bool,
    /// Longest sequence the positional encoding covers (at least `train.seq_len`).
    pub max_seq_len: usize,
    /// gelu (exact, PyTorch's nn.GELU()) | gelu_tanh | relu: the feed-forward nonlinearity.
    pub activation: Activation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub seq_len: usize,
    /// Rows per micro-batch; one optimizer step uses `grad_accumulation` micro-batches.
    pub batch_size: usize,
    pub grad_accumulation: usize,
    #[serde(deserialize_with = "float::f64")]
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    #[serde(deserialize_with = "float::f64")]
    pub max_grad_norm: f64,
    /// Training stops after `epochs` passes or `max_steps` optimizer steps, whichever comes
    /// first; at least one must be set. The default is `max_steps: 400`, `epochs: null`: set
    /// `max_steps: null` to train by epochs alone.
    pub epochs: Option<usize>,
    pub max_steps: Option<usize>,
    /// Evaluate on `eval_batches` validation batches every `eval_interval` steps.
    pub eval_interval: usize,
    pub eval_batches: usize,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Print training loss every `log_interval` steps.
    pub log_interval: usize,
    /// What a step whose loss or gradient norm is NaN or infinite does (its update is never
    /// applied): `stop` the run, or `skip` it and go on.
    pub on_non_finite: NonFinitePolicy,
    /// Under `skip`, the run still stops after this many such steps in a row.
    pub max_skipped_steps: usize,
    /// Stop training when this much wall-clock time is spent, with the learning-rate
    /// schedule shrunk to the steps that fit (null: no limit).
    pub time_limit_minutes: Option<f64>,
    /// f32 | mixed: see `Precision`.
    pub precision: Precision,
    /// The dynamic loss scale of mixed precision.
    pub loss_scale: LossScaleConfig,
}

/// `train.precision`: `f32` trains in f32 throughout; `mixed` multiplies in half precision
/// as PyTorch's autocast does for matmuls (operands rounded to f16 where the adapter has
/// shader-f16, tensor cores where it has cooperative matrices; f32 sums, f32 results, f32
/// master weights and optimizer) with dynamic loss scaling (`train::loss_scale`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    Mixed,
}

/// `train.loss_scale`, read under `precision: mixed`: the first scale and how many updates in
/// a row without overflow double it (PyTorch's GradScaler defaults: 65,536 and 2,000).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossScaleConfig {
    #[serde(deserialize_with = "float::f64")]
    pub initial: f64,
    pub growth_interval: usize,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        LossScaleConfig {
            initial: 65536.0,
            growth_interval: 2000,
        }
    }
}

/// The problem with a `train.loss_scale` section, if any: what both trainers' configs check.
pub(crate) fn loss_scale_problem(ls: &LossScaleConfig) -> Option<(&'static str, String)> {
    if !(ls.initial.is_finite() && (1.0..=f32::MAX as f64).contains(&ls.initial)) {
        return Some((
            "train.loss_scale.initial",
            format!("{} must be a number >= 1", ls.initial),
        ));
    }
    if ls.growth_interval == 0 {
        return Some((
            "train.loss_scale.growth_interval",
            "must be at least 1, got 0".to_string(),
        ));
    }
    None
}

/// `train.on_non_finite`: the GPU never applies a step whose loss or gradient norm is not
/// finite; this says whether training then stops (naming the step) or goes on with the next
/// batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    #[default]
    Stop,
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    #[serde(rename = "sgd")]
    Sgd,
    #[serde(rename = "adam")]
    Adam,
    #[serde(rename = "adamw")]
    AdamW,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    #[serde(deserialize_with = "float::f64")]
    pub lr: f64,
    /// Adam/AdamW moment decay rates.
    #[serde(deserialize_with = "float::pair")]
    pub betas: [f64; 2],
    #[serde(deserialize_with = "float::f64")]
    pub eps: f64,
    /// Decoupled for AdamW, L2 for SGD and Adam.
    #[serde(deserialize_with = "float::f64")]
    pub weight_decay: f64,
    /// SGD only.
    #[serde(deserialize_with = "float::f64")]
    pub momentum: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    Constant,
    Cosine,
    CosineWarmRestarts,
    ReduceOnPlateau,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupKind {
    Linear,
    Exponential,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    pub kind: SchedulerKind,
    /// Steps of warmup (0: none) before `kind` takes over.
    pub warmup_steps: usize,
    pub warmup: WarmupKind,
    /// Floor of the cosine schedules.
    #[serde(deserialize_with = "float::f64")]
    pub min_lr: f64,
    /// cosine_warm_restarts: steps per cycle.
    pub restart_period: usize,
    /// reduce_on_plateau: multiply the lr by `factor` after `patience` evaluations without a
    /// better validation loss.
    #[serde(deserialize_with = "float::f64")]
    pub factor: f64,
    pub patience: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tokenizer: TokenizerConfig::default(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            optimizer: OptimizerConfig::default(),
            scheduler: SchedulerConfig::default(),
            origin: "<defaults>".to_string(),
        }
    }
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        TokenizerConfig {
            kind: TokenizerKind::Char,
            vocab_size: 1024,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            path: PathBuf::from("data/shakespeare.txt"),
            val_fraction: 0.05,
            test_fraction: 0.05,
            exclude_transcripts_of: Vec::new(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            d_model: 128,
            d_ff: 512,
            num_layers: 4,
            num_heads: 4,
            dropout: 0.1,
            layer_drop_rate: 0.0,
            weight_tying: true,
            max_seq_len: 256,
            activation: Activation::Gelu,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seq_len: 128,
            batch_size: 16,
            grad_accumulation: 1,
            label_smoothing: 0.0,
            max_grad_norm: 1.0,
            epochs: None,
            max_steps: Some(400),
            eval_interval: 100,
            eval_batches: 8,
            seed: 42,
            out_dir: PathBuf::from("runs/clm"),
            log_interval: 10,
            on_non_finite: NonFinitePolicy::Stop,
            max_skipped_steps: 10,
            time_limit_minutes: None,
            precision: Precision::F32,
            loss_scale: LossScaleConfig::default(),
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            lr: 3e-3,
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.01,
            momentum: 0.9,
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            kind: SchedulerKind::Cosine,
            warmup_steps: 40,
            warmup: WarmupKind::Linear,
            min_lr: 3e-4,
            restart_period: 1000,
            factor: 0.5,
            patience: 3,
        }
    }
}

impl Config {
    /// Read, parse and validate a YAML config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        Config::load_with_overrides(path, &[] as &[&str])
    }

    /// Read and parse a YAML config file, apply `--set key.path=value` overrides in order,
    /// then validate (so an override can fix a value the file gets wrong).
    pub fn load_with_overrides(
        path: impl AsRef<Path>,
        overrides: &[impl AsRef<str>],
    ) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        for spec in overrides {
            config.set(spec.as_ref())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parse and validate YAML text; `origin` names it in errors (a file name, "--config").
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config> {
        let config = Config::parse(text, origin)?;
        config.validate()?;
        Ok(config)
    }

    fn parse(text: &str, origin: &str) -> Result<Config> {
        let mut config: Config = yaml::parse(text, origin)?;
        config.origin = origin.to_string();
        Ok(config)
    }

    /// Apply one `key.path=value` override (value in YAML syntax: `2`, `1e-4`, `bpe`,
    /// `[0.9, 0.95]`) and validate the result. Unknown keys are errors that list the known ones.
    pub fn apply_override(&mut self, spec: &str) -> Result<()> {
        let mut updated = self.clone();
        updated.set(spec)?;
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    /// `apply_override` without the validation.
    fn set(&mut self, spec: &str) -> Result<()> {
        let origin = self.origin.clone();
        *self = yaml::set(&*self, spec, &origin)?;
        self.origin = origin;
        Ok(())
    }

    /// The config as YAML (all keys, defaults included): what a run directory records.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|e| Error::format(&self.origin, e))
    }

    /// Optimizer steps the run takes when the training split has `batches_per_epoch` batches:
    /// `max_steps`, or `epochs` passes of `batches_per_epoch / grad_accumulation` steps
    /// (at least 1 per epoch), whichever is smaller.
    pub fn total_steps(&self, batches_per_epoch: usize) -> usize {
        let per_epoch = (batches_per_epoch / self.train.grad_accumulation.max(1)).max(1);
        let from_epochs = self.train.epochs.map(|e| e.saturating_mul(per_epoch));
        match (from_epochs, self.train.max_steps) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 0,
        }
    }

    /// Reject values no run can use; the error names the file and the key.
    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            Some((key, msg)) => Err(Error::format(&self.origin, format!("{key}: {msg}"))),
            None => Ok(()),
        }
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        let (tok, data, m, t, o, s) = (
            &self.tokenizer,
            &self.data,
            &self.model,
            &self.train,
            &self.optimizer,
            &self.scheduler,
        );
        let at_least_one = [
            ("tokenizer.vocab_size", tok.vocab_size),
            ("model.d_model", m.d_model),
            ("model.d_ff", m.d_ff),
            ("model.num_layers", m.num_layers),
            ("model.num_heads", m.num_heads),
            ("model.max_seq_len", m.max_seq_len),
            ("train.seq_len", t.seq_len),
            ("train.batch_size", t.batch_size),
            ("train.grad_accumulation", t.grad_accumulation),
            ("train.epochs", t.epochs.unwrap_or(1)),
            ("train.max_steps", t.max_steps.unwrap_or(1)),
            ("train.eval_interval", t.eval_interval),
            ("train.eval_batches", t.eval_batches),
            ("train.log_interval", t.log_interval),
            ("scheduler.restart_period", s.restart_period),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Some((key, "must be at least 1, got 0".to_string()));
        }
        let unit_interval = [
            ("data.val_fraction", data.val_fraction),
            ("data.test_fraction", data.test_fraction),
            ("model.dropout", m.dropout),
            ("model.layer_drop_rate", m.layer_drop_rate),
            ("train.label_smoothing", t.label_smoothing),
            ("optimizer.betas[0]", o.betas[0]),
            ("optimizer.betas[1]", o.betas[1]),
            ("optimizer.momentum", o.momentum),
        ];
        if let Some((key, v)) = unit_interval.iter().find(|(_, v)| !(0.0..1.0).contains(v)) {
            return Some((key, format!("{v} is outside [0, 1)")));
        }
        if data.val_fraction == 0.0 {
            return Some((
                "data.val_fraction",
                "is 0, but validation picks the best checkpoint: give it a part of the text \
                 (e.g. 0.05)"
                    .to_string(),
            ));
        }
        let positive = [("optimizer.lr", o.lr), ("optimizer.eps", o.eps)];
        if let Some((key, v)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Some((key, format!("{v} must be a positive number")));
        }
        let non_negative = [
            ("train.max_grad_norm", t.max_grad_norm),
            ("optimizer.weight_decay", o.weight_decay),
            ("scheduler.min_lr", s.min_lr),
        ];
        if let Some((key, v)) = non_negative
            .iter()
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return Some((key, format!("{v} must be a number >= 0")));
        }
        if let Some(problem) = time_limit_problem(t.time_limit_minutes) {
            return Some(problem);
        }
        if let Some(problem) = loss_scale_problem(&t.loss_scale) {
            return Some(problem);
        }
        if tok.kind == TokenizerKind::Bpe && tok.vocab_size <= SPECIAL_TOKENS {
            return Some((
                "tokenizer.vocab_size",
                format!(
                    "{} leaves no room beside the {SPECIAL_TOKENS} special tokens",
                    tok.vocab_size
                ),
            ));
        }
        if data.path.as_os_str().is_empty() {
            return Some(("data.path", "is empty; expected a text file".to_string()));
        }
        if data.val_fraction + data.test_fraction >= 1.0 {
            return Some((
                "data.test_fraction",
                format!(
                    "data.val_fraction + data.test_fraction = {} leaves nothing to train on",
                    data.val_fraction + data.test_fraction
                ),
            ));
        }
        if m.d_model % m.num_heads != 0 {
            return Some((
                "model.num_heads",
                format!(
                    "{} does not divide model.d_model = {}",
                    m.num_heads, m.d_model
                ),
            ));
        }
        if m.max_seq_len < t.seq_len {
            return Some((
                "model.max_seq_len",
                format!(
                    "{} is shorter than train.seq_len = {}",
                    m.max_seq_len, t.seq_len
                ),
            ));
        }
        if t.epochs.is_none() && t.max_steps.is_none() {
            return Some((
                "train.max_steps",
                "neither train.epochs nor train.max_steps is set; set one (or both: training stops \
                 at whichever comes first)"
                    .to_string(),
            ));
        }
        if t.out_dir.as_os_str().is_empty() {
            return Some((
                "train.out_dir",
                "is empty; expected a directory".to_string(),
            ));
        }
        if !(s.factor > 0.0 && s.factor < 1.0) {
            return Some((
                "scheduler.factor",
                format!("{} is outside (0, 1)", s.factor),
            ));
        }
        None
    }
}
