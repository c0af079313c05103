//! Scoring a recognizer: CER / WER / mean word edit distance on a set of utterances with
//! attention greedy, attention beam or CTC best-path decoding, and the report on both test
//! sets (held-out sentences, held-out voices) that training ends with.

use super::error_rate::ErrorRates;
use super::recognizer::{Recognizer, TranscribeOptions};
use super::transcribe::{evaluate, DecodeOptions};
use crate::audio::FeaturePipeline;
use crate::config::{AsrConfig, DecodeMode};
use crate::data::asr::{load_eval, manifest};
use crate::data::asr::{AsrBatch, AsrBatcher, Utterance};
use crate::data::Tokenizer;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::models::EncoderDecoderTransformer;
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

/// How `score` decodes: attention greedy (beam 1), attention beam search, or CTC best path.
#[derive(Clone, Copy)]
pub enum Mode {
    Beam(usize),
    Ctc,
}

pub fn score(
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

/// `test_report` of the checkpoint in `dir`, on the test sets its own config names. With
/// `lm` (a CLM checkpoint and its shallow-fusion weight) the attention decoder's scores are
/// fused with the LM's, greedy and beam, clip by clip through `Recognizer::transcribe`
/// (the batched decoder has no LM); CTC is then not scored.
pub fn evaluate_checkpoint(gpu: &Gpu, dir: &Path, lm: Option<(&Path, f32)>) -> Result<TestReport> {
    let config = AsrConfig::load_with_overrides(dir.join("config.yaml"), &[] as &[&str])?;
    let r = Recognizer::load(gpu, dir, lm.map(|(path, _)| path))?;
    let Some((_, lm_weight)) = lm else {
        return test_report(&r.model, &r.tokenizer, &r.pipeline, &config);
    };
    let rates = |file: &str, beam_width: usize| -> Result<Rates> {
        let opts = TranscribeOptions {
            mode: Some(DecodeMode::Attention),
            beam_width,
            length_penalty: config.decode.length_penalty as f32,
            lm_weight,
        };
        let mut rates = ErrorRates::default();
        for e in manifest(&config, file, None)? {
            rates.add(&e.transcript, &r.transcribe_file(&e.audio, &opts)?);
        }
        Ok((&rates).into())
    };
    let (test, voices, beam) = (&config.data.test, &config.data.test_voices, r.beam_width);
    Ok(TestReport {
        greedy: rates(test, 1)?,
        beam: rates(test, beam)?,
        ctc: None,
        voices_greedy: rates(voices, 1)?,
        voices_beam: rates(voices, beam)?,
        voices_ctc: None,
    })
}
