//! WAV input (via `hound`): PCM 8/16/24/32-bit integer and 32-bit float, any channel count
//! (averaged to mono), any sample rate. Every failure is an error naming the file; the
//! length in the header is checked against a limit before anything is allocated. Other
//! encodings (64-bit float, ADPCM, mu-law, A-law, GSM, MP3 in WAV) are refused with the
//! encodings that are read and a command that converts the file.

use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What a refusal tells the user to do.
const SUPPORTED: &str = "WAV files of 8, 16, 24 or 32-bit integer PCM or 32-bit float are \
     read; convert it with `sox in.wav -b 16 out.wav` or `ffmpeg -i in.wav -c:a pcm_s16le out.wav`";

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
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    parse_wav(path, std::io::BufReader::new(file), max_seconds)
}

/// A WAV file's bytes held in memory (a browser page's upload), refusing audio longer than
/// `MAX_SECONDS`; `path` names it in errors.
pub fn wav_from_bytes(path: &Path, bytes: &[u8]) -> Result<Waveform> {
    parse_wav(path, std::io::Cursor::new(bytes), MAX_SECONDS)
}

fn parse_wav<R: Read + Seek>(path: &Path, mut input: R, max_seconds: f64) -> Result<Waveform> {
    let bad = |msg: String| Error::format(path, msg);
    let len = input
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io(path, e))?;
    if len == 0 {
        return Err(bad("the file is empty; expected a WAV file".into()));
    }
    if let Some(encoding) = unsupported_encoding(&mut input) {
        return Err(bad(format!("{encoding} is not supported: {SUPPORTED}")));
    }
    input.rewind().map_err(|e| Error::io(path, e))?;
    let reader = hound::WavReader::new(input)
        .map_err(|e| bad(format!("not a readable WAV file ({e}): {SUPPORTED}")))?;
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
            collect(path, reader.into_samples::<i32>(), |x| {
                (x as f64 * scale) as f32
            })?
        }
        (format, bits) => {
            return Err(bad(format!(
                "{format:?} samples of {bits} bits are not supported: {SUPPORTED}"
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

/// The encoding named by the fmt chunk of a RIFF/WAVE file when it is one this reader refuses
/// (None: readable, or not a WAV file at all, which `hound` then reports).
fn unsupported_encoding<R: Read + Seek>(f: &mut R) -> Option<String> {
    f.rewind().ok()?;
    let mut header = [0u8; 12];
    f.read_exact(&mut header).ok()?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return None;
    }
    // Chunks until "fmt " (a few at most: LIST, JUNK, bext come first in some files).
    for _ in 0..64 {
        let mut chunk = [0u8; 8];
        f.read_exact(&mut chunk).ok()?;
        let size = u32::from_le_bytes(chunk[4..8].try_into().ok()?) as u64;
        if &chunk[0..4] != b"fmt " {
            f.seek(SeekFrom::Current((size + size % 2) as i64)).ok()?;
            continue;
        }
        let mut fmt = vec![0u8; size.min(40) as usize];
        f.read_exact(&mut fmt).ok()?;
        let u16_at = |i: usize| fmt.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let mut tag = u16_at(0)?;
        let bits = u16_at(14)?;
        if tag == 0xFFFE {
            // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real tag.
            tag = u16_at(24)?;
        }
        let name = match (tag, bits) {
            (1, 8 | 16 | 24 | 32) | (3, 32) => return None,
            (1, b) => format!("{b}-bit integer PCM"),
            (3, b) => format!("{b}-bit float PCM"),
            (2, _) => "Microsoft ADPCM audio".into(),
            (6, _) => "A-law audio".into(),
            (7, _) => "mu-law audio".into(),
            (0x11, _) => "IMA ADPCM audio".into(),
            (0x31, _) => "GSM 6.10 audio".into(),
            (0x55, _) => "MP3 audio".into(),
            (t, _) => format!("audio of WAV format tag {t:#06x}"),
        };
        return Some(name);
    }
    None
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
