//! Sample-rate conversion with `rubato`'s FFT resampler (band-limited, synchronous): the
//! whole signal is fed in whole chunks, the resampler's delay trimmed off, and the output cut
//! to round(n * to / from) samples.

use super::wav::read_wav;
use crate::error::{Error, Result};
use rubato::{FftFixedInOut, Resampler};
use std::path::Path;

pub const TARGET_RATE: u32 = 16_000;

/// Input samples per rubato call, at least; larger chunks mean a sharper anti-aliasing filter.
const MIN_CHUNK_IN: usize = 1024;

/// The chunk handed to rubato: an even number of its FFT units (from_hz / gcd input samples).
/// Its anti-aliasing filter is centred on input sample chunk / 2 (rounded down), while it
/// reports a delay of chunk_out / 2 output samples; only with an even count of units are the
/// two the same instant (otherwise 48 -> 16 kHz output came out shifted by a fraction of a
/// sample, a phase error the test below catches).
fn chunk_in(from_hz: u32, to_hz: u32) -> usize {
    let unit = (from_hz / gcd(from_hz, to_hz)) as usize;
    let pair = 2 * unit;
    MIN_CHUNK_IN.div_ceil(pair) * pair
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// round(n * to / from) in integers, so long recordings get no float rounding.
fn output_len(n: usize, from_hz: u32, to_hz: u32) -> usize {
    let (n, from, to) = (n as u128, from_hz as u128, to_hz as u128);
    ((2 * n * to + from) / (2 * from)) as usize
}

/// `samples` at `from_hz` resampled to `to_hz`: round(n * to / from) samples, output sample k
/// being the band-limited signal at time k / to_hz.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    if from_hz == 0 || to_hz == 0 {
        return Err(Error::format(
            "resample",
            format!("rates must be positive: {from_hz} -> {to_hz} Hz"),
        ));
    }
    let out_len = output_len(samples.len(), from_hz, to_hz);
    if from_hz == to_hz || out_len == 0 {
        return Ok(samples[..out_len.min(samples.len())].to_vec());
    }
    let fail = |e: &dyn std::fmt::Display| {
        Error::format("resample", format!("{from_hz} -> {to_hz} Hz: {e}"))
    };
    let mut r = FftFixedInOut::<f32>::new(
        from_hz as usize,
        to_hz as usize,
        chunk_in(from_hz, to_hz),
        1,
    )
    .map_err(|e| fail(&e))?;
    let delay = r.output_delay();
    let (chunk_in, chunk_out) = (r.input_frames_next(), r.output_frames_next());
    // Whole chunks only (the last one zero-padded) until the delayed output covers out_len.
    let mut input = vec![vec![0.0f32; chunk_in]];
    let mut output = vec![vec![0.0f32; chunk_out]];
    let mut out = Vec::with_capacity(delay + out_len + chunk_out);
    let mut pos = 0;
    while out.len() < delay + out_len {
        let take = samples.len().saturating_sub(pos).min(chunk_in);
        input[0][..take].copy_from_slice(&samples[pos..pos + take]);
        input[0][take..].fill(0.0);
        pos += take;
        let (_, written) = r
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&output[0][..written]);
    }
    out.drain(..delay);
    out.truncate(out_len);
    Ok(out)
}

/// A WAV file as 16 kHz mono samples.
pub fn load_16k(path: &Path) -> Result<Vec<f32>> {
    let w = read_wav(path)?;
    resample(&w.samples, w.sample_rate, TARGET_RATE).map_err(|e| Error::format(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_len_rounds_to_nearest() {
        assert_eq!(output_len(3, 2, 1), 2); // 1.5 rounds up
        assert_eq!(output_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(output_len(10, 3, 1), 3); // 3.33
        assert_eq!(output_len(0, 8_000, 16_000), 0);
    }

    #[test]
    fn chunk_is_an_even_number_of_fft_units() {
        assert_eq!(chunk_in(44_100, 16_000), 4 * 441); // unit 441: 1024 -> 1764
        assert_eq!(chunk_in(8_000, 16_000), 1024); // unit 1
        assert_eq!(chunk_in(48_000, 16_000), 1026); // unit 3
        assert_eq!(chunk_in(44_101, 16_000), 2 * 44_101);
    }
}
