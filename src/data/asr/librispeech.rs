//! The LibriSpeech layout: `<dir>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt` lists
//! `ID TRANSCRIPT` lines, and each utterance's audio is `ID.flac` beside it.

use super::manifest::ManifestEntry;
use super::transcript::normalize_transcript;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Every utterance under `dir`, ordered by speaker, chapter and line; `voice` is the speaker id.
pub fn read_librispeech(dir: impl AsRef<Path>) -> Result<Vec<ManifestEntry>> {
    let dir = dir.as_ref();
    let mut entries = Vec::new();
    for speaker_dir in subfolders(dir)? {
        for chapter_dir in subfolders(&speaker_dir)? {
            let speaker = file_name(&speaker_dir);
            let chapter = file_name(&chapter_dir);
            let trans = chapter_dir.join(format!("{speaker}-{chapter}.trans.txt"));
            read_chapter(&trans, &speaker, &mut entries)?;
        }
    }
    if entries.is_empty() {
        return Err(Error::format(
            dir,
            "no <speaker>/<chapter>/*.trans.txt files with utterances",
        ));
    }
    Ok(entries)
}

fn read_chapter(trans: &Path, speaker: &str, entries: &mut Vec<ManifestEntry>) -> Result<()> {
    let text = std::fs::read_to_string(trans).map_err(|e| Error::io(trans, e))?;
    let folder = trans.parent().expect("a chapter folder");
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |msg: String| Error::format(trans, format!("line {}: {msg}", i + 1));
        let (id, transcript) = line
            .split_once(' ')
            .ok_or_else(|| at("expected `ID TRANSCRIPT`".into()))?;
        let audio = folder.join(format!("{id}.flac"));
        if !audio.is_file() {
            return Err(at(format!("audio {} does not exist", audio.display())));
        }
        entries.push(ManifestEntry {
            audio,
            voice: speaker.to_string(),
            transcript: normalize_transcript(transcript),
        });
    }
    Ok(())
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Samples of a FLAC file as f32 in [-1, 1), channels averaged to mono, and its sample rate.
pub fn read_flac(path: impl AsRef<Path>) -> Result<(Vec<f32>, u32)> {
    let path = path.as_ref();
    let bad = |e: claxon::Error| Error::format(path, format!("not a readable FLAC file: {e}"));
    let mut reader = claxon::FlacReader::open(path).map_err(bad)?;
    let info = reader.streaminfo();
    let channels = info.channels as usize;
    // Scale by 2^(bits-1) so full scale maps to [-1, 1) whatever the bit depth.
    let scale = 1.0 / (1u64 << (info.bits_per_sample - 1)) as f32 / channels as f32;
    let mut mono = Vec::with_capacity(info.samples.unwrap_or(0).min(1 << 24) as usize);
    let mut frame_sum = 0i64;
    for (i, sample) in reader.samples().enumerate() {
        frame_sum += i64::from(sample.map_err(bad)?);
        if (i + 1) % channels == 0 {
            mono.push(frame_sum as f32 * scale);
            frame_sum = 0;
        }
    }
    Ok((mono, info.sample_rate))
}
