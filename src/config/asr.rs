//! Every hyperparameter of a speech-recognition training run, read from YAML
//! (`configs/asr.yaml`), with the same rules as the CLM config: fixed keys, defaults for
//! missing ones, errors that name the file and the key, `--set key.path=value` overrides.

use super::yaml::{self, float};
use super::{
    loss_scale_problem, time_limit_problem, LossScaleConfig, NonFinitePolicy, OptimizerConfig,
    Precision, SchedulerConfig,
};
use crate::audio::Normalization;
use crate::error::{Error, Result};
use crate::ops::Activation;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    pub data: AsrDataConfig,
    pub features: FeaturesConfig,
    pub model: AsrModelConfig,
    pub train: AsrTrainConfig,
    pub decode: DecodeConfig,
    pub optimizer: OptimizerConfig,
    pub scheduler: SchedulerConfig,
    #[serde(skip)]
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrDataConfig {
    /// Folder of the manifests (`audio<TAB>voice<TAB>transcript`, paths relative to it).
    pub corpus_dir: PathBuf,
    /// Synthesise the bundled corpus there when its manifests are missing.
    pub build_corpus: bool,
    pub train: String,
    pub val: String,
    pub test: String,
    /// Sentences of the test pool spoken by voices never heard in training.
    pub test_voices: String,
    /// More training utterances, read after `train` (the modern text's `train_modern.tsv`).
    pub train_modern: Option<String>,
    /// Held-out sentences of the modern text, training voices (`test_modern.tsv`).
    pub test_modern: Option<String>,
    /// Use only the first N training utterances (None: all).
    pub max_train_utterances: Option<usize>,
    /// What `build_corpus` synthesises.
    pub corpus: CorpusConfig,
}

/// The synthetic corpus: sentences of `text` spoken by TTS voices (see
/// `examples/build_speech_corpus.rs`), utterances per split, deterministic for `seed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusConfig {
    pub text: PathBuf,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub test_voices: usize,
    pub seed: u64,
    /// A second text, of modern English, with its own two splits (none by default).
    pub modern: Option<ModernCorpusConfig>,
}

/// The modern-English text of the corpus: `train` utterances spoken by a wider set of voices
/// with sox effects (`train_modern.tsv`), `test` held-out sentences spoken by the training
/// voices (`test_modern.tsv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModernCorpusConfig {
    pub text: PathBuf,
    pub train: usize,
    pub test: usize,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            text: PathBuf::from("data/shakespeare.txt"),
            train: 4000,
            val: 200,
            test: 200,
            test_voices: 200,
            seed: 1,
            modern: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    pub n_mels: usize,
    #[serde(deserialize_with = "float::f64")]
    pub window_ms: f64,
    #[serde(deserialize_with = "float::f64")]
    pub hop_ms: f64,
    /// global_mvn | cepstral | none
    pub normalization: Normalization,
    pub spec_augment: SpecAugmentSection,
    /// Training copies of each utterance are resampled by one of these factors (1.0: none).
    pub speed_perturb: Vec<f64>,
    /// Chance that white noise is added to a training utterance, at an SNR drawn from the range.
    #[serde(deserialize_with = "float::f64")]
    pub noise_probability: f64,
    #[serde(deserialize_with = "float::pair")]
    pub noise_snr_db: [f64; 2],
    /// Chance that an augmented training copy is band-limited to a telephone's 8 kHz sampling.
    #[serde(deserialize_with = "float::f64")]
    pub narrowband_probability: f64,
    /// Chance that an augmented training copy is re-quantised to 8 bits (dithered, as sox
    /// does), so that the hiss of 8-bit recordings is familiar.
    #[serde(deserialize_with = "float::f64")]
    pub quantize_probability: f64,
    /// Log-mel values more than this many dB below the utterance's loudest are raised to that
    /// level, so that noise below it (8-bit quantisation, hiss) looks like silence (Whisper
    /// clamps 80 dB down). null: no floor.
    pub floor_db: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecAugmentSection {
    pub freq_masks: usize,
    pub max_freq_width: usize,
    pub time_masks: usize,
    pub max_time_width: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrModelConfig {
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    #[serde(deserialize_with = "float::f64")]
    pub dropout: f64,
    /// Channels of both 3x3 convolutions of the speech embedding.
    pub conv_channels: usize,
    /// Product of the two convolutions' time strides (1, 2, 3, 4, 6, 8, ...).
    pub time_reduction: usize,
    /// Loss = CE + ctc_weight x CTC (0: no CTC head).
    #[serde(deserialize_with = "float::f64")]
    pub ctc_weight: f64,
    /// Longest encoder input after time reduction, and longest transcript in tokens.
    pub max_source_len: usize,
    pub max_target_len: usize,
    /// gelu (exact, PyTorch's nn.GELU()) | gelu_tanh | relu: the feed-forward blocks' and
    /// the convolutional stem's nonlinearity.
    pub activation: Activation,
    /// A CLM checkpoint directory whose weights initialise the decoder (same d_model, heads,
    /// d_ff and tokenizer).
    pub init_decoder_from: Option<PathBuf>,
    /// A recognizer checkpoint directory whose parameters and feature normalisation start
    /// this run (fine-tuning: same model sizes; the optimizer and schedule start afresh).
    pub init_from: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrTrainConfig {
    /// A batch holds utterances of similar length, at most `max_batch` of them and at most
    /// `max_frames` padded frames in all.
    pub max_frames: usize,
    pub max_batch: usize,
    pub epochs: Option<usize>,
    pub max_steps: Option<usize>,
    /// Wall-clock budget: training stops when it is spent, and the learning-rate schedule's
    /// horizon shrinks to the steps that fit in it at the measured pace (so the decay still
    /// ends where training does). null: no limit.
    pub time_limit_minutes: Option<f64>,
    #[serde(deserialize_with = "float::f64")]
    pub label_smoothing: f64,
    #[serde(deserialize_with = "float::f64")]
    pub max_grad_norm: f64,
    pub eval_interval: usize,
    /// Validation utterances decoded at each evaluation (CER/WER); 0: all.
    pub eval_utterances: usize,
    pub seed: u64,
    pub out_dir: PathBuf,
    pub log_interval: usize,
    /// As the CLM's `train.on_non_finite` / `max_skipped_steps`.
    pub on_non_finite: NonFinitePolicy,
    pub max_skipped_steps: usize,
    /// As the CLM's `train.precision` / `train.loss_scale`.
    pub precision: Precision,
    pub loss_scale: LossScaleConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// How the recognizer decodes by default, and which validation CER picks the best
    /// checkpoint: `attention` (the decoder, greedy or beam), `ctc` (the CTC head's best
    /// path) or `auto` (whichever is better at each evaluation; the best checkpoint records it).
    pub mode: DecodeMode,
    pub beam_width: usize,
    /// Weight in [0, 1] of the CTC prefix scores in the attention decoder's beam search (joint
    /// CTC/attention decoding, as ESPnet's decoding `ctc_weight`; 0: the decoder alone). Needs
    /// a CTC head.
    #[serde(deserialize_with = "float::f64")]
    pub ctc_weight: f64,
    #[serde(deserialize_with = "float::f64")]
    pub length_penalty: f64,
    /// Shallow fusion weight of a CLM's log-probabilities (0: none).
    #[serde(deserialize_with = "float::f64")]
    pub lm_weight: f64,
}

impl Default for AsrConfig {
    fn default() -> Self {
        AsrConfig {
            data: AsrDataConfig::default(),
            features: FeaturesConfig::default(),
            model: AsrModelConfig::default(),
            train: AsrTrainConfig::default(),
            decode: DecodeConfig::default(),
            optimizer: OptimizerConfig {
                lr: 1e-3,
                ..Default::default()
            },
            scheduler: SchedulerConfig {
                warmup_steps: 200,
                min_lr: 1e-4,
                ..Default::default()
            },
            origin: "<defaults>".to_string(),
        }
    }
}

impl Default for AsrDataConfig {
    fn default() -> Self {
        AsrDataConfig {
            corpus_dir: PathBuf::from("data/speech"),
            build_corpus: true,
            train: "train.tsv".into(),
            val: "val.tsv".into(),
            test: "test.tsv".into(),
            test_voices: "test_voices.tsv".into(),
            train_modern: None,
            test_modern: None,
            max_train_utterances: None,
            corpus: CorpusConfig::default(),
        }
    }
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            n_mels: 80,
            window_ms: 25.0,
            hop_ms: 10.0,
            normalization: Normalization::GlobalMvn,
            spec_augment: SpecAugmentSection::default(),
            speed_perturb: vec![0.9, 1.0, 1.1],
            noise_probability: 0.3,
            noise_snr_db: [10.0, 30.0],
            narrowband_probability: 0.0,
            quantize_probability: 0.0,
            floor_db: None,
        }
    }
}

impl Default for SpecAugmentSection {
    fn default() -> Self {
        SpecAugmentSection {
            freq_masks: 2,
            max_freq_width: 10,
            time_masks: 2,
            max_time_width: 20,
        }
    }
}

impl Default for AsrModelConfig {
    fn default() -> Self {
        AsrModelConfig {
            d_model: 128,
            num_heads: 4,
            d_ff: 512,
            encoder_layers: 4,
            decoder_layers: 2,
            dropout: 0.1,
            conv_channels: 32,
            time_reduction: 4,
            ctc_weight: 0.3,
            max_source_len: 1024,
            max_target_len: 256,
            activation: Activation::Gelu,
            init_decoder_from: None,
            init_from: None,
        }
    }
}

impl Default for AsrTrainConfig {
    fn default() -> Self {
        AsrTrainConfig {
            max_frames: 4000,
            max_batch: 24,
            epochs: Some(12),
            max_steps: None,
            time_limit_minutes: None,
            label_smoothing: 0.1,
            max_grad_norm: 1.0,
            eval_interval: 250,
            eval_utterances: 100,
            seed: 7,
            out_dir: PathBuf::from("runs/asr"),
            log_interval: 10,
            on_non_finite: NonFinitePolicy::Stop,
            max_skipped_steps: 10,
            precision: Precision::F32,
            loss_scale: LossScaleConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeMode {
    Attention,
    Ctc,
    /// Training only: select the checkpoint by the better of the two (the saved best
    /// checkpoint's config then names the winner).
    Auto,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            mode: DecodeMode::Attention,
            beam_width: 4,
            ctc_weight: 0.0,
            length_penalty: 1.0,
            lm_weight: 0.0,
        }
    }
}

impl AsrConfig {
    /// Read, parse, apply `--set` overrides in order, then validate.
    pub fn load_with_overrides(
        path: impl AsRef<Path>,
        overrides: &[impl AsRef<str>],
    ) -> Result<AsrConfig> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: AsrConfig = yaml::parse(&text, &origin)?;
        for spec in overrides {
            config = yaml::set(&config, spec.as_ref(), &origin)?;
        }
        config.origin = origin;
        config.validate()?;
        Ok(config)
    }

    /// Parse and validate YAML text; `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<AsrConfig> {
        let mut config: AsrConfig = yaml::parse(text, origin)?;
        config.origin = origin.to_string();
        config.validate()?;
        Ok(config)
    }

    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|e| Error::format(&self.origin, e))
    }

    /// The two convolution strides in time whose product is `model.time_reduction`.
    pub fn conv_strides(&self) -> [usize; 2] {
        conv_strides(self.model.time_reduction)
    }

    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            Some((key, msg)) => Err(Error::format(&self.origin, format!("{key}: {msg}"))),
            None => Ok(()),
        }
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        let (f, m, t) = (&self.features, &self.model, &self.train);
        let at_least_one = [
            ("features.n_mels", f.n_mels),
            ("model.d_model", m.d_model),
            ("model.num_heads", m.num_heads),
            ("model.d_ff", m.d_ff),
            ("model.encoder_layers", m.encoder_layers),
            ("model.decoder_layers", m.decoder_layers),
            ("model.conv_channels", m.conv_channels),
            ("model.time_reduction", m.time_reduction),
            ("model.max_source_len", m.max_source_len),
            ("model.max_target_len", m.max_target_len),
            ("train.max_frames", t.max_frames),
            ("train.max_batch", t.max_batch),
            ("train.epochs", t.epochs.unwrap_or(1)),
            ("train.max_steps", t.max_steps.unwrap_or(1)),
            ("train.eval_interval", t.eval_interval),
            ("train.log_interval", t.log_interval),
            ("decode.beam_width", self.decode.beam_width),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Some((key, "must be at least 1, got 0".to_string()));
        }
        let unit_interval = [
            ("model.dropout", m.dropout),
            ("train.label_smoothing", t.label_smoothing),
            ("features.noise_probability", f.noise_probability),
            ("features.narrowband_probability", f.narrowband_probability),
            ("features.quantize_probability", f.quantize_probability),
        ];
        if let Some((key, v)) = unit_interval.iter().find(|(_, v)| !(0.0..1.0).contains(v)) {
            return Some((key, format!("{v} is outside [0, 1)")));
        }
        let positive = [
            ("features.window_ms", f.window_ms),
            ("features.hop_ms", f.hop_ms),
        ];
        if let Some((key, v)) = positive.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Some((key, format!("{v} must be a positive number")));
        }
        if f.speed_perturb.is_empty() || f.speed_perturb.iter().any(|&s| !(0.5..=2.0).contains(&s))
        {
            return Some((
                "features.speed_perturb",
                format!("{:?}: expected factors in [0.5, 2]", f.speed_perturb),
            ));
        }
        if self.decode.mode != DecodeMode::Attention && m.ctc_weight == 0.0 {
            return Some((
                "decode.mode",
                "ctc needs a CTC head: set model.ctc_weight above 0".to_string(),
            ));
        }
        if !(0.0..=1.0).contains(&self.decode.ctc_weight) {
            return Some((
                "decode.ctc_weight",
                format!("{} is outside [0, 1]", self.decode.ctc_weight),
            ));
        }
        if self.decode.ctc_weight > 0.0 && m.ctc_weight == 0.0 {
            return Some((
                "decode.ctc_weight",
                "joint CTC/attention decoding needs a CTC head: set model.ctc_weight above 0"
                    .to_string(),
            ));
        }
        if !(m.ctc_weight.is_finite() && m.ctc_weight >= 0.0) {
            return Some(("model.ctc_weight", format!("{} must be >= 0", m.ctc_weight)));
        }
        if !m.d_model.is_multiple_of(m.num_heads) {
            return Some((
                "model.num_heads",
                format!(
                    "{} does not divide model.d_model = {}",
                    m.num_heads, m.d_model
                ),
            ));
        }
        if let Some(db) = f.floor_db.filter(|db| !(db.is_finite() && *db > 0.0)) {
            return Some((
                "features.floor_db",
                format!("{db} must be a positive number of dB"),
            ));
        }
        if let Some(problem) = time_limit_problem(t.time_limit_minutes) {
            return Some(problem);
        }
        if let Some(problem) = loss_scale_problem(&t.loss_scale) {
            return Some(problem);
        }
        if t.epochs.is_none() && t.max_steps.is_none() {
            return Some((
                "train.max_steps",
                "neither train.epochs nor train.max_steps is set".to_string(),
            ));
        }
        None
    }
}

/// Time strides of the two convolutions: 2 then r/2 for even r, r then 1 for odd r.
pub fn conv_strides(time_reduction: usize) -> [usize; 2] {
    if time_reduction.is_multiple_of(2) {
        [2, time_reduction / 2]
    } else {
        [time_reduction, 1]
    }
}
