//! Beam search: keep the `beam_width` best partial sequences by total score; finished
//! hypotheses (ending in EOS, or at the length limit) are ranked by
//! score / length^length_penalty (GNMT-style normalisation with alpha = length_penalty).
//!
//! A token's score is the model's log-probability. In joint CTC/attention decoding
//! (`joint_beam_search`) it is (1 - w) * log p_model(c | g) + w * (psi(g + c) - psi(g)), where
//! psi is the CTC prefix score (`CtcPrefixScorer`) and w the CTC weight: ESPnet's decoding with
//! `ctc_weight` = w, except that every token of the (small) vocabulary is scored by CTC where
//! ESPnet pre-selects 1.5 x beam_width of them by the decoder's scores, and that finished
//! hypotheses are length-normalised as above where ESPnet adds a per-token bonus.

use super::ctc_prefix::{CtcPrefixScorer, PrefixState};
use super::{log_softmax, IncrementalDecoder};
use crate::error::{Error, Result};
use crate::gpu::block_on;

#[derive(Clone, Debug)]
pub struct BeamConfig {
    pub beam_width: usize,
    pub max_new_tokens: usize,
    pub length_penalty: f32,
    pub eos: Option<u32>,
}

struct Hyp {
    tokens: Vec<u32>,
    score: f64,
    /// The CTC prefix state of `tokens` (joint decoding only).
    ctc: Option<PrefixState>,
}

fn normalised(h: &Hyp, alpha: f32) -> f64 {
    h.score / (h.tokens.len().max(1) as f64).powf(alpha as f64)
}

/// The best continuation of `prompt` (without the prompt).
pub fn beam_search<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &BeamConfig,
) -> Result<Vec<u32>> {
    block_on(beam_search_async(model, prompt, cfg))
}

/// `beam_search` with each step's readback awaited (a browser page).
pub async fn beam_search_async<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &BeamConfig,
) -> Result<Vec<u32>> {
    search(model, prompt, cfg, None).await
}

/// The best continuation of `prompt` under the model's scores joined with CTC prefix scores
/// of weight `ctc_weight` in [0, 1] (module doc). `prompt` is the start token alone.
pub fn joint_beam_search<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &BeamConfig,
    ctc: &CtcPrefixScorer,
    ctc_weight: f32,
) -> Result<Vec<u32>> {
    block_on(joint_beam_search_async(model, prompt, cfg, ctc, ctc_weight))
}

/// `joint_beam_search` with each step's readback awaited (a browser page).
pub async fn joint_beam_search_async<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &BeamConfig,
    ctc: &CtcPrefixScorer,
    ctc_weight: f32,
) -> Result<Vec<u32>> {
    if !(0.0..=1.0).contains(&ctc_weight) || ctc.vocab_size() != model.vocab_size() {
        return Err(Error::shape(
            "joint_beam_search",
            format!(
                "needs a CTC weight in [0, 1] (got {ctc_weight}) and the decoder's vocabulary \
                 ({}) in the CTC head (got {})",
                model.vocab_size(),
                ctc.vocab_size()
            ),
        ));
    }
    search(model, prompt, cfg, Some((ctc, ctc_weight as f64))).await
}

async fn search<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &BeamConfig,
    ctc: Option<(&CtcPrefixScorer, f64)>,
) -> Result<Vec<u32>> {
    if prompt.is_empty() || cfg.beam_width == 0 {
        return Err(Error::shape(
            "beam_search",
            "needs a non-empty prompt and beam_width >= 1",
        ));
    }
    let v = model.vocab_size();
    let model_weight = 1.0 - ctc.map_or(0.0, |(_, w)| w);
    let mut state = model.start(1)?;
    let mut logits = model.step(&mut state, prompt, 1).await?;
    let mut beams = vec![Hyp {
        tokens: Vec::new(),
        score: 0.0,
        ctc: ctc.map(|(scorer, _)| scorer.start()),
    }];
    let mut finished: Vec<Hyp> = Vec::new();
    for step in 0..cfg.max_new_tokens {
        // Every (beam, token) extension, best first; with CTC, the extended prefix states.
        let mut cands: Vec<(f64, usize, u32)> = Vec::with_capacity(beams.len() * v);
        let mut extended: Vec<Vec<PrefixState>> = Vec::with_capacity(beams.len());
        for (b, hyp) in beams.iter().enumerate() {
            let lp = log_softmax(&logits[b * v..(b + 1) * v]);
            let ext: Vec<PrefixState> = match (ctc, &hyp.ctc) {
                (Some((scorer, _)), Some(g)) => {
                    (0..v as u32).map(|c| scorer.extend(g, c)).collect()
                }
                _ => Vec::new(),
            };
            for (t, lp) in lp.into_iter().enumerate() {
                let mut score = hyp.score + model_weight * lp;
                if let (Some((_, w)), Some(g)) = (ctc, &hyp.ctc) {
                    score += w * (ext[t].score() - g.score());
                }
                // Tokens CTC rules out (blank, start, more labels than frames) are no candidates.
                if score > f64::NEG_INFINITY {
                    cands.push((score, b, t as u32));
                }
            }
            extended.push(ext);
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::new();
        let mut order = Vec::new();
        for (score, b, t) in cands {
            let mut tokens = beams[b].tokens.clone();
            tokens.push(t);
            let ctc = extended[b].get(t as usize).cloned();
            let hyp = Hyp { tokens, score, ctc };
            if Some(t) == cfg.eos || step + 1 == cfg.max_new_tokens {
                finished.push(hyp);
            } else {
                next.push(hyp);
                order.push(b as u32);
            }
            if next.len() == cfg.beam_width || finished.len() >= cfg.beam_width && next.is_empty() {
                break;
            }
        }
        // Stop when no live beam can beat the best finished one.
        let best_done = finished
            .iter()
            .map(|h| normalised(h, cfg.length_penalty))
            .fold(f64::NEG_INFINITY, f64::max);
        if next.is_empty()
            || (finished.len() >= cfg.beam_width
                && next
                    .iter()
                    .all(|h| normalised(h, cfg.length_penalty) < best_done))
        {
            break;
        }
        model.reorder(&mut state, &order)?;
        let last: Vec<u32> = next
            .iter()
            .map(|h| *h.tokens.last().unwrap_or(&0))
            .collect();
        logits = model.step(&mut state, &last, next.len()).await?;
        beams = next;
    }
    // Every live beam was either extended into `finished` or dropped as hopeless.
    let best = finished
        .into_iter()
        .max_by(|a, b| {
            normalised(a, cfg.length_penalty).total_cmp(&normalised(b, cfg.length_penalty))
        })
        .map(|h| h.tokens)
        .unwrap_or_default();
    Ok(best)
}
