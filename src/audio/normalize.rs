//! Feature normalisation: global mean/variance per mel bin (statistics of the training set,
//! saved with the model), per-utterance (cepstral) mean/variance, or none.

use super::Features;
use serde::{Deserialize, Serialize};

/// Standard deviations below this are treated as this (silent or constant bins).
const STD_FLOOR: f32 = 1e-5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    GlobalMvn,
    Cepstral,
    None,
}

/// Per-bin mean and standard deviation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MvnStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Running sums (f64) over any number of utterances.
pub struct MvnAccumulator {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    frames: u64,
}

impl MvnStats {
    pub fn accumulator(bins: usize) -> MvnAccumulator {
        MvnAccumulator {
            sum: vec![0.0; bins],
            sum_sq: vec![0.0; bins],
            frames: 0,
        }
    }

    /// (x - mean) / std, per bin.
    pub fn apply(&self, f: &mut Features) {
        for row in f.data.chunks_mut(f.bins) {
            for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}

impl MvnAccumulator {
    pub fn add(&mut self, f: &Features) {
        for row in f.data.chunks(f.bins) {
            for (i, &x) in row.iter().enumerate() {
                self.sum[i] += x as f64;
                self.sum_sq[i] += x as f64 * x as f64;
            }
        }
        self.frames += f.frames as u64;
    }

    pub fn finish(&self) -> MvnStats {
        let n = self.frames.max(1) as f64;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let std = self
            .sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| ((sq / n - m * m).max(0.0).sqrt() as f32).max(STD_FLOOR))
            .collect();
        MvnStats {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }
}

/// Per-utterance mean and variance normalisation.
pub fn cepstral_mvn(f: &mut Features) {
    let mut acc = MvnStats::accumulator(f.bins);
    acc.add(f);
    acc.finish().apply(f);
}
