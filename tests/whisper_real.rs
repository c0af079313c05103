//! The pretrained Whisper tiny.en against the references users know, on real speech:
//!
//! - its tokenizer against Hugging Face `tokenizers` and faster-whisper's suppressed tokens
//!   (`tests/fixtures/whisper_tokenizer.json`, from `scripts/whisper_tokenizer_fixture.py`);
//! - greedy transcripts of Asterisk prompts against faster-whisper's, which
//!   `scripts/whisper_reference.py` committed in `tests/fixtures/asterisk/`.
//!
//! These need the weights (`scripts/fetch_whisper tiny.en`) and the clips
//! (`scripts/asterisk_clips`); CI runs both first. Without them the tests fail and say so:
//! they are never skipped in silence.
mod common;
use common::gpu;
use std::collections::HashMap;
use std::path::Path;
use wgformer::audio::load_16k;
use wgformer::data::ByteBpe;
use wgformer::inference::{Timestamps, WhisperOptions, WhisperRecognizer};

const MODEL: &str = "models/whisper-tiny.en";
const MANIFEST: &str = "data/asterisk/manifest.tsv";

fn require(path: &str, how: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run `{how}` first (CI's .ci/run does)"
    );
}

fn recognizer() -> WhisperRecognizer {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    WhisperRecognizer::load(&gpu(), Path::new(MODEL)).unwrap()
}

#[test]
fn tokenizer_encodes_and_decodes_as_hugging_face_tokenizers() {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    let tok = ByteBpe::load(&Path::new(MODEL).join("tokenizer.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/whisper_tokenizer.json").unwrap(),
    )
    .unwrap();
    let texts = fixture["texts"].as_array().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let text = text.as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(fixture["ids"][i].clone()).unwrap();
        assert_eq!(tok.encode(text), want, "encoding {text:?}");
        assert_eq!(
            tok.decode(&want),
            fixture["decoded"][i].as_str().unwrap(),
            "decoding {text:?}"
        );
    }
}

#[test]
fn suppressed_tokens_are_faster_whispers() {
    let r = recognizer();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/whisper_tokenizer.json").unwrap(),
    )
    .unwrap();
    let want: Vec<u32> = serde_json::from_value(fixture["suppressed"].clone()).unwrap();
    assert_eq!(r.tokens.suppress, want);
    assert_eq!(
        r.tokens.prompt(false),
        [50257, 50362],
        "<|startoftranscript|><|notimestamps|>"
    );
}

/// Short prompts with digits, names, contractions and punctuation; one over 10 s.
const CLIPS: [&str; 8] = [
    "agent-loggedoff",
    "auth-incorrect",
    "conf-onlyperson",
    "vm-nomore",
    "digits/7",
    "letters/w",
    "queue-thankyou",
    "vm-options",
];

#[test]
fn greedy_transcripts_match_faster_whisper_on_asterisk_prompts() {
    require(MANIFEST, "scripts/asterisk_clips");
    let r = recognizer();
    let wavs: HashMap<String, String> = std::fs::read_to_string(MANIFEST)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut c = l.split('\t');
            Some((c.next()?.to_string(), c.next()?.to_string()))
        })
        .collect();
    let reference: HashMap<String, String> =
        std::fs::read_to_string("tests/fixtures/asterisk/faster_whisper_greedy.tsv")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
    // faster-whisper's settings: greedy, without timestamps.
    let opts = WhisperOptions {
        timestamps: Timestamps::Off,
        ..Default::default()
    };
    for name in CLIPS {
        let wav = &wavs[name];
        let got = r
            .transcribe(&load_16k(Path::new(wav)).unwrap(), &opts)
            .unwrap();
        assert_eq!(got, reference[name], "{name} ({wav})");
    }
}
