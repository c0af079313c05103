//! Training-time augmentation for speaker and channel variety: speed perturbation (the
//! signal resampled, as Kaldi's 0.9/1.0/1.1 recipe does with sox), white noise at a chosen
//! SNR, channels (8-bit storage, a telephone band) and SpecAugment's frequency and time masks
//! on the features. Deterministic per seed.

use super::{resample, Features};
use crate::error::Result;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecAugmentConfig {
    pub freq_masks: usize,
    pub max_freq_width: usize,
    pub time_masks: usize,
    pub max_time_width: usize,
}

impl Default for SpecAugmentConfig {
    fn default() -> Self {
        SpecAugmentConfig {
            freq_masks: 2,
            max_freq_width: 10,
            time_masks: 2,
            max_time_width: 20,
        }
    }
}

/// Uniform in 0..=max.
fn up_to(rng: &mut SplitMix64, max: usize) -> usize {
    (rng.next_u64() % (max as u64 + 1)) as usize
}

/// Zero `freq_masks` bands of up to `max_freq_width` bins and `time_masks` spans of up to
/// `max_time_width` frames (zero is the mean after normalisation).
pub fn spec_augment(f: &mut Features, cfg: &SpecAugmentConfig, rng: &mut SplitMix64) {
    let bins = f.bins;
    for _ in 0..cfg.freq_masks {
        let w = up_to(rng, cfg.max_freq_width.min(bins));
        let start = up_to(rng, bins - w);
        for row in f.data.chunks_mut(bins) {
            row[start..start + w].fill(0.0);
        }
    }
    for _ in 0..cfg.time_masks {
        let w = up_to(rng, cfg.max_time_width.min(f.frames));
        let start = up_to(rng, f.frames - w);
        f.data[start * bins..(start + w) * bins].fill(0.0);
    }
}

/// The signal played `factor` times faster (and higher): 16 kHz in, 16 kHz out.
pub fn speed_perturb(samples: &[f32], factor: f32) -> Result<Vec<f32>> {
    let from = (16_000.0 * factor as f64).round() as u32;
    resample(samples, from, 16_000)
}

/// Re-quantise to `bits`-bit PCM with triangular (TPDF) dither of one step, as sox does when it
/// lowers the bit depth: the hiss that fills an 8-bit recording's quiet frames. `bits` is
/// taken within 2..=24 (the PCM depths a WAV holds).
pub fn requantize(samples: &mut [f32], bits: u32, rng: &mut SplitMix64) {
    let steps = (1u64 << (bits.clamp(2, 24) - 1)) as f32; // full scale [-1, 1) in 2^bits levels
    for x in samples.iter_mut() {
        let dither = (rng.next_f64() - rng.next_f64()) as f32;
        *x = (*x * steps + dither).round().clamp(-steps, steps - 1.0) / steps;
    }
}

/// Telephone bandwidth: 16 kHz down to 8 kHz and back, so nothing above 4 kHz is left.
pub fn narrowband(samples: &[f32]) -> Result<Vec<f32>> {
    let low = resample(samples, 16_000, 8_000)?;
    let mut back = resample(&low, 8_000, 16_000)?;
    back.resize(samples.len(), 0.0);
    Ok(back)
}

/// Add white Gaussian noise at `snr_db` relative to the signal's mean power.
pub fn add_noise(samples: &mut [f32], snr_db: f32, rng: &mut SplitMix64) {
    let power =
        samples.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / samples.len().max(1) as f64;
    let std = (power / 10f64.powf(snr_db as f64 / 10.0)).sqrt();
    for pair in samples.chunks_mut(2) {
        // Box-Muller: two normals from two uniforms.
        let u1 = rng.next_f64().max(1e-12);
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let theta = 2.0 * std::f64::consts::PI * u2;
        pair[0] += (r * theta.cos()) as f32;
        if let Some(x) = pair.get_mut(1) {
            *x += (r * theta.sin()) as f32;
        }
    }
}
