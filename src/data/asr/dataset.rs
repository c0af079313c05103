//! Utterances ready for training: features, normalised transcript and its token ids.

use super::manifest::ManifestEntry;
use super::transcript::normalize_transcript;
use crate::audio::Features;
use crate::data::Tokenizer;
use crate::error::Result;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    pub id: String,
    /// `[frames, bins]` log-mel.
    pub features: Features,
    /// Normalised (`normalize_transcript`).
    pub transcript: String,
    /// `transcript` encoded, without SOS/EOS.
    pub tokens: Vec<u32>,
}

impl Utterance {
    /// Normalises `transcript` and encodes it with `tokenizer`.
    pub fn new(
        id: impl Into<String>,
        features: Features,
        transcript: &str,
        tokenizer: &Tokenizer,
    ) -> Self {
        let transcript = normalize_transcript(transcript);
        let tokens = tokenizer.encode(&transcript);
        Utterance {
            id: id.into(),
            features,
            transcript,
            tokens,
        }
    }
}

/// One `Utterance` per manifest entry, its id the audio file's stem; `features` turns an audio
/// path into features (the audio front end, or a cache of it).
pub fn load_utterances(
    entries: &[ManifestEntry],
    tokenizer: &Tokenizer,
    mut features: impl FnMut(&Path) -> Result<Features>,
) -> Result<Vec<Utterance>> {
    entries
        .iter()
        .map(|e| {
            let id = e.audio.file_stem().unwrap_or_default().to_string_lossy();
            Ok(Utterance::new(
                id,
                features(&e.audio)?,
                &e.transcript,
                tokenizer,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::asr::asr_tokenizer;
    use crate::error::Error;

    #[test]
    fn load_utterances_normalises_encodes_and_passes_errors_on() {
        let tok = asr_tokenizer();
        let entries = vec![
            ManifestEntry {
                audio: "c/a-1.wav".into(),
                voice: "v".into(),
                transcript: "Ay, me!".into(),
            },
            ManifestEntry {
                audio: "c/b-2.flac".into(),
                voice: "v".into(),
                transcript: "NO".into(),
            },
        ];
        let frames = |p: &Path| {
            Ok(Features::new(
                p.as_os_str().len(),
                2,
                vec![0.0; 2 * p.as_os_str().len()],
            ))
        };
        let utts = load_utterances(&entries, &tok, frames).unwrap();
        assert_eq!(utts[0].id, "a-1");
        assert_eq!(utts[0].transcript, "AY ME");
        assert_eq!(utts[0].tokens, tok.encode("AY ME"));
        assert_eq!((utts[1].id.as_str(), utts[1].features.frames), ("b-2", 10));
        let failing = |p: &Path| Err(Error::format(p, "unreadable"));
        let msg = load_utterances(&entries, &tok, failing)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "c/a-1.wav: unreadable");
    }
}
