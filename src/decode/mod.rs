//! Generation: greedy, sampling (temperature, top-k, top-p, repetition penalty) and beam search,
//! each over a key/value cache so a new token costs one incremental step, not a re-run of
//! the prefix. Only the last position's logits ([B, V]) come back to the CPU each step.

mod beam;
mod ctc;
mod ctc_prefix;
mod lm;
mod sampling;
mod speech;

pub use beam::{
    beam_search, beam_search_async, joint_beam_search, joint_beam_search_async, BeamConfig,
};
pub use ctc::ctc_greedy;
pub use ctc_prefix::{CtcPrefixScorer, PrefixState};
pub use lm::{CausalLmDecoder, Recompute};
pub use sampling::{
    greedy, greedy_batch, greedy_batch_async, sample, sample_async, SamplingConfig,
};
pub use speech::{Boundary, ShallowFusion, SpeechDecoder, SpeechState};

use crate::error::Result;
use crate::ops;
use crate::tensor::Tensor;

/// A model that extends sequences one step at a time.
// Used generically, never as `dyn` or across threads: the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait IncrementalDecoder {
    /// Whatever the model keeps between steps (its KV caches).
    type State;
    /// A fresh state for `batch` sequences.
    fn start(&self, batch: usize) -> Result<Self::State>;
    /// Feed `ids` ([batch, t_new], row-major) after what `state` has seen; returns the
    /// logits of each sequence's last new position, [batch, vocab] row-major. A future: the
    /// logits are a readback, which a browser page awaits (natively it is ready at once, and
    /// the searches' blocking forms wrap it in `gpu::block_on`).
    async fn step(&self, state: &mut Self::State, ids: &[u32], batch: usize) -> Result<Vec<f32>>;
    /// Keep sequence `order[i]` as sequence i (beam search re-ranks beams).
    fn reorder(&self, state: &mut Self::State, order: &[u32]) -> Result<()>;
    fn vocab_size(&self) -> usize;
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// log softmax of one row, in f64 for stable beam scores.
pub fn log_softmax(v: &[f32]) -> Vec<f64> {
    let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = v.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    v.iter().map(|&x| x as f64 - lse).collect()
}

/// Logits of the last position: [B, T, V] -> CPU [B * V].
pub(crate) async fn last_position(logits: &Tensor) -> Result<Vec<f32>> {
    let t = logits.shape()[1];
    ops::slice(logits, 1, t - 1, 1)?.to_vec_async().await
}
