//! Greedy decoding and sampling with temperature, top-k, top-p and a repetition penalty.

use super::{argmax, IncrementalDecoder};
use crate::error::{Error, Result};
use crate::gpu::block_on;
use crate::rng::SplitMix64;

#[derive(Clone, Debug)]
pub struct SamplingConfig {
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = all).
    pub top_p: f32,
    /// > 1 makes tokens already in the sequence less likely (CTRL-style).
    pub repetition_penalty: f32,
    pub eos: Option<u32>,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            max_new_tokens: 100,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            eos: None,
            seed: 0,
        }
    }
}

/// Always the most likely next token.
pub fn greedy<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    max_new_tokens: usize,
    eos: Option<u32>,
) -> Result<Vec<u32>> {
    let cfg = SamplingConfig {
        max_new_tokens,
        temperature: 0.0,
        eos,
        ..Default::default()
    };
    sample(model, prompt, &cfg)
}

/// Greedy decoding of `batch` sequences at once, each started with `start_token`; a row stops
/// at `eos` (not included) or after `max_len` tokens, and the batch when every row has
/// stopped. Finished rows keep being fed `eos` so the batch stays rectangular.
pub fn greedy_batch<D: IncrementalDecoder>(
    model: &D,
    batch: usize,
    start_token: u32,
    eos: u32,
    max_len: usize,
) -> Result<Vec<Vec<u32>>> {
    block_on(greedy_batch_async(model, batch, start_token, eos, max_len))
}

/// `greedy_batch` with each step's readback awaited (a browser page).
pub async fn greedy_batch_async<D: IncrementalDecoder>(
    model: &D,
    batch: usize,
    start_token: u32,
    eos: u32,
    max_len: usize,
) -> Result<Vec<Vec<u32>>> {
    let v = model.vocab_size();
    let mut state = model.start(batch)?;
    let mut out = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    let mut ids = vec![start_token; batch];
    for _ in 0..max_len {
        let logits = model.step(&mut state, &ids, batch).await?;
        for b in 0..batch {
            let next = argmax(&logits[b * v..(b + 1) * v]) as u32;
            if !done[b] {
                if next == eos {
                    done[b] = true;
                } else {
                    out[b].push(next);
                }
            }
            ids[b] = if done[b] { eos } else { next };
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    Ok(out)
}

/// Sample a continuation of `prompt` (returned without the prompt).
pub fn sample<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &SamplingConfig,
) -> Result<Vec<u32>> {
    block_on(sample_async(model, prompt, cfg))
}

/// `sample` with each step's readback awaited (a browser page).
pub async fn sample_async<D: IncrementalDecoder>(
    model: &D,
    prompt: &[u32],
    cfg: &SamplingConfig,
) -> Result<Vec<u32>> {
    let mut sampler = Sampler::new(prompt, cfg)?;
    let mut state = model.start(1)?;
    let mut logits = model.step(&mut state, prompt, 1).await?;
    while let Some(next) = sampler.choose(&mut logits) {
        logits = model.step(&mut state, &[next], 1).await?;
    }
    Ok(sampler.tokens)
}

/// The choices of `sample`, one token at a time, apart from the model's steps.
struct Sampler {
    cfg: SamplingConfig,
    rng: SplitMix64,
    history: Vec<u32>,
    /// The tokens chosen so far.
    tokens: Vec<u32>,
}

impl Sampler {
    fn new(prompt: &[u32], cfg: &SamplingConfig) -> Result<Sampler> {
        if prompt.is_empty() {
            return Err(Error::shape(
                "sample",
                "the prompt needs at least one token (e.g. [SOS])",
            ));
        }
        Ok(Sampler {
            cfg: cfg.clone(),
            rng: SplitMix64::new(cfg.seed),
            history: prompt.to_vec(),
            tokens: Vec::new(),
        })
    }

    /// Choose the next token from the logits of the last step. Returns it when the model
    /// must be stepped on it for the next choice; None when sampling is over (`eos` chosen,
    /// which is kept, or `max_new_tokens` reached).
    fn choose(&mut self, logits: &mut [f32]) -> Option<u32> {
        if self.tokens.len() >= self.cfg.max_new_tokens {
            return None;
        }
        penalise_repeats(logits, &self.history, self.cfg.repetition_penalty);
        let next = if self.cfg.temperature <= 0.0 {
            argmax(logits) as u32
        } else {
            draw(logits, &self.cfg, &mut self.rng)
        };
        self.tokens.push(next);
        self.history.push(next);
        let more = Some(next) != self.cfg.eos && self.tokens.len() < self.cfg.max_new_tokens;
        more.then_some(next)
    }
}

fn penalise_repeats(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &t in history {
        if let Some(s) = seen.get_mut(t as usize) {
            *s = true;
        }
    }
    for (l, s) in logits.iter_mut().zip(seen) {
        if s {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Draw from softmax(logits / T) restricted to the top-k and top-p sets.
fn draw(logits: &[f32], cfg: &SamplingConfig, rng: &mut SplitMix64) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if cfg.top_k > 0 {
        order.truncate(cfg.top_k);
    }
    let max = logits[order[0]] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / cfg.temperature as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    let mut cum = 0.0;
    let keep = probs.iter().position(|&p| {
        cum += p;
        cum >= cfg.top_p as f64
    });
    let keep = keep.map_or(probs.len(), |k| k + 1);
    let total: f64 = probs[..keep].iter().sum();
    let mut u = rng.next_f64() * total;
    for (i, &p) in probs[..keep].iter().enumerate() {
        if u < p {
            return order[i] as u32;
        }
        u -= p;
    }
    order[keep - 1] as u32
}
