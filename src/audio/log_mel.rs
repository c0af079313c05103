//! Log-mel filterbank features: 25 ms periodic Hann windows every 10 ms, zero-padded to the
//! FFT size, power spectrum (rustfft), triangular filters on the HTK mel scale
//! (mel = 2595 log10(1 + f / 700), unnormalised, as torchaudio's `melscale_fbanks(norm=None,
//! mel_scale="htk")`), then ln(max(energy, floor)); optionally every value below the
//! utterance's loudest minus `relative_floor_db` is raised to that level (as Whisper clamps
//! its log-mel 80 dB below the peak), so that noise below it (8-bit quantisation, hiss) looks
//! the same as silence.
//! Frames: 1 + (n - window) / hop for n >= window samples, none for shorter input.

use super::Features;
use crate::error::{Error, Result};
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogMelConfig {
    pub sample_rate: u32,
    pub window_ms: f32,
    pub hop_ms: f32,
    pub n_fft: usize,
    pub n_mels: usize,
    pub f_min: f32,
    pub f_max: f32,
    pub log_floor: f32,
    /// dB below the utterance's loudest value under which every value is raised to that
    /// level (None: no relative floor, what models trained before it was added used).
    pub relative_floor_db: Option<f32>,
}

impl Default for LogMelConfig {
    fn default() -> Self {
        LogMelConfig {
            sample_rate: 16_000,
            window_ms: 25.0,
            hop_ms: 10.0,
            n_fft: 512,
            n_mels: 80,
            f_min: 0.0,
            f_max: 8_000.0,
            log_floor: 1e-10,
            relative_floor_db: None,
        }
    }
}

impl LogMelConfig {
    /// The centre frequency of each mel filter, in Hz.
    pub fn centre_frequencies(&self) -> Vec<f64> {
        let (lo, hi) = (hz_to_mel(self.f_min as f64), hz_to_mel(self.f_max as f64));
        (1..=self.n_mels)
            .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (self.n_mels + 1) as f64))
            .collect()
    }
}

fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// The FFT plan, window and filters for one configuration.
pub struct LogMel {
    config: LogMelConfig,
    window: Vec<f32>,
    hop: usize,
    fft: Arc<dyn rustfft::Fft<f32>>,
    /// [n_mels][n_fft / 2 + 1]
    filters: Vec<Vec<f32>>,
}

impl LogMel {
    pub fn new(config: &LogMelConfig) -> Result<LogMel> {
        let c = config;
        let win = (c.sample_rate as f64 * c.window_ms as f64 / 1000.0).round() as usize;
        let hop = (c.sample_rate as f64 * c.hop_ms as f64 / 1000.0).round() as usize;
        if win == 0
            || hop == 0
            || win > c.n_fft
            || c.n_mels == 0
            || c.f_max.partial_cmp(&c.f_min) != Some(std::cmp::Ordering::Greater)
        {
            return Err(Error::format(
                "log_mel",
                format!("unusable configuration {c:?}: need 0 < window <= n_fft, hop > 0, n_mels > 0, f_min < f_max"),
            ));
        }
        let window = (0..win)
            .map(|i| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / win as f64).cos()) as f32
            })
            .collect();
        let bins = c.n_fft / 2 + 1;
        let (lo, hi) = (hz_to_mel(c.f_min as f64), hz_to_mel(c.f_max as f64));
        let edges: Vec<f64> = (0..c.n_mels + 2)
            .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (c.n_mels + 1) as f64))
            .collect();
        let filters = (0..c.n_mels)
            .map(|m| {
                let (left, center, right) = (edges[m], edges[m + 1], edges[m + 2]);
                (0..bins)
                    .map(|k| {
                        let f = k as f64 * c.sample_rate as f64 / c.n_fft as f64;
                        let up = (f - left) / (center - left);
                        let down = (right - f) / (right - center);
                        up.min(down).max(0.0) as f32
                    })
                    .collect()
            })
            .collect();
        let fft = rustfft::FftPlanner::<f32>::new().plan_fft_forward(c.n_fft);
        Ok(LogMel {
            config: c.clone(),
            window,
            hop,
            fft,
            filters,
        })
    }

    /// Frames of `n` samples.
    pub fn frames(&self, n: usize) -> usize {
        if n < self.window.len() {
            0
        } else {
            1 + (n - self.window.len()) / self.hop
        }
    }

    pub fn compute(&self, samples: &[f32]) -> Features {
        let frames = self.frames(samples.len());
        let n_mels = self.config.n_mels;
        let mut data = Vec::with_capacity(frames * n_mels);
        let mut buf = vec![Complex::new(0.0f32, 0.0); self.config.n_fft];
        let mut power = vec![0.0f32; self.config.n_fft / 2 + 1];
        for t in 0..frames {
            let start = t * self.hop;
            buf.iter_mut().for_each(|c| *c = Complex::new(0.0, 0.0));
            for (i, w) in self.window.iter().enumerate() {
                buf[i].re = samples[start + i] * w;
            }
            self.fft.process(&mut buf);
            for (p, c) in power.iter_mut().zip(&buf) {
                *p = c.norm_sqr();
            }
            for filter in &self.filters {
                let e: f32 = filter.iter().zip(&power).map(|(w, p)| w * p).sum();
                data.push(e.max(self.config.log_floor).ln());
            }
        }
        if let Some(db) = self.config.relative_floor_db {
            apply_relative_floor(&mut data, db);
        }
        Features::new(frames, n_mels, data)
    }
}

/// Raise every natural-log energy in `data` to at least the largest one minus `db` decibels
/// (10 log10 of energy: `db` dB is `db` ln(10) / 10 in natural log).
fn apply_relative_floor(data: &mut [f32], db: f32) {
    let Some(peak) = data.iter().copied().reduce(f32::max) else {
        return;
    };
    let floor = peak - db * std::f32::consts::LN_10 / 10.0;
    data.iter_mut().for_each(|v| *v = v.max(floor));
}

/// Log-mel features of `samples` (at `config.sample_rate`).
pub fn log_mel(samples: &[f32], config: &LogMelConfig) -> Result<Features> {
    Ok(LogMel::new(config)?.compute(samples))
}
