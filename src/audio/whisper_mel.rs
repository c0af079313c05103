//! Whisper's log-mel spectrogram, computed as faster-whisper's `FeatureExtractor` does (which
//! is openai-whisper's `log_mel_spectrogram` with 160 zero samples appended instead of 30 s):
//!
//! 1. append 160 zero samples, reflect-pad 200 samples on each side (a centred STFT);
//! 2. frames of 400 samples (25 ms) every 160 (10 ms), a periodic Hann window, the power
//!    spectrum |FFT|^2 of 201 bins; the last frame is dropped;
//! 3. 80 triangular mel filters on the Slaney scale with Slaney area normalisation
//!    (librosa's `filters.mel(sr=16000, n_fft=400, n_mels=80)`, `transformers`' `mel_filter_bank`);
//! 4. log10(max(mel, 1e-10)), floored at (the clip's maximum - 8), then (x + 4) / 4.
//!
//! The whole clip is one spectrogram (so the floor is the clip's); the model reads it in
//! windows of 3000 frames (30 s), the last one padded with zeros *in this normalised domain*,
//! as faster-whisper pads (`window`). Frames are rows: [frames, n_mels], the layout the
//! encoder's channels-last convolution reads.

use rustfft::{num_complex::Complex, FftPlanner};

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in one 30 s window of the encoder.
pub const WINDOW_FRAMES: usize = 3000;

/// A log-mel spectrogram: `data` is [frames, n_mels] row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct WhisperMel {
    pub frames: usize,
    pub n_mels: usize,
    pub data: Vec<f32>,
}

impl WhisperMel {
    /// Frames `start..start + len` (cut at the end) as [frames, n_mels], zeros after them:
    /// a window of the encoder (frames = 3000 for 30 s).
    pub fn window(&self, start: usize, len: usize, frames: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * self.n_mels];
        let end = (start + len.min(frames)).min(self.frames);
        if start < end {
            let src = &self.data[start * self.n_mels..end * self.n_mels];
            out[..src.len()].copy_from_slice(src);
        }
        out
    }
}

/// The periodic Hann window of `n` points: 0.5 - 0.5 cos(2 pi i / n).
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Hz -> mel on the Slaney scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `n_mels` triangular filters over the `n_fft / 2 + 1` FFT bins, [n_mels, bins] row-major:
/// centres evenly spaced in mel from 0 Hz to the Nyquist frequency, each filter scaled to unit
/// area (2 / (right edge - left edge) in Hz, Slaney's normalisation).
pub fn mel_filters(n_mels: usize, n_fft: usize, sample_rate: usize) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let max_mel = hz_to_mel(sample_rate as f64 / 2.0);
    // n_mels + 2 edges: filter m rises from edge m to m + 1 and falls to m + 2.
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut w = vec![0.0; n_mels * bins];
    for m in 0..n_mels {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let norm = 2.0 / (hi - lo);
        for b in 0..bins {
            let f = b as f64 * sample_rate as f64 / n_fft as f64;
            let rise = (f - lo) / (mid - lo);
            let fall = (hi - f) / (hi - mid);
            w[m * bins + b] = rise.min(fall).max(0.0) * norm;
        }
    }
    w
}

/// Index `i` (which may lie up to `n` before or after the signal) mirrored into `0..n` without
/// repeating the edge sample (numpy's `reflect`).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let j = i.rem_euclid(period);
    (if j < n as isize { j } else { period - j }) as usize
}

/// The log-mel spectrogram of 16 kHz mono `samples` with `n_mels` bins (80 for Whisper up to
/// large-v2, 128 for large-v3): `samples.len() / 160 + 1` frames.
pub fn whisper_log_mel(samples: &[f32], n_mels: usize) -> WhisperMel {
    // 1. 160 zeros appended, then the centred frames read the reflect-padded signal.
    let mut signal: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    signal.extend(std::iter::repeat_n(0.0, HOP));
    let n = signal.len();
    let half = (N_FFT / 2) as isize;
    // numpy's stft gives 1 + n / HOP frames over the padded n + N_FFT samples; the last is dropped.
    let frames = n / HOP;
    let bins = N_FFT / 2 + 1;
    let window = hann(N_FFT);
    let filters = mel_filters(n_mels, N_FFT, SAMPLE_RATE);
    let fft = FftPlanner::<f64>::new().plan_fft_forward(N_FFT);
    let mut buf = vec![Complex::new(0.0, 0.0); N_FFT];
    let mut power = vec![0.0; bins];
    let mut log_mel = vec![0.0f64; frames * n_mels];
    for t in 0..frames {
        // 2. frame t covers padded samples t * HOP .. t * HOP + N_FFT, i.e. signal index - 200.
        for (i, c) in buf.iter_mut().enumerate() {
            let at = reflect((t * HOP + i) as isize - half, n);
            *c = Complex::new(signal[at] * window[i], 0.0);
        }
        fft.process(&mut buf);
        for (p, c) in power.iter_mut().zip(&buf) {
            *p = c.norm_sqr();
        }
        // 3. + 4. mel energies, log10 with the 1e-10 floor.
        for m in 0..n_mels {
            let row = &filters[m * bins..(m + 1) * bins];
            let e: f64 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
            log_mel[t * n_mels + m] = e.max(1e-10).log10();
        }
    }
    // 4. the dynamic range is cut 8 decades (80 dB) below the clip's loudest bin.
    let floor = log_mel.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - 8.0;
    let data = log_mel
        .iter()
        .map(|&v| ((v.max(floor) + 4.0) / 4.0) as f32)
        .collect();
    WhisperMel {
        frames,
        n_mels,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_mel_scale_is_linear_below_1khz_and_inverts() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        for hz in [0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn each_filter_has_unit_area_in_hz() {
        // Slaney normalisation: a triangle of height 2 / (hi - lo) over (lo, hi) has area 1; on
        // the 40 Hz FFT grid the sum times 40 Hz approximates it where filters span many bins.
        let w = mel_filters(80, N_FFT, SAMPLE_RATE);
        let bins = N_FFT / 2 + 1;
        let area = |m: usize| w[m * bins..(m + 1) * bins].iter().sum::<f64>() * 40.0;
        for m in 60..80 {
            assert!((area(m) - 1.0).abs() < 0.05, "filter {m}: area {}", area(m));
        }
    }

    #[test]
    fn reflect_mirrors_without_repeating_the_edge() {
        let idx: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(idx, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn frames_count_and_windows_pad_with_zeros() {
        let mel = whisper_log_mel(&vec![0.1; 16_000], 80);
        assert_eq!(mel.frames, 101);
        let w = mel.window(0, WINDOW_FRAMES, WINDOW_FRAMES);
        assert_eq!(w.len(), WINDOW_FRAMES * 80);
        assert_eq!(&w[..101 * 80], &mel.data[..]);
        assert!(w[101 * 80..].iter().all(|&v| v == 0.0));
        let cut = mel.window(10, 50, WINDOW_FRAMES);
        assert_eq!(&cut[..50 * 80], &mel.data[10 * 80..60 * 80]);
        assert!(cut[50 * 80..].iter().all(|&v| v == 0.0));
        assert!(mel
            .window(5000, 10, WINDOW_FRAMES)
            .iter()
            .all(|&v| v == 0.0));
    }
}
