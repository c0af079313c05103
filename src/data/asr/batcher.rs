//! Length-bucketed batches for the speech model. Utterances are sorted by frame count and cut
//! into batches whose padded size `B * T_max` stays under a frame budget, so a batch of short
//! utterances holds many and one of long utterances few, and little of any batch is padding.
//! The batches are fixed; each epoch visits them in an order shuffled from the seed.

use super::dataset::Utterance;
use crate::data::{EOS, PAD, SOS};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// One padded batch. `B = batch`, `T = frames` (the longest utterance), `S = labels` (the most
/// tokens); rows are utterances in ascending frame order.
#[derive(Clone, Debug, PartialEq)]
pub struct AsrBatch {
    pub batch: usize,
    pub frames: usize,
    pub bins: usize,
    /// `[B, T, bins]`, zero after each utterance's own frames.
    pub features: Vec<f32>,
    /// `[B]` frames of each utterance.
    pub feature_lens: Vec<u32>,
    pub labels: usize,
    /// `[B, S + 1]`: SOS then the tokens, PAD after.
    pub decoder_input: Vec<u32>,
    /// `[B, S + 1]`: the tokens then EOS, PAD after.
    pub decoder_target: Vec<u32>,
    /// `[B, S]`: the tokens, PAD after.
    pub ctc_targets: Vec<u32>,
    /// `[B]` tokens of each utterance (without SOS/EOS).
    pub target_lens: Vec<u32>,
    pub ids: Vec<String>,
}

impl AsrBatch {
    /// `b` utterances of `frames` random feature frames in [-1, 1) and `chars` random tokens
    /// (ids 4 to `vocab` - 1, after the specials), all full length: a batch of a given shape
    /// for benchmarks and kernel tuning.
    pub fn random(b: usize, frames: usize, bins: usize, chars: usize, vocab: usize) -> AsrBatch {
        let mut rng = SplitMix64::new(3);
        let mut next = |n: u64| rng.next_u64() % n;
        let features = (0..b * frames * bins)
            .map(|_| next(1000) as f32 / 500.0 - 1.0)
            .collect();
        let labels: Vec<Vec<u32>> = (0..b)
            .map(|_| {
                (0..chars)
                    .map(|_| 4 + next(vocab as u64 - 4) as u32)
                    .collect()
            })
            .collect();
        let row = chars + 1;
        let (mut decoder_input, mut decoder_target) = (vec![PAD; b * row], vec![PAD; b * row]);
        for (i, l) in labels.iter().enumerate() {
            decoder_input[i * row] = SOS;
            decoder_input[i * row + 1..(i + 1) * row].copy_from_slice(l);
            decoder_target[i * row..(i + 1) * row - 1].copy_from_slice(l);
            decoder_target[(i + 1) * row - 1] = EOS;
        }
        AsrBatch {
            batch: b,
            frames,
            bins,
            features,
            feature_lens: vec![frames as u32; b],
            labels: chars,
            decoder_input,
            decoder_target,
            ctc_targets: labels.concat(),
            target_lens: vec![chars as u32; b],
            ids: (0..b).map(|i| format!("u{i}")).collect(),
        }
    }

    /// The batch of rows `picked` only (a process's share of a data-parallel batch), padded
    /// to its own longest utterance and transcript.
    pub fn rows(&self, picked: &[usize]) -> AsrBatch {
        let (bins, s) = (self.bins, self.labels);
        let t_max = picked
            .iter()
            .map(|&r| self.feature_lens[r] as usize)
            .max()
            .unwrap_or(0);
        let s_max = picked
            .iter()
            .map(|&r| self.target_lens[r] as usize)
            .max()
            .unwrap_or(0);
        let b = picked.len();
        let mut out = AsrBatch {
            batch: b,
            frames: t_max,
            bins,
            features: vec![0.0; b * t_max * bins],
            feature_lens: picked.iter().map(|&r| self.feature_lens[r]).collect(),
            labels: s_max,
            decoder_input: vec![PAD; b * (s_max + 1)],
            decoder_target: vec![PAD; b * (s_max + 1)],
            ctc_targets: vec![PAD; b * s_max],
            target_lens: picked.iter().map(|&r| self.target_lens[r]).collect(),
            ids: picked.iter().map(|&r| self.ids[r].clone()).collect(),
        };
        for (i, &r) in picked.iter().enumerate() {
            let frames = self.feature_lens[r] as usize * bins;
            out.features[i * t_max * bins..][..frames]
                .copy_from_slice(&self.features[r * self.frames * bins..][..frames]);
            let n = self.target_lens[r] as usize + 1;
            out.decoder_input[i * (s_max + 1)..][..n]
                .copy_from_slice(&self.decoder_input[r * (s + 1)..][..n]);
            out.decoder_target[i * (s_max + 1)..][..n]
                .copy_from_slice(&self.decoder_target[r * (s + 1)..][..n]);
            out.ctc_targets[i * s_max..][..n - 1]
                .copy_from_slice(&self.ctc_targets[r * s..][..n - 1]);
        }
        out
    }
}

pub struct AsrBatcher {
    utterances: Vec<Utterance>,
    /// Indices into `utterances`, ascending in frames within and across batches.
    batches: Vec<Vec<usize>>,
    bins: usize,
    seed: u64,
}

impl AsrBatcher {
    /// Cut `utterances` into batches of at most `max_batch` utterances and at most `max_frames`
    /// padded frames (`B * T_max`). Errors name an utterance that cannot fit or whose feature
    /// bins differ from the first one's.
    pub fn new(
        utterances: Vec<Utterance>,
        max_frames: usize,
        max_batch: usize,
        seed: u64,
    ) -> Result<Self> {
        let err = |msg: String| Error::shape("AsrBatcher", msg);
        if max_batch == 0 {
            return Err(err("max_batch must be at least 1".into()));
        }
        let bins = utterances
            .first()
            .ok_or_else(|| err("no utterances".into()))?
            .features
            .bins;
        for u in &utterances {
            let frames = u.features.frames;
            if u.features.bins != bins {
                return Err(err(format!(
                    "utterance {} has {} bins, expected {bins}",
                    u.id, u.features.bins
                )));
            }
            if frames == 0 || frames > max_frames {
                return Err(err(format!(
                    "utterance {} has {frames} frames; need 1..=max_frames ({max_frames})",
                    u.id
                )));
            }
        }
        let mut order: Vec<usize> = (0..utterances.len()).collect();
        order.sort_by_key(|&i| utterances[i].features.frames);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        for i in order {
            // Sorted ascending, so utterance i sets T_max of the batch it joins.
            let padded = (current.len() + 1) * utterances[i].features.frames;
            if !current.is_empty() && (padded > max_frames || current.len() == max_batch) {
                batches.push(std::mem::take(&mut current));
            }
            current.push(i);
        }
        batches.push(current);
        Ok(AsrBatcher {
            utterances,
            batches,
            bins,
            seed,
        })
    }

    pub fn num_batches(&self) -> usize {
        self.batches.len()
    }

    pub fn utterances(&self) -> &[Utterance] {
        &self.utterances
    }

    /// The batches in length order, for evaluation.
    pub fn in_order(&self) -> impl Iterator<Item = AsrBatch> + '_ {
        self.batches.iter().map(|b| self.batch(b))
    }

    /// Every batch once, in the order of epoch `epoch` (the same for the same seed and epoch).
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = AsrBatch> + '_ {
        let mut order: Vec<usize> = (0..self.batches.len()).collect();
        SplitMix64::new(self.seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
            .shuffle(&mut order);
        order.into_iter().map(|b| self.batch(&self.batches[b]))
    }

    fn batch(&self, indices: &[usize]) -> AsrBatch {
        let rows: Vec<&Utterance> = indices.iter().map(|&i| &self.utterances[i]).collect();
        let (b, bins) = (rows.len(), self.bins);
        let t_max = rows.iter().map(|u| u.features.frames).max().unwrap_or(0);
        let s_max = rows.iter().map(|u| u.tokens.len()).max().unwrap_or(0);
        let mut features = vec![0.0; b * t_max * bins];
        let mut decoder_input = vec![PAD; b * (s_max + 1)];
        let mut decoder_target = vec![PAD; b * (s_max + 1)];
        let mut ctc_targets = vec![PAD; b * s_max];
        for (r, u) in rows.iter().enumerate() {
            let n = u.tokens.len();
            // features[r, ..frames, :] = u.features
            features[r * t_max * bins..][..u.features.data.len()].copy_from_slice(&u.features.data);
            let input = &mut decoder_input[r * (s_max + 1)..][..n + 1];
            input[0] = SOS;
            input[1..].copy_from_slice(&u.tokens);
            let target = &mut decoder_target[r * (s_max + 1)..][..n + 1];
            target[..n].copy_from_slice(&u.tokens);
            target[n] = EOS;
            ctc_targets[r * s_max..][..n].copy_from_slice(&u.tokens);
        }
        AsrBatch {
            batch: b,
            frames: t_max,
            bins,
            features,
            feature_lens: rows.iter().map(|u| u.features.frames as u32).collect(),
            labels: s_max,
            decoder_input,
            decoder_target,
            ctc_targets,
            target_lens: rows.iter().map(|u| u.tokens.len() as u32).collect(),
            ids: rows.iter().map(|u| u.id.clone()).collect(),
        }
    }
}
