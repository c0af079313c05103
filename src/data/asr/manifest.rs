//! Speech manifests: a TSV file listing utterances, one per line under the header
//! `audio<TAB>voice<TAB>transcript`. Audio paths in the file are relative to the manifest's
//! folder, so a corpus folder can be moved as a whole; in memory they are joined to it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub const MANIFEST_HEADER: &str = "audio\tvoice\ttranscript";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path of the audio file (joined to the manifest's folder when read).
    pub audio: PathBuf,
    /// Who or what spoke it: a speaker id, or a TTS voice description.
    pub voice: String,
    pub transcript: String,
}

/// Every entry of the manifest at `path`; errors name the file and the 1-based line.
pub fn read_manifest(path: impl AsRef<Path>) -> Result<Vec<ManifestEntry>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header == MANIFEST_HEADER => {}
        Some((_, header)) => {
            return Err(Error::format(
                path,
                format!("line 1 is {header:?}, expected the header {MANIFEST_HEADER:?}"),
            ))
        }
        None => return Err(Error::format(path, "empty file, expected the header line")),
    }
    let mut entries = Vec::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let at = |msg: &str| Error::format(path, format!("line {}: {msg}", i + 1));
        let fields: Vec<&str> = line.split('\t').collect();
        let [audio, voice, transcript] = fields[..] else {
            return Err(at(&format!(
                "{} tab-separated columns, expected 3 (audio, voice, transcript)",
                fields.len()
            )));
        };
        if audio.is_empty() {
            return Err(at("empty audio path"));
        }
        if transcript.trim().is_empty() {
            return Err(at("empty transcript"));
        }
        entries.push(ManifestEntry {
            audio: folder.join(audio),
            voice: voice.to_string(),
            transcript: transcript.to_string(),
        });
    }
    Ok(entries)
}

/// Write `entries` to `path` through a temporary file renamed into place, so a reader never
/// sees half a manifest. Audio paths under the manifest's folder are written relative to it.
pub fn write_manifest(path: impl AsRef<Path>, entries: &[ManifestEntry]) -> Result<()> {
    let path = path.as_ref();
    let folder = path.parent().unwrap_or(Path::new(""));
    let mut text = format!("{MANIFEST_HEADER}\n");
    for (i, e) in entries.iter().enumerate() {
        let audio = e.audio.strip_prefix(folder).unwrap_or(&e.audio);
        let audio = audio.to_str().ok_or_else(|| {
            Error::format(
                path,
                format!("entry {i}: audio path {audio:?} is not UTF-8"),
            )
        })?;
        for (name, value) in [
            ("audio", audio),
            ("voice", &e.voice),
            ("transcript", &e.transcript),
        ] {
            if value.contains(['\t', '\n', '\r']) {
                return Err(Error::format(
                    path,
                    format!("entry {i}: {name} {value:?} contains a tab or a line break"),
                ));
            }
        }
        if audio.is_empty() || e.transcript.trim().is_empty() {
            return Err(Error::format(
                path,
                format!("entry {i}: empty audio path or transcript"),
            ));
        }
        text.push_str(&format!("{audio}\t{}\t{}\n", e.voice, e.transcript));
    }
    let tmp = path.with_extension("tsv.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `text` without the lines whose normalised form is a transcript of one of `manifests`, and
/// how many lines that removed: so that a language model for the recognizer never reads the
/// sentences it will be tested on (the corpus's val / test manifests).
pub fn without_transcripts_of(
    text: &str,
    manifests: &[std::path::PathBuf],
) -> Result<(String, usize)> {
    let mut spoken = std::collections::HashSet::new();
    for m in manifests {
        for e in read_manifest(m)? {
            spoken.insert(super::normalize_transcript(&e.transcript));
        }
    }
    let mut removed = 0;
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        if spoken.contains(&super::normalize_transcript(line)) {
            removed += 1;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok((kept, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wgformer-manifest-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn manifest_round_trips_with_paths_relative_to_its_folder() {
        let dir = scratch("roundtrip");
        let entries = vec![
            ManifestEntry {
                audio: dir.join("wav/train/a.wav"),
                voice: "espeak-ng:en-us+m3:s150:p40".into(),
                transcript: "TO BE OR NOT TO BE".into(),
            },
            ManifestEntry {
                audio: dir.join("b.wav"),
                voice: "flite:slt".into(),
                transcript: "WHO'S THERE".into(),
            },
        ];
        let path = dir.join("train.tsv");
        write_manifest(&path, &entries).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("audio\tvoice\ttranscript\nwav/train/a.wav\t"),
            "{text}"
        );
        assert_eq!(read_manifest(&path).unwrap(), entries);
        assert!(!dir.join("train.tsv.tmp").exists());
    }

    #[test]
    fn manifest_errors_name_the_file_and_line() {
        let dir = scratch("errors");
        let path = dir.join("bad.tsv");
        let cases = [
            ("a.wav\tv\tHELLO\n", "line 1"),
            (
                "audio\tvoice\ttranscript\na.wav\tv\tHI\nb.wav\tHELLO\n",
                "line 3: 2 tab-separated",
            ),
            (
                "audio\tvoice\ttranscript\na.wav\tv\t \n",
                "line 2: empty transcript",
            ),
            ("", "empty file"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let msg = read_manifest(&path).unwrap_err().to_string();
            assert!(msg.contains("bad.tsv") && msg.contains(expected), "{msg}");
        }
    }

    #[test]
    fn write_manifest_refuses_tabs_in_fields() {
        let dir = scratch("tabs");
        let entry = ManifestEntry {
            audio: "a.wav".into(),
            voice: "v".into(),
            transcript: "A\tB".into(),
        };
        let msg = write_manifest(dir.join("m.tsv"), &[entry])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("transcript") && msg.contains("tab"), "{msg}");
    }
}
