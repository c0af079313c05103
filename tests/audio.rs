//! The audio front end: WAV formats and malformed files, resampling, log-mel features against
//! independently computed reference values, normalisation and augmentation.
use std::path::{Path, PathBuf};
use wgformer::audio::{
    self, cepstral_mvn, log_mel, read_wav, read_wav_limited, resample, spec_augment, speed_perturb,
    Features, LogMelConfig, MvnStats, SpecAugmentConfig,
};
use wgformer::rng::SplitMix64;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audio")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgformer-audio-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sine(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (rate as f64 * seconds) as usize;
    (0..n)
        .map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// Frequency of the strongest DFT bin of `x` (a coarse scan, enough to tell tones apart).
fn dominant_frequency(x: &[f32], rate: u32) -> f64 {
    let n = x.len().min(4096);
    (1..n / 2)
        .map(|k| k as f64 * rate as f64 / n as f64)
        .map(|f| (tone_power(&x[..n], f, rate), f))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
        .unwrap()
}

/// Power of one frequency in `x`: the squared magnitude of its DFT term.
fn tone_power(x: &[f32], freq: f64, rate: u32) -> f64 {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        let a = 2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64;
        re += v as f64 * a.cos();
        im -= v as f64 * a.sin();
    }
    (re * re + im * im) / (x.len() as f64).powi(2)
}

#[test]
fn every_pcm_and_float_format_round_trips_and_channels_are_averaged() {
    let dir = temp_dir("formats");
    let wave = sine(300.0, 8000, 0.05);
    for (format, bits) in [
        (hound::SampleFormat::Int, 8u16),
        (hound::SampleFormat::Int, 16),
        (hound::SampleFormat::Int, 24),
        (hound::SampleFormat::Int, 32),
        (hound::SampleFormat::Float, 32),
    ] {
        for channels in [1u16, 2, 3] {
            let path = dir.join(format!("{format:?}-{bits}-{channels}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: 8000,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for &x in &wave {
                for c in 0..channels {
                    // Channel c carries x * (c + 1) / channels so the mean is x * (channels + 1) / 2 / channels.
                    let v = x * (c + 1) as f32 / channels as f32;
                    match format {
                        hound::SampleFormat::Float => w.write_sample(v).unwrap(),
                        hound::SampleFormat::Int => {
                            let scale = (1i64 << (bits - 1)) as f32 - 1.0;
                            w.write_sample((v * scale).round() as i32).unwrap()
                        }
                    }
                }
            }
            w.finalize().unwrap();
            let got = read_wav(&path).unwrap();
            assert_eq!(got.sample_rate, 8000);
            assert_eq!(got.samples.len(), wave.len());
            let mean_gain = (channels as f32 + 1.0) / 2.0 / channels as f32;
            let tol = if bits == 8 { 2e-2 } else { 1e-3 };
            for (g, x) in got.samples.iter().zip(&wave) {
                assert!(
                    (g - x * mean_gain).abs() < tol,
                    "{format:?} {bits} bits {channels} ch: {g} vs {}",
                    x * mean_gain
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let dir = temp_dir("malformed");
    let good = dir.join("good.wav");
    audio::write_wav_16k(&good, &sine(440.0, 16000, 0.1)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.wav", vec![]),
        (
            "random.wav",
            (0..1000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("text.wav", b"this is not audio at all".to_vec()),
        ("header-only.wav", bytes[..30].to_vec()),
    ];
    // Zero channels in the fmt chunk (bytes 22-23).
    let mut zero_channels = bytes.clone();
    zero_channels[22] = 0;
    zero_channels[23] = 0;
    cases.push(("zero-channels.wav", zero_channels));
    // A data chunk claiming hours of audio (bytes 40-43) and a truncated body.
    let mut hours = bytes[..44].to_vec();
    hours[40..44].copy_from_slice(&(16_000u32 * 2 * 3600 * 3).to_le_bytes());
    hours.extend_from_slice(&[0; 100]);
    cases.push(("hours.wav", hours));
    for (name, data) in &cases {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let err = read_wav(&path).expect_err(name).to_string();
        assert!(
            err.contains(name),
            "{name}: the error names the file: {err}"
        );
        // The same bytes held in memory (a browser page's upload): the same refusal.
        let err = audio::wav_from_bytes(&path, data)
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "{name} from bytes: {err}");
    }
    assert_eq!(
        audio::wav_from_bytes(&good, &bytes).unwrap(),
        read_wav(&good).unwrap(),
        "a WAV read from memory equals the file read from disk"
    );
    // Truncated in the middle of the samples: the header says more data than is there.
    let path = dir.join("truncated.wav");
    std::fs::write(&path, &bytes[..bytes.len() - 1001]).unwrap();
    match read_wav(&path) {
        Ok(w) => assert!(
            w.samples.len() < 1600,
            "a truncated file cannot yield every sample"
        ),
        Err(e) => assert!(e.to_string().contains("truncated.wav"), "{e}"),
    }
    let err = read_wav(&dir.join("missing.wav")).unwrap_err().to_string();
    assert!(err.contains("missing.wav"), "{err}");
    // The length limit applies before reading.
    let err = read_wav_limited(&good, 0.05).unwrap_err().to_string();
    assert!(err.contains("limit") && err.contains("good.wav"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn resampling_keeps_the_frequency_and_scales_the_length() {
    for (from, to) in [
        (44_100u32, 16_000u32),
        (8_000, 16_000),
        (22_050, 16_000),
        (16_000, 16_000),
    ] {
        let x = sine(440.0, from, 0.5);
        let y = resample(&x, from, to).unwrap();
        let want_len = (x.len() as f64 * to as f64 / from as f64).round() as usize;
        assert_eq!(y.len(), want_len, "{from} -> {to}");
        let f = dominant_frequency(&y[y.len() / 4..], to);
        assert!((f - 440.0).abs() < 8.0, "{from} -> {to}: peak at {f} Hz");
        // Amplitude is kept (band-limited filter, tone well inside the band).
        let peak = y[y.len() / 4..3 * y.len() / 4]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            (peak - 0.5).abs() < 0.03,
            "{from} -> {to}: amplitude {peak}"
        );
    }
    // Lengths that are whole multiples of the resampler's chunk, and very short input.
    for n in [1024usize, 2048, 14400, 3, 1] {
        let x = vec![0.25f32; n];
        for (from, to) in [(14_400u32, 16_000u32), (16_000, 8_000), (17_600, 16_000)] {
            let y = resample(&x, from, to).unwrap();
            assert_eq!(
                y.len(),
                (n as f64 * to as f64 / from as f64).round() as usize,
                "{n}: {from} -> {to}"
            );
        }
    }
    let faster = speed_perturb(&sine(440.0, 16000, 0.5), 1.1).unwrap();
    assert_eq!(faster.len(), (8000.0f64 / 1.1).round() as usize);
    let f = dominant_frequency(&faster[1000..], 16000);
    assert!((f - 484.0).abs() < 8.0, "speed 1.1 raises 440 Hz to {f}");
}

#[test]
fn requantize_puts_samples_on_the_8_bit_grid_with_one_step_of_dither() {
    let clean = sine(440.0, 16000, 0.25);
    let mut x = clean.clone();
    audio::requantize(&mut x, 8, &mut SplitMix64::new(5));
    let step = 1.0 / 128.0;
    let mut error_power = 0.0f64;
    for (q, c) in x.iter().zip(&clean) {
        let levels = q / step;
        assert!(
            (levels - levels.round()).abs() < 1e-4,
            "{q} is not a multiple of 1/128"
        );
        // Rounding (half a step) plus triangular dither (under one step).
        assert!((q - c).abs() <= 1.5 * step + 1e-6, "{c} -> {q}");
        error_power += ((q - c) as f64).powi(2);
    }
    // Rounding after TPDF dither: step^2 / 12 + step^2 / 6 = step^2 / 4 on average.
    let error_power = error_power / x.len() as f64;
    let expected = (step as f64).powi(2) / 4.0;
    assert!(
        (error_power / expected - 1.0).abs() < 0.15,
        "noise power {error_power:.3e}, expected {expected:.3e}"
    );
    // Silence becomes hiss: no longer all zeros, but within one step.
    let mut silence = vec![0.0f32; 4000];
    audio::requantize(&mut silence, 8, &mut SplitMix64::new(6));
    assert!(silence.iter().any(|&v| v != 0.0));
    assert!(silence.iter().all(|&v| v.abs() <= step));
}

#[test]
fn narrowband_keeps_speech_below_4_khz_and_drops_what_is_above() {
    let n = 8000;
    let low = sine(1000.0, 16000, 0.5);
    let high = sine(6000.0, 16000, 0.5);
    let mixed: Vec<f32> = low.iter().zip(&high).map(|(a, b)| a + b).collect();
    let out = audio::narrowband(&mixed).unwrap();
    assert_eq!(out.len(), n);
    let inner = &out[1000..7000];
    let (p_low, p_high) = (
        tone_power(inner, 1000.0, 16000),
        tone_power(inner, 6000.0, 16000),
    );
    let p_in = tone_power(&low[1000..7000], 1000.0, 16000);
    assert!(
        (p_low / p_in - 1.0).abs() < 0.05,
        "1 kHz kept: {p_low} vs {p_in}"
    );
    assert!(
        p_high < 1e-4 * p_in,
        "6 kHz left at {p_high} (1 kHz {p_in})"
    );
}

#[test]
fn log_mel_matches_an_independent_numpy_reference() {
    let text = std::fs::read_to_string(fixture("log_mel_reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    for name in ["tone440", "noise"] {
        let wave = read_wav(&fixture(&format!("{name}.wav"))).unwrap();
        let f = log_mel(&wave.samples, &LogMelConfig::default()).unwrap();
        let r = &reference[name];
        assert_eq!(
            f.frames as u64,
            r["frames"].as_u64().unwrap(),
            "{name} frames"
        );
        assert_eq!(f.bins as u64, r["bins"].as_u64().unwrap());
        let mut worst = 0.0f64;
        for (row, values) in r["rows"].as_object().unwrap() {
            let t: usize = row.parse().unwrap();
            for (b, v) in values.as_array().unwrap().iter().enumerate() {
                let want = v.as_f64().unwrap();
                let got = f.frame(t)[b] as f64;
                // Stated tolerance: 1e-3 in log space where the energy is well above float
                // noise; near-empty bins (log energy < -10) are compared loosely.
                let tol = if want > -10.0 { 1e-3 } else { 0.5 };
                worst = worst.max((got - want).abs() / tol);
                assert!(
                    (got - want).abs() <= tol,
                    "{name} frame {t} bin {b}: {got} vs {want}"
                );
            }
        }
        println!("{name}: worst error {worst:.3} of the tolerance");
    }
    // The tone's strongest bin is the mel band whose centre is nearest 440 Hz.
    let tone = read_wav(&fixture("tone440.wav")).unwrap();
    let f = log_mel(&tone.samples, &LogMelConfig::default()).unwrap();
    let mid = f.frame(f.frames / 2);
    let peak = (0..f.bins)
        .max_by(|&a, &b| mid[a].total_cmp(&mid[b]))
        .unwrap();
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let centre = |m: usize| mel(8000.0) * (m + 1) as f64 / 81.0;
    let nearest = (0..80)
        .min_by(|&a, &b| {
            (centre(a) - mel(440.0))
                .abs()
                .total_cmp(&(centre(b) - mel(440.0)).abs())
        })
        .unwrap();
    assert!(
        peak.abs_diff(nearest) <= 1,
        "peak bin {peak}, 440 Hz is bin {nearest}"
    );
    // Shorter than one window: no frames.
    assert_eq!(
        log_mel(&[0.0; 399], &LogMelConfig::default())
            .unwrap()
            .frames,
        0
    );
}

/// `relative_floor_db`: every value below the utterance's loudest minus that many dB is raised
/// to that level, the rest is untouched; the tone's quiet bands are far below 30 dB down.
#[test]
fn a_relative_floor_raises_what_is_quieter_than_the_peak_minus_its_decibels() {
    let tone = read_wav(&fixture("tone440.wav")).unwrap();
    let plain = log_mel(&tone.samples, &LogMelConfig::default()).unwrap();
    let config = LogMelConfig {
        relative_floor_db: Some(30.0),
        ..LogMelConfig::default()
    };
    let floored = log_mel(&tone.samples, &config).unwrap();
    let peak = plain.data.iter().copied().fold(f32::MIN, f32::max);
    let floor = peak - 3.0 * std::f32::consts::LN_10; // 30 dB in natural log of energy
    let mut raised = 0;
    for (&p, &f) in plain.data.iter().zip(&floored.data) {
        assert!((f - p.max(floor)).abs() < 1e-6, "{p} -> {f}, floor {floor}");
        raised += usize::from(p < floor);
    }
    assert!(
        raised > plain.data.len() / 2,
        "only {raised} values were below the floor"
    );
}

#[test]
fn normalisation_gives_zero_mean_and_unit_variance_per_bin() {
    let data: Vec<f32> = (0..300)
        .map(|i| ((i * 7919) % 97) as f32 * 0.1 + (i % 3) as f32)
        .collect();
    let mut f = Features::new(100, 3, data);
    let mut g = f.clone();
    let mut acc = MvnStats::accumulator(3);
    acc.add(&f);
    let stats = acc.finish();
    stats.apply(&mut f);
    cepstral_mvn(&mut g);
    for feats in [&f, &g] {
        for b in 0..3 {
            let col: Vec<f64> = (0..100).map(|t| feats.frame(t)[b] as f64).collect();
            let mean = col.iter().sum::<f64>() / 100.0;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 100.0;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "bin {b}: mean {mean} var {var}"
            );
        }
    }
    let json = serde_json::to_string(&stats).unwrap();
    assert_eq!(serde_json::from_str::<MvnStats>(&json).unwrap(), stats);
}

#[test]
fn spec_augment_masks_bands_and_spans_deterministically() {
    let cfg = SpecAugmentConfig {
        freq_masks: 1,
        max_freq_width: 5,
        time_masks: 1,
        max_time_width: 7,
    };
    let base = Features::new(50, 20, vec![1.0; 1000]);
    let run = |seed| {
        let mut f = base.clone();
        spec_augment(&mut f, &cfg, &mut SplitMix64::new(seed));
        f
    };
    assert_eq!(run(3), run(3));
    let mut saw_mask = false;
    for seed in 0..20 {
        let f = run(seed);
        let zero_cols = (0..20)
            .filter(|&b| (0..50).all(|t| f.frame(t)[b] == 0.0))
            .count();
        let zero_rows = (0..50)
            .filter(|&t| f.frame(t).iter().all(|&v| v == 0.0))
            .count();
        assert!(
            zero_cols <= 5 && zero_rows <= 7,
            "seed {seed}: {zero_cols} bands, {zero_rows} frames"
        );
        // Everything else untouched.
        let zeros = f.data.iter().filter(|&&v| v == 0.0).count();
        assert!(zeros <= zero_cols * 50 + zero_rows * 20);
        saw_mask |= zero_cols > 0 && zero_rows > 0;
    }
    assert!(saw_mask);
}

/// Output sample k of a resampler must be the signal at time k / to_hz: a 440 Hz tone
/// resampled from 44.1 kHz matches the same tone computed directly at 16 kHz, sample for sample
/// (a fraction of a sample of delay left in would show as a phase error of ~0.016 in amplitude).
#[test]
fn resampled_samples_line_up_in_time_with_the_original() {
    for (from, to) in [
        (44_100u32, 16_000u32),
        (22_050, 16_000),
        (8_000, 16_000),
        (48_000, 16_000),
    ] {
        let x = sine(440.0, from, 0.5);
        let y = resample(&x, from, to).unwrap();
        let direct = sine(440.0, to, 0.5);
        let (lo, hi) = (y.len() / 4, 3 * y.len() / 4);
        let err = y[lo..hi]
            .iter()
            .zip(&direct[lo..hi])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err < 0.004,
            "{from} -> {to}: max error {err} against the direct tone"
        );
    }
}
