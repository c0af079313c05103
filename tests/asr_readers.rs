//! The readers for speech data users already have, on the tiny fixtures that
//! `tests/fixtures/make_speech_fixtures.py` wrote.

use std::path::Path;
use wgformer::data::asr::{read_flac, read_hw4, read_librispeech};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[test]
fn librispeech_lists_utterances_with_speaker_and_audio_beside_the_transcript() {
    let dir = Path::new(FIXTURES).join("librispeech");
    let entries = read_librispeech(&dir).unwrap();
    let chapter = dir.join("19/198");
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.audio.clone(), e.voice.as_str(), e.transcript.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (chapter.join("19-198-0000.flac"), "19", "NORTHANGER ABBEY"),
            (
                chapter.join("19-198-0001.flac"),
                "19",
                "THEY WERE ALL ON THE BOAT"
            ),
        ]
    );
}

#[test]
fn librispeech_names_the_transcript_line_whose_audio_is_missing() {
    let dir = std::env::temp_dir().join(format!("wgformer-libri-{}", std::process::id()));
    let chapter = dir.join("7/11");
    std::fs::create_dir_all(&chapter).unwrap();
    std::fs::write(chapter.join("7-11.trans.txt"), "7-11-0000 HELLO\n").unwrap();
    let msg = read_librispeech(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("7-11.trans.txt: line 1") && msg.contains("7-11-0000.flac"),
        "{msg}"
    );
}

#[test]
fn flac_is_decoded_exactly_and_stereo_is_averaged_to_mono() {
    let chapter = Path::new(FIXTURES).join("librispeech/19/198");
    let (stereo, rate) = read_flac(chapter.join("19-198-0000.flac")).unwrap();
    assert_eq!(rate, 16_000);
    // left[i] = 100 i, right[i] = -50 i (16-bit): mono = 25 i / 32768.
    let expected: Vec<f32> = (0..200).map(|i| 25.0 * i as f32 / 32768.0).collect();
    assert_eq!(stereo, expected);
    let (mono, _) = read_flac(chapter.join("19-198-0001.flac")).unwrap();
    let expected: Vec<f32> = (0..200).map(|i| (30 * i - 3000) as f32 / 32768.0).collect();
    assert_eq!(mono, expected);
}

#[test]
fn flac_errors_name_the_file() {
    let msg = read_flac(Path::new(FIXTURES).join("librispeech/19/198/19-198.trans.txt"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("19-198.trans.txt") && msg.contains("FLAC"),
        "{msg}"
    );
}

#[test]
fn hw4_pairs_features_and_transcripts_by_file_name() {
    let pairs = read_hw4(Path::new(FIXTURES).join("hw4")).unwrap();
    assert_eq!(pairs.len(), 2);
    let (features, text) = &pairs[0];
    assert_eq!(
        (features.frames, features.bins, text.as_str()),
        (5, 80, "HI THERE")
    );
    // The generator wrote value k / 8 at flat index k, as float32 here and float64 (npy v2) next.
    assert!(features
        .data
        .iter()
        .enumerate()
        .all(|(k, &v)| v == k as f32 / 8.0));
    let (features, text) = &pairs[1];
    assert_eq!(
        (features.frames, features.bins, text.as_str()),
        (3, 80, "IT'S ME")
    );
    assert_eq!(features.frame(2)[1], 161.0 / 8.0);
}

#[test]
fn hw4_refuses_unpaired_files() {
    let dir = std::env::temp_dir().join(format!("wgformer-hw4-{}", std::process::id()));
    for folder in ["fbank", "text"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
    }
    let fixture = Path::new(FIXTURES).join("hw4");
    std::fs::copy(
        fixture.join("fbank/103-1240-0000.npy"),
        dir.join("fbank/a.npy"),
    )
    .unwrap();
    std::fs::copy(
        fixture.join("text/103-1240-0000.npy"),
        dir.join("text/b.npy"),
    )
    .unwrap();
    let msg = read_hw4(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("b.npy") && msg.contains("file names differ"),
        "{msg}"
    );
    std::fs::copy(
        fixture.join("text/103-1240-0000.npy"),
        dir.join("fbank/c.npy"),
    )
    .unwrap();
    let msg = read_hw4(&dir).unwrap_err().to_string();
    assert!(msg.contains("2 files in fbank/ but 1 in text/"), "{msg}");
}

/// An LM for the recognizer drops the lines the recognizer is tested on, matched after
/// transcript normalisation (case, punctuation).
#[test]
fn text_lines_spoken_in_a_manifest_are_removed() {
    use wgformer::data::asr::{without_transcripts_of, write_manifest, ManifestEntry};
    let dir = std::env::temp_dir().join(format!("wgformer-exclude-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("test.tsv");
    let entry = |t: &str| ManifestEntry {
        audio: dir.join("a.wav"),
        voice: "v".into(),
        transcript: t.into(),
    };
    write_manifest(&manifest, &[entry("TO BE OR NOT TO BE")]).unwrap();
    let text = "To be, or not to be!\nROMEO: hello there friend\n  to BE or not to be\n";
    let (kept, removed) = without_transcripts_of(text, &[manifest]).unwrap();
    assert_eq!(removed, 2);
    assert_eq!(kept, "ROMEO: hello there friend\n");
    let missing = without_transcripts_of(text, &[dir.join("nope.tsv")]).unwrap_err();
    assert!(missing.to_string().contains("nope.tsv"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}
