//! Speech data for the recognizer: manifests -> 16 kHz audio -> log-mel features, the
//! training copies (speed perturbation, additive noise), normalisation and token ids.
//! Feature extraction runs on the CPU (data preparation, like tokenisation), two threads.

use crate::audio::{self, Features, LogMelConfig, MvnStats, Normalization};
use crate::config::AsrConfig;
use crate::data::asr::{read_manifest, ManifestEntry, Utterance};
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Audio -> normalised features, exactly as in training: saved with every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeaturePipeline {
    pub log_mel: LogMelConfig,
    pub normalization: Normalization,
    /// Per-bin statistics of the training set (global_mvn only).
    pub mvn: Option<MvnStats>,
}

impl FeaturePipeline {
    pub fn from_config(config: &AsrConfig) -> Result<FeaturePipeline> {
        let f = &config.features;
        let normalization = match f.normalization.as_str() {
            "global_mvn" => Normalization::GlobalMvn,
            "cepstral" => Normalization::Cepstral,
            _ => Normalization::None,
        };
        Ok(FeaturePipeline {
            log_mel: LogMelConfig {
                n_mels: f.n_mels,
                window_ms: f.window_ms as f32,
                hop_ms: f.hop_ms as f32,
                ..LogMelConfig::default()
            },
            normalization,
            mvn: None,
        })
    }

    /// Log-mel features of 16 kHz samples, before normalisation.
    pub fn raw(&self, samples: &[f32]) -> Result<Features> {
        audio::log_mel(samples, &self.log_mel)
    }

    pub fn normalize(&self, f: &mut Features) {
        match (&self.normalization, &self.mvn) {
            (Normalization::GlobalMvn, Some(stats)) => stats.apply(f),
            (Normalization::Cepstral, _) => audio::cepstral_mvn(f),
            _ => {}
        }
    }

    /// Normalised features of a 16 kHz waveform.
    pub fn features(&self, samples: &[f32]) -> Result<Features> {
        let mut f = self.raw(samples)?;
        self.normalize(&mut f);
        Ok(f)
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::format("features.json", e))
    }

    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<FeaturePipeline> {
        serde_json::from_slice(bytes).map_err(|e| Error::format(path, e))
    }
}

/// One training utterance in every augmented form (index 0 is the clean one).
pub struct TrainUtterance {
    pub variants: Vec<Utterance>,
}

/// `f` over `items` on two threads, results in order; the first error wins.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let half = items.len().div_ceil(2);
    let (left, right) = items.split_at(half.min(items.len()));
    let (a, b) = std::thread::scope(|s| {
        let h = s.spawn(|| right.iter().map(&f).collect::<Result<Vec<R>>>());
        let a = left.iter().map(&f).collect::<Result<Vec<R>>>();
        (
            a,
            h.join()
                .unwrap_or_else(|_| Err(Error::format("features", "a worker thread panicked"))),
        )
    });
    let mut out = a?;
    out.extend(b?);
    Ok(out)
}

/// The utterance id is the audio path (unique across splits and corpora).
fn utterance(entry: &ManifestEntry, features: Features, tokenizer: &Tokenizer) -> Utterance {
    Utterance::new(
        entry.audio.display().to_string(),
        features,
        &entry.transcript,
        tokenizer,
    )
}

/// Manifest entries of `file` (relative to the corpus folder), the first `limit` if set.
pub fn manifest(
    config: &AsrConfig,
    file: &str,
    limit: Option<usize>,
) -> Result<Vec<ManifestEntry>> {
    let mut entries = read_manifest(config.data.corpus_dir.join(file))?;
    if let Some(n) = limit {
        entries.truncate(n);
    }
    Ok(entries)
}

/// Training utterances with their augmented copies (speed factors from the config, white
/// noise with the configured probability), raw (unnormalised) features.
pub fn load_train(
    entries: &[ManifestEntry],
    pipeline: &FeaturePipeline,
    config: &AsrConfig,
    tokenizer: &Tokenizer,
) -> Result<Vec<TrainUtterance>> {
    let f = &config.features;
    let seed = config.train.seed;
    let indexed: Vec<(usize, &ManifestEntry)> = entries.iter().enumerate().collect();
    parallel_map(&indexed, |&(i, entry)| {
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let clean = audio::load_16k(&entry.audio)?;
        let mut variants = vec![utterance(entry, pipeline.raw(&clean)?, tokenizer)];
        for &factor in &f.speed_perturb {
            let mut samples = if factor == 1.0 {
                if f.noise_probability == 0.0 {
                    continue; // the clean copy already covers it
                }
                clean.clone()
            } else {
                audio::speed_perturb(&clean, factor as f32)?
            };
            if rng.next_f64() < f.noise_probability {
                let [lo, hi] = f.noise_snr_db;
                let snr = lo + (hi - lo) * rng.next_f64();
                audio::add_noise(&mut samples, snr as f32, &mut rng);
            }
            variants.push(utterance(entry, pipeline.raw(&samples)?, tokenizer));
        }
        Ok(TrainUtterance { variants })
    })
}

/// Evaluation utterances: clean, normalised features.
pub fn load_eval(
    entries: &[ManifestEntry],
    pipeline: &FeaturePipeline,
    tokenizer: &Tokenizer,
) -> Result<Vec<Utterance>> {
    parallel_map(entries, |entry| {
        let samples = audio::load_16k(&entry.audio)?;
        Ok(utterance(entry, pipeline.features(&samples)?, tokenizer))
    })
}

/// Global mean/variance over the clean training features.
pub fn mvn_stats(train: &[TrainUtterance]) -> MvnStats {
    let mut acc = MvnStats::accumulator(train[0].variants[0].features.bins);
    for u in train {
        acc.add(&u.variants[0].features);
    }
    acc.finish()
}
