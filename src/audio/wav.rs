//! WAV input (via `hound`): PCM 8/16/24/32-bit integer and 32-bit float, any channel count
//! (averaged to mono), any sample rate. Every failure is an error naming the file; the
//! length in the header is checked against a limit before anything is allocated.

use crate::error::{Error, Result};
use std::path::Path;

/// Longest audio accepted by default (a clip, not a recording session).
pub const MAX_SECONDS: f64 = 600.0;

/// Mono samples in [-1, 1] at `sample_rate`.
#[derive(Clone, Debug, PartialEq)]
pub struct Waveform {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Waveform {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Read a WAV file, refusing audio longer than `MAX_SECONDS`.
pub fn read_wav(path: &Path) -> Result<Waveform> {
    read_wav_limited(path, MAX_SECONDS)
}

pub fn read_wav_limited(path: &Path, max_seconds: f64) -> Result<Waveform> {
    let bad = |msg: String| Error::format(path, msg);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(bad("the file is empty; expected a WAV file".into()));
    }
    let reader =
        hound::WavReader::open(path).map_err(|e| bad(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(bad("the header declares 0 channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(bad("the header declares a sample rate of 0 Hz".into()));
    }
    // duration() is the data chunk's frame count from the header: bound it before reading.
    let frames = reader.duration() as u64;
    let seconds = frames as f64 / spec.sample_rate as f64;
    if seconds > max_seconds {
        return Err(bad(format!(
            "{seconds:.0} s of audio ({frames} frames at {} Hz): longer than the {max_seconds:.0} s limit",
            spec.sample_rate
        )));
    }
    let channels = spec.channels as usize;
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => collect(path, reader.into_samples::<f32>(), |x| x)?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            collect(path, reader.into_samples::<i32>(), |x| (x as f64 * scale) as f32)?
        }
        (format, bits) => {
            return Err(bad(format!(
                "unsupported sample format {format:?} with {bits} bits; expected PCM 8/16/24/32-bit or 32-bit float"
            )))
        }
    };
    if !interleaved.len().is_multiple_of(channels) {
        return Err(bad(format!(
            "truncated: {} samples do not fill whole frames of {channels} channels",
            interleaved.len()
        )));
    }
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Waveform {
        samples,
        sample_rate: spec.sample_rate,
    })
}

fn collect<S, R: std::io::Read>(
    path: &Path,
    samples: hound::WavIntoSamples<R, S>,
    convert: impl Fn(S) -> f32,
) -> Result<Vec<f32>>
where
    S: hound::Sample,
{
    samples
        .map(|s| {
            s.map(&convert)
                .map_err(|e| Error::format(path, format!("truncated or damaged sample data: {e}")))
        })
        .collect()
}

/// Write 16-bit mono PCM at 16 kHz (fixtures, tools), clamping to [-1, 1].
pub fn write_wav_16k(path: &Path, samples: &[f32]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| Error::format(path, format!("cannot write WAV: {e}"));
    let mut w = hound::WavWriter::create(path, spec).map_err(fail)?;
    for &x in samples {
        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(fail)?;
    }
    w.finalize().map_err(fail)
}
