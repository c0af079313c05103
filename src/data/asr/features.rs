//! Speech data for the recognizer: manifests -> 16 kHz audio -> log-mel features, the
//! training copies (speed perturbation, additive noise), normalisation and token ids.
//! Feature extraction runs on the CPU (data preparation, like tokenisation), one thread per
//! core.

use super::{read_manifest, ManifestEntry, Utterance};
use crate::audio::{self, FeaturePipeline, Features, LogMelConfig, MvnStats};
use crate::config::AsrConfig;
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// The feature pipeline a config's `features` section describes (no statistics yet: those
/// come from the training set, or from the checkpoint a run starts from).
pub fn feature_pipeline(config: &AsrConfig) -> FeaturePipeline {
    let f = &config.features;
    FeaturePipeline {
        log_mel: LogMelConfig {
            n_mels: f.n_mels,
            window_ms: f.window_ms as f32,
            hop_ms: f.hop_ms as f32,
            relative_floor_db: f.floor_db.map(|db| db as f32),
            ..LogMelConfig::default()
        },
        normalization: f.normalization,
        mvn: None,
    }
}

/// One training utterance in every augmented form (index 0 is the clean one).
pub struct TrainUtterance {
    pub variants: Vec<Utterance>,
}

/// `f` over `items` on one thread per core, results in order; the first error wins.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<R>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Result<Vec<R>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::format("features", "a worker thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
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

/// Training utterances with their augmented copies (speed factors from the config; white
/// noise, a telephone band and 8-bit storage with the configured probabilities), raw
/// (unnormalised) features.
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
        let channels = f.narrowband_probability > 0.0 || f.quantize_probability > 0.0;
        for &factor in &f.speed_perturb {
            let mut samples = if factor == 1.0 {
                if f.noise_probability == 0.0 && !channels {
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
            // Drawn only when asked for, so configs without them keep their noise draws.
            if f.narrowband_probability > 0.0 && rng.next_f64() < f.narrowband_probability {
                samples = audio::narrowband(&samples)?;
            }
            if f.quantize_probability > 0.0 && rng.next_f64() < f.quantize_probability {
                audio::requantize(&mut samples, 8, &mut rng);
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
