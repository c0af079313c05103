//! Scoring a recognizer: CER / WER / mean word edit distance on a set of utterances under a
//! `Decoding`, and the report on both test sets (held-out sentences, held-out voices) that
//! training ends with.

use super::decoding::{Decoding, Method};
use super::error_rate::ErrorRates;
use super::recognizer::Recognizer;
use super::transcribe::evaluate;
use crate::audio::FeaturePipeline;
use crate::config::AsrConfig;
use crate::data::asr::{load_eval, manifest};
use crate::data::asr::{AsrBatch, AsrBatcher, Utterance};
use crate::data::Tokenizer;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::models::{DecoderOnlyTransformer, EncoderDecoderTransformer};
use std::collections::HashMap;
use std::path::Path;

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

/// CER / WER of `model` on `utts` decoded with `decoding` (and `lm`, when given and weighted).
pub fn score(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    utts: &[Utterance],
    config: &AsrConfig,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<ErrorRates> {
    let refs = references(utts);
    let batches = eval_batches(utts, config)?;
    evaluate(
        model,
        tokenizer,
        &batches,
        &|id| refs.get(id).cloned(),
        decoding,
        lm,
    )
}

/// Error rates on both test sets: the decoding asked for, the same with one beam, and CTC
/// best path.
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
    /// Held-out sentences of the modern text, training voices (when the config names
    /// `data.test_modern`).
    pub modern_greedy: Option<Rates>,
    pub modern_beam: Option<Rates>,
    pub modern_ctc: Option<Rates>,
}

/// Score `model` on the config's test, test_voices (and test_modern) manifests: the attention
/// decoder as
/// `decoding` says (the `beam` figures) and with one beam (`greedy`), and the CTC head's best
/// path.
pub fn test_report(
    model: &EncoderDecoderTransformer,
    tokenizer: &Tokenizer,
    pipeline: &FeaturePipeline,
    config: &AsrConfig,
    decoding: &Decoding,
    lm: Option<&DecoderOnlyTransformer>,
) -> Result<TestReport> {
    let split = |file: &str| load_eval(&manifest(config, file, None)?, pipeline, tokenizer);
    let (test, voices) = (split(&config.data.test)?, split(&config.data.test_voices)?);
    let rates = |utts: &[Utterance], decoding: &Decoding| -> Result<Rates> {
        Ok((&score(model, tokenizer, utts, config, decoding, lm)?).into())
    };
    let ctc = |utts: &[Utterance]| -> Result<Option<Rates>> {
        model
            .ctc_head
            .as_ref()
            .map(|_| rates(utts, &Decoding::ctc_best_path()))
            .transpose()
    };
    let beam = Decoding {
        method: Method::Attention,
        ..decoding.clone()
    };
    let greedy = beam.with_beam(1);
    let modern = match &config.data.test_modern {
        Some(file) => Some(split(file)?),
        None => None,
    };
    let on_modern = |decoding: &Decoding| modern.as_deref().map(|m| rates(m, decoding)).transpose();
    Ok(TestReport {
        modern_greedy: on_modern(&greedy)?,
        modern_beam: on_modern(&beam)?,
        modern_ctc: match &modern {
            Some(m) => ctc(m)?,
            None => None,
        },
        greedy: rates(&test, &greedy)?,
        beam: rates(&test, &beam)?,
        ctc: ctc(&test)?,
        voices_greedy: rates(&voices, &greedy)?,
        voices_beam: rates(&voices, &beam)?,
        voices_ctc: ctc(&voices)?,
    })
}

/// `test_report` of the checkpoint in `dir` under `decoding` (its default:
/// `Decoding::from_config` of its config), on the test sets its config names. `lm_dir`: a
/// causal-LM checkpoint fused into the attention decoder with `decoding.lm_weight`.
pub fn evaluate_checkpoint(
    gpu: &Gpu,
    dir: &Path,
    lm_dir: Option<&Path>,
    decoding: &Decoding,
) -> Result<TestReport> {
    let config = AsrConfig::load_with_overrides(dir.join("config.yaml"), &[] as &[&str])?;
    let r = Recognizer::load(gpu, dir, lm_dir)?;
    test_report(
        &r.model,
        &r.tokenizer,
        &r.pipeline,
        &config,
        decoding,
        r.lm.as_ref(),
    )
}
