//! Decoding one 30 s window: Whisper's decoder as an `IncrementalDecoder` over its KV caches
//! (self-attention caches grow a position per step; cross-attention keys/values are computed
//! from the encoder output on the first step and reused), with the logit rules faster-whisper
//! (CTranslate2) applies before choosing a token:
//!
//! - suppressed tokens never come out (`WhisperTokens::suppress`);
//! - `suppress_blank`: the first token is neither a space nor end-of-text;
//! - with timestamps, openai-whisper's timestamp rules (`timestamp_rules`).
//!
//! `greedy` is faster-whisper's `beam_size=1, temperature=0` decoding and also returns the
//! scores its no-speech check reads; `greedy_windows` decodes several windows at once, one
//! sequence each, dropping a window from the batch when it ends (meant for GPUs, where a step
//! of one sequence leaves most of the chip idle); beam search is `decode::beam_search` over
//! the same rules, one window at a time.

use super::tokens::WhisperTokens;
use crate::decode::{argmax, log_softmax, IncrementalDecoder};
use crate::error::{Error, Result};
use crate::models::whisper::Whisper;
use crate::nn::CrossLayerCache;
use crate::ops::{self, HalfMatrix};
use crate::tensor::Tensor;
use std::cell::RefCell;

/// Timestamps are at most this far into the window at the start (openai-whisper's
/// `max_initial_timestamp` of 1 s, in 20 ms steps).
const MAX_INITIAL_TIMESTAMP: u32 = 50;

pub struct WhisperDecoder<'a> {
    pub model: &'a Whisper,
    /// The encoder output of one window, [1, S, d], shared by every sequence (beam search);
    /// or of N windows, [N, S, d], one sequence each (`greedy_windows`).
    pub memory: &'a Tensor,
    pub tokens: &'a WhisperTokens,
    pub timestamps: bool,
    /// The output projection in half precision, where the recognizer keeps one
    /// (`WhisperRecognizer::output_half`); else the model's f32 token embedding.
    pub output_half: Option<&'a HalfMatrix>,
    /// P(no speech) of each sequence, read at `<|startoftranscript|>` on the first step.
    no_speech_probs: RefCell<Vec<f64>>,
}

/// One window's greedy decoding: the tokens before end-of-text and the sum of the chosen
/// tokens' log-probabilities, end-of-text included.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Greedy {
    pub tokens: Vec<u32>,
    pub sum_logprob: f64,
    /// P(`<|nospeech|>`) at the start (0 where the vocabulary has no such token).
    pub no_speech_prob: f64,
}

/// The caches of every decoder layer and the tokens each sequence has generated so far.
pub struct WhisperState {
    caches: Vec<CrossLayerCache>,
    generated: Vec<Vec<u32>>,
    prompted: bool,
}

impl<'a> WhisperDecoder<'a> {
    pub fn new(
        model: &'a Whisper,
        memory: &'a Tensor,
        tokens: &'a WhisperTokens,
        timestamps: bool,
    ) -> Self {
        WhisperDecoder {
            model,
            memory,
            tokens,
            timestamps,
            output_half: None,
            no_speech_probs: RefCell::new(Vec::new()),
        }
    }

    /// This decoder with the output projection read from `w` (the token embedding's values in
    /// half precision).
    pub fn with_output_half(self, w: Option<&'a HalfMatrix>) -> Self {
        WhisperDecoder {
            output_half: w,
            ..self
        }
    }

    /// Logits [B, T, V] of decoder outputs h [B, T, d].
    fn logits(&self, h: &Tensor) -> Result<Tensor> {
        match self.output_half {
            Some(w) => ops::matmul_half(&self.model.decoder_layer_norm.forward(h)?, w, None),
            None => self.model.logits(h),
        }
    }

    /// Windows in `memory`.
    pub fn windows(&self) -> usize {
        self.memory.shape()[0]
    }

    /// The probability of `<|nospeech|>` at the start of the last decoding (its first
    /// sequence; 0 where the vocabulary has no such token).
    pub fn no_speech_prob(&self) -> f64 {
        self.no_speech_probs
            .borrow()
            .first()
            .copied()
            .unwrap_or(0.0)
    }

    /// Set what the rules forbid in `logits` (one row) to -inf; `generated` are the tokens
    /// this sequence has produced after the prompt.
    fn apply_rules(&self, logits: &mut [f32], generated: &[u32]) {
        let t = self.tokens;
        for &s in &t.suppress {
            if let Some(l) = logits.get_mut(s as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        if generated.is_empty() {
            for &b in &t.blank {
                logits[b as usize] = f32::NEG_INFINITY;
            }
        }
        if self.timestamps {
            timestamp_rules(logits, generated, t);
        }
    }
}

/// openai-whisper's `ApplyTimestampRules`: `<|notimestamps|>` never comes; timestamps come in
/// pairs (after a lone timestamp, another timestamp or the end; after a pair, text); they never
/// go back in time; the first token is a timestamp of at most 1 s; and where the timestamps
/// together are more probable than the likeliest text token, a timestamp comes.
fn timestamp_rules(logits: &mut [f32], generated: &[u32], t: &WhisperTokens) {
    let begin = t.timestamp_begin as usize;
    let is_ts = |tok: &u32| *tok >= t.timestamp_begin;
    logits[t.no_timestamps as usize] = f32::NEG_INFINITY;
    let n = generated.len();
    let last_ts = n >= 1 && is_ts(&generated[n - 1]);
    let penultimate_ts = n < 2 || is_ts(&generated[n - 2]);
    if last_ts {
        if penultimate_ts {
            logits[begin..].fill(f32::NEG_INFINITY); // a pair closed: text follows
        } else {
            logits[..t.eot as usize].fill(f32::NEG_INFINITY); // a lone one: its partner or the end
        }
    }
    if let Some(&latest) = generated.iter().rev().find(|tok| is_ts(tok)) {
        // Never earlier than the latest timestamp; strictly later once a pair has closed.
        let floor = if last_ts && !penultimate_ts {
            latest
        } else {
            latest + 1
        };
        let end = (floor as usize).min(logits.len());
        logits[begin..end].fill(f32::NEG_INFINITY);
    }
    if n == 0 {
        logits[..begin].fill(f32::NEG_INFINITY);
        let last_allowed = begin + MAX_INITIAL_TIMESTAMP as usize;
        if last_allowed + 1 < logits.len() {
            logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
        }
    }
    let lp = log_softmax(logits);
    let ts_mass = lp[begin..].iter().map(|&x| x.exp()).sum::<f64>().ln();
    let best_text = lp[..begin]
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    if ts_mass > best_text {
        logits[..begin].fill(f32::NEG_INFINITY);
    }
}

impl IncrementalDecoder for WhisperDecoder<'_> {
    type State = WhisperState;

    fn start(&self, batch: usize) -> Result<WhisperState> {
        let windows = self.windows();
        if batch != windows {
            return Err(Error::shape(
                "WhisperDecoder",
                format!("decoding starts from one sequence per window ({windows}), not {batch}"),
            ));
        }
        Ok(WhisperState {
            caches: self.model.new_caches(),
            generated: vec![Vec::new(); batch],
            prompted: false,
        })
    }

    /// The prompt first (one row), then one token per sequence per step.
    async fn step(&self, state: &mut WhisperState, ids: &[u32], batch: usize) -> Result<Vec<f32>> {
        if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
            return Err(Error::shape(
                "WhisperDecoder",
                format!("{} ids do not form {batch} rows", ids.len()),
            ));
        }
        let t_new = ids.len() / batch;
        let v = self.model.config.vocab_size;
        let prompt = !state.prompted;
        if prompt {
            state.prompted = true;
        } else {
            for (seq, &id) in state.generated.iter_mut().zip(ids) {
                seq.push(id);
            }
        }
        // Recorded without gradients; the guard is dropped before the readback is awaited.
        let logits = {
            let _g = crate::no_grad();
            let ids_t = Tensor::from_u32(self.model.gpu(), ids, &[batch, t_new])?;
            let h = self
                .model
                .decode_cached(&ids_t, self.memory, &mut state.caches)?; // [B, T_new, d]
            if prompt {
                // The prompt: the no-speech probability is read where `<|startoftranscript|>`
                // is (position 0), the next token at the last position; each row gets both.
                let sot_at = ids.iter().position(|&i| i == self.tokens.sot).unwrap_or(0);
                let both = ops::concat(
                    &[
                        &ops::slice(&h, 1, sot_at, 1)?,
                        &ops::slice(&h, 1, t_new - 1, 1)?,
                    ],
                    1,
                )?;
                self.logits(&both)? // [B, 2, V]
            } else {
                self.logits(&h)? // [B, 1, V]
            }
        };
        let mut logits = logits.to_vec_async().await?;
        if prompt {
            let (at_sot, next): (Vec<_>, Vec<_>) =
                logits.chunks(v).enumerate().partition(|(i, _)| i % 2 == 0);
            let no_speech = |row: &[f32]| {
                let p = self.tokens.no_speech;
                p.map_or(0.0, |ns| log_softmax(row)[ns as usize].exp())
            };
            *self.no_speech_probs.borrow_mut() =
                at_sot.into_iter().map(|(_, row)| no_speech(row)).collect();
            logits = next.into_iter().flat_map(|(_, row)| row.to_vec()).collect();
        }
        for (row, seq) in logits.chunks_mut(v).zip(&state.generated) {
            self.apply_rules(row, seq);
        }
        Ok(logits)
    }

    fn reorder(&self, state: &mut WhisperState, order: &[u32]) -> Result<()> {
        // Deferred to the caches' next use: the self-attention caches gather as they grow;
        // a cross-attention cache of one window is shared by every sequence and never copied.
        for c in state.caches.iter_mut() {
            c.self_kv.reorder(order)?;
            c.cross_kv.reorder(order)?;
        }
        state.generated = order
            .iter()
            .map(|&i| state.generated[i as usize].clone())
            .collect();
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }
}

/// Greedy decoding of one window (`dec.memory` [1, S, d]) after `prompt`, at most `max_new`
/// tokens.
pub async fn greedy(dec: &WhisperDecoder<'_>, prompt: &[u32], max_new: usize) -> Result<Greedy> {
    if dec.windows() != 1 {
        return Err(Error::shape(
            "whisper greedy",
            format!(
                "one window, not {}: greedy_windows decodes several",
                dec.windows()
            ),
        ));
    }
    let mut all = greedy_windows(dec, prompt, max_new).await?;
    Ok(all.remove(0))
}

/// Greedy decoding of every window of `dec.memory` ([N, S, d]) at once, each after `prompt`,
/// at most `max_new` tokens each: what `greedy` gives each window alone, up to the rounding
/// of products with more rows. A window that ends leaves the batch (its rows of the caches
/// are dropped), so the others' steps do not carry it.
pub async fn greedy_windows(
    dec: &WhisperDecoder<'_>,
    prompt: &[u32],
    max_new: usize,
) -> Result<Vec<Greedy>> {
    let n = dec.windows();
    let v = dec.vocab_size();
    let mut state = dec.start(n)?;
    let prompts: Vec<u32> = (0..n).flat_map(|_| prompt.iter().copied()).collect();
    let mut logits = dec.step(&mut state, &prompts, n).await?;
    let mut out: Vec<Greedy> = dec
        .no_speech_probs
        .borrow()
        .iter()
        .map(|&no_speech_prob| Greedy {
            no_speech_prob,
            ..Greedy::default()
        })
        .collect();
    // The window of each row still decoding.
    let mut live: Vec<usize> = (0..n).collect();
    loop {
        let (mut rows, mut next) = (Vec::new(), Vec::new());
        for (row, &w) in live.iter().enumerate() {
            let g = &mut out[w];
            if g.tokens.len() >= max_new {
                continue;
            }
            let row_logits = &logits[row * v..(row + 1) * v];
            let token = argmax(row_logits) as u32;
            g.sum_logprob += log_softmax(row_logits)[token as usize];
            if token == dec.tokens.eot {
                continue;
            }
            g.tokens.push(token);
            if g.tokens.len() < max_new {
                rows.push(row as u32);
                next.push(token);
            }
        }
        if rows.is_empty() {
            return Ok(out);
        }
        if rows.len() < live.len() {
            dec.reorder(&mut state, &rows)?;
            live = rows.iter().map(|&r| live[r as usize]).collect();
        }
        logits = dec.step(&mut state, &next, live.len()).await?;
    }
}

/// The sum of log-probabilities of `tokens` then end-of-text after `prompt`, under the same
/// rules (what a decoding that chose them scored).
pub async fn score(dec: &WhisperDecoder<'_>, prompt: &[u32], tokens: &[u32]) -> Result<f64> {
    let mut state = dec.start(1)?;
    let mut logits = dec.step(&mut state, prompt, 1).await?;
    let mut sum = 0.0;
    for &t in tokens.iter().chain(std::iter::once(&dec.tokens.eot)) {
        sum += log_softmax(&logits)[t as usize];
        if t != dec.tokens.eot {
            logits = dec.step(&mut state, &[t], 1).await?;
        }
    }
    Ok(sum)
}
