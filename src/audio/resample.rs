//! Sample-rate conversion with `rubato`'s FFT resampler (band-limited, synchronous): the
//! whole signal is fed in chunks, the resampler's delay trimmed off, and the output cut to
//! round(n * to / from) samples.

use super::wav::read_wav;
use crate::error::{Error, Result};
use rubato::{FftFixedIn, Resampler};
use std::path::Path;

pub const TARGET_RATE: u32 = 16_000;
const CHUNK: usize = 1024;

/// `samples` at `from_hz` resampled to `to_hz`.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    if from_hz == 0 || to_hz == 0 {
        return Err(Error::format(
            "resample",
            format!("rates must be positive: {from_hz} -> {to_hz} Hz"),
        ));
    }
    if from_hz == to_hz || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let fail = |e: &dyn std::fmt::Display| {
        Error::format("resample", format!("{from_hz} -> {to_hz} Hz: {e}"))
    };
    let mut r = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, CHUNK, 2, 1)
        .map_err(|e| fail(&e))?;
    let target = (samples.len() as f64 * to_hz as f64 / from_hz as f64).round() as usize;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(target + delay + CHUNK);
    let mut pos = 0;
    while pos + r.input_frames_next() <= samples.len() {
        let next = r.input_frames_next();
        let chunk = r
            .process(&[&samples[pos..pos + next]], None)
            .map_err(|e| fail(&e))?;
        out.extend_from_slice(&chunk[0]);
        pos += next;
    }
    // The tail (rubato refuses an empty partial chunk: then flush with zeros instead).
    let tail: &[f32] = &samples[pos..];
    let chunk = if tail.is_empty() {
        r.process_partial::<&[f32]>(None, None)
    } else {
        r.process_partial(Some(&[tail]), None)
    }
    .map_err(|e| fail(&e))?;
    out.extend_from_slice(&chunk[0]);
    // Flush the samples still inside the resampler.
    while out.len() < delay + target {
        let chunk = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| fail(&e))?;
        if chunk[0].is_empty() {
            break;
        }
        out.extend_from_slice(&chunk[0]);
    }
    out.resize(delay + target, 0.0);
    Ok(out.split_off(delay))
}

/// A WAV file as 16 kHz mono samples.
pub fn load_16k(path: &Path) -> Result<Vec<f32>> {
    let w = read_wav(path)?;
    resample(&w.samples, w.sample_rate, TARGET_RATE).map_err(|e| Error::format(path, e))
}
