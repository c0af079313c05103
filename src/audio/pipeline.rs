//! The recognizer's audio front end as one value: 16 kHz samples -> log-mel features ->
//! normalisation. Saved with every recognizer checkpoint (`features.json`), so inference
//! computes exactly the features the model was trained on.

use super::{cepstral_mvn, log_mel, Features, LogMelConfig, MvnStats, Normalization};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Audio -> normalised features, exactly as in training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeaturePipeline {
    pub log_mel: LogMelConfig,
    pub normalization: Normalization,
    /// Per-bin statistics of the training set (global_mvn only).
    pub mvn: Option<MvnStats>,
}

impl FeaturePipeline {
    /// Log-mel features of 16 kHz samples, before normalisation.
    pub fn raw(&self, samples: &[f32]) -> Result<Features> {
        log_mel(samples, &self.log_mel)
    }

    pub fn normalize(&self, f: &mut Features) {
        match (&self.normalization, &self.mvn) {
            (Normalization::GlobalMvn, Some(stats)) => stats.apply(f),
            (Normalization::Cepstral, _) => cepstral_mvn(f),
            _ => {}
        }
    }

    /// Normalised features of a 16 kHz waveform.
    pub fn features(&self, samples: &[f32]) -> Result<Features> {
        let mut f = self.raw(samples)?;
        self.normalize(&mut f);
        Ok(f)
    }

    /// Normalised features of a 16 kHz waveform that holds nothing above `bandwidth_hz` (half
    /// the rate it was recorded at, e.g. 4 kHz for telephone audio). The mel filters above the
    /// band would read silence the model never saw under speech; they read the training mean
    /// instead (0 after normalisation), which halves the error rate of 8 kHz copies of the test
    /// sentences. Without normalisation the features are left as they are.
    pub fn features_band_limited(&self, samples: &[f32], bandwidth_hz: f64) -> Result<Features> {
        let mut f = self.features(samples)?;
        if self.normalization == Normalization::None {
            return Ok(f);
        }
        // The resampler's transition band ends a little below the new Nyquist frequency.
        let edge = 0.92 * bandwidth_hz;
        let missing: Vec<usize> = (self.log_mel.centre_frequencies().iter())
            .enumerate()
            .filter(|(_, &hz)| hz > edge)
            .map(|(bin, _)| bin)
            .collect();
        for row in f.data.chunks_mut(f.bins) {
            for &bin in &missing {
                row[bin] = 0.0;
            }
        }
        Ok(f)
    }

    /// Seconds of audio per feature frame (the hop).
    pub fn frame_seconds(&self) -> f64 {
        self.log_mel.hop_ms as f64 / 1000.0
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::format("features.json", e))
    }

    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<FeaturePipeline> {
        serde_json::from_slice(bytes).map_err(|e| Error::format(path, e))
    }
}
