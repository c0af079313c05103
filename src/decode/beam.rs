//! Beam search: keep the `beam_width` best partial sequences by total log-probability;
//! finished hypotheses (ending in EOS, or at the length limit) are ranked by
//! score / length^length_penalty (GNMT-style normalisation with alpha = length_penalty).

use super::{log_softmax, IncrementalDecoder};
use crate::error::{Error, Result};

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
    if prompt.is_empty() || cfg.beam_width == 0 {
        return Err(Error::shape(
            "beam_search",
            "needs a non-empty prompt and beam_width >= 1",
        ));
    }
    let v = model.vocab_size();
    let mut state = model.start(1)?;
    let mut logits = model.step(&mut state, prompt, 1)?;
    let mut beams = vec![Hyp {
        tokens: Vec::new(),
        score: 0.0,
    }];
    let mut finished: Vec<Hyp> = Vec::new();
    for step in 0..cfg.max_new_tokens {
        // Every (beam, token) extension, best first.
        let mut cands: Vec<(f64, usize, u32)> = Vec::with_capacity(beams.len() * v);
        for (b, hyp) in beams.iter().enumerate() {
            for (t, lp) in log_softmax(&logits[b * v..(b + 1) * v])
                .into_iter()
                .enumerate()
            {
                cands.push((hyp.score + lp, b, t as u32));
            }
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::new();
        let mut order = Vec::new();
        for (score, b, t) in cands {
            let mut tokens = beams[b].tokens.clone();
            tokens.push(t);
            let hyp = Hyp { tokens, score };
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
        logits = model.step(&mut state, &last, next.len())?;
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
