//! Whisper's special tokens, its start sequence and the tokens decoding never emits, found by
//! name in the model's `tokenizer.json` (as faster-whisper's `Tokenizer` does), so English-only
//! and multilingual vocabularies both work.

use crate::data::ByteBpe;
use crate::error::{Error, Result};
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct WhisperTokens {
    pub eot: u32,
    pub sot: u32,
    pub no_timestamps: u32,
    /// `<|0.00|>`; timestamp t (in 20 ms steps) is `timestamp_begin + t`.
    pub timestamp_begin: u32,
    pub no_speech: Option<u32>,
    /// Language tokens (`<|en|>`, ...) of a multilingual model; empty for an English-only one.
    pub languages: Vec<u32>,
    /// The language and task tokens after `sot` (multilingual models only).
    pub language: Option<u32>,
    pub task: Option<u32>,
    /// Never sampled: faster-whisper's default `suppress_tokens=[-1]`, i.e. the non-speech
    /// symbols (`non_speech`) plus transcribe, translate, sot, startofprev, startoflm, no-speech.
    pub suppress: Vec<u32>,
    /// Not sampled as the first token (`suppress_blank`): a space and end-of-text.
    pub blank: Vec<u32>,
}

/// The tokens of speaker tags and annotations (`[DAVID]`, `♪♪`, `(laughs)`) that Whisper would
/// otherwise transcribe: openai-whisper's and faster-whisper's `non_speech_tokens`. Hyphens and
/// apostrophes stay allowed between words, not at a word's start.
fn non_speech(t: &ByteBpe) -> Vec<u32> {
    let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
        .chars()
        .map(String::from)
        .collect();
    symbols.extend(
        "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
            .split(' ')
            .map(String::from),
    );
    // Musical symbols: several tokens each, whose first token (shared by them all) goes.
    let musical: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
    let mut out: Vec<u32> = [" -", " '"]
        .iter()
        .filter_map(|s| t.encode(s).first().copied())
        .collect();
    for (symbol, always) in symbols
        .iter()
        .map(|s| (s, false))
        .chain(musical.iter().map(|s| (s, true)))
    {
        for text in [symbol.clone(), format!(" {symbol}")] {
            let ids = t.encode(&text);
            if ids.len() == 1 || (always && !ids.is_empty()) {
                out.push(ids[0]);
            }
        }
    }
    out
}

impl WhisperTokens {
    /// The tokens of `tokenizer` (read from `file`, named in errors). A multilingual model
    /// transcribes `language` (e.g. "en"); an English-only one ignores it.
    pub fn new(
        tokenizer: &ByteBpe,
        file: &Path,
        multilingual: bool,
        language: &str,
    ) -> Result<WhisperTokens> {
        let required = |name: &str| {
            tokenizer.token_id(name).ok_or_else(|| {
                Error::format(
                    file,
                    format!("has no token {name:?}: not a Whisper tokenizer"),
                )
            })
        };
        let eot = required("<|endoftext|>")?;
        let sot = required("<|startoftranscript|>")?;
        let no_timestamps = required("<|notimestamps|>")?;
        let optional = |name: &str| tokenizer.token_id(name);
        let no_speech = optional("<|nospeech|>").or_else(|| optional("<|nocaptions|>"));
        let transcribe = optional("<|transcribe|>");
        let translate = optional("<|translate|>");
        // Language tokens sit between sot and translate in multilingual vocabularies.
        let languages: Vec<u32> = match (multilingual, translate) {
            (true, Some(tr)) => (sot + 1..tr).collect(),
            _ => Vec::new(),
        };
        let (language, task) = if multilingual {
            let lang = optional(&format!("<|{language}|>")).ok_or_else(|| {
                Error::format(file, format!("has no language token <|{language}|>"))
            })?;
            (Some(lang), transcribe)
        } else {
            (None, None)
        };
        let mut suppress = non_speech(tokenizer);
        suppress.extend(
            [transcribe, translate, Some(sot)]
                .into_iter()
                .chain([
                    optional("<|startofprev|>"),
                    optional("<|startoflm|>"),
                    no_speech,
                ])
                .flatten(),
        );
        suppress.sort_unstable();
        suppress.dedup();
        let mut blank = tokenizer.encode(" ");
        blank.push(eot);
        Ok(WhisperTokens {
            eot,
            sot,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            no_speech,
            languages,
            language,
            task,
            suppress,
            blank,
        })
    }

    /// The start sequence: `<|startoftranscript|>` (then the language and the task for a
    /// multilingual model), then `<|notimestamps|>` unless timestamps are wanted.
    pub fn prompt(&self, timestamps: bool) -> Vec<u32> {
        let mut p = vec![self.sot];
        p.extend(self.language);
        p.extend(self.task);
        if !timestamps {
            p.push(self.no_timestamps);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECIALS: [&str; 10] = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|de|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ];

    /// A byte-level tokenizer: the 256 byte characters (ids 0-255, so a space is 32), the
    /// merges " (" (256), " -" (257) and " '" (258), then Whisper's special tokens from 259.
    fn tokenizer() -> ByteBpe {
        let mut vocab: Vec<String> = byte_chars_json();
        vocab.extend(
            ["Ġ(", "Ġ-", "Ġ'"]
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{}: {}", serde_json::json!(t), 256 + i)),
        );
        let added: Vec<String> = SPECIALS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    r#"{{"id": {}, "content": "{s}", "special": true}}"#,
                    259 + i
                )
            })
            .collect();
        let json = format!(
            r#"{{"model": {{"type": "BPE", "vocab": {{{}}}, "merges": ["Ġ (", "Ġ -", "Ġ '"]}},
                "added_tokens": [{}]}}"#,
            vocab.join(", "),
            added.join(", ")
        );
        ByteBpe::from_json(Path::new("tokenizer.json"), &json).unwrap()
    }

    /// `"c": b` for every byte b, c its GPT-2 character.
    fn byte_chars_json() -> Vec<String> {
        let empty = r#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#;
        let probe = ByteBpe::from_json(Path::new("t.json"), empty).unwrap();
        (0..=255u8)
            .map(|b| format!("{}: {b}", serde_json::json!(probe.byte_char(b).to_string())))
            .collect()
    }

    #[test]
    fn start_sequences_of_english_only_and_multilingual_models() {
        let t = tokenizer();
        let file = Path::new("tokenizer.json");
        let id = |name: &str| t.token_id(name).unwrap();
        let en = WhisperTokens::new(&t, file, false, "de").unwrap();
        let (sot, no_ts) = (id("<|startoftranscript|>"), id("<|notimestamps|>"));
        assert_eq!(en.prompt(false), [sot, no_ts]);
        assert_eq!(en.prompt(true), [sot]);
        assert_eq!(en.timestamp_begin, no_ts + 1);
        assert!(en.languages.is_empty());
        let multi = WhisperTokens::new(&t, file, true, "de").unwrap();
        let (de, transcribe) = (id("<|de|>"), id("<|transcribe|>"));
        assert_eq!(multi.prompt(false), [sot, de, transcribe, no_ts]);
        assert_eq!(multi.languages, [id("<|en|>"), de]);
        let err = WhisperTokens::new(&t, file, true, "xx")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("<|xx|>"), "{err}");
    }

    #[test]
    fn suppression_covers_symbols_and_control_tokens_but_not_text() {
        let tok = tokenizer();
        let t = WhisperTokens::new(&tok, Path::new("tokenizer.json"), true, "en").unwrap();
        let id = |name: &str| tok.token_id(name).unwrap();
        // "(" (byte 40), " (" (256), " -" (257), " '" (258), "#" (35) and the control tokens.
        let controls = ["<|startoftranscript|>", "<|translate|>", "<|transcribe|>"]
            .into_iter()
            .chain(["<|startoflm|>", "<|startofprev|>", "<|nospeech|>"])
            .map(id);
        for s in [40, 256, 257, 258, 35].into_iter().chain(controls) {
            assert!(
                t.suppress.contains(&s),
                "{s} should be suppressed: {:?}",
                t.suppress
            );
        }
        // Letters, end-of-text, languages and <|notimestamps|> stay. (A lone space does not in
        // this toy vocabulary, where " ♪" starts with it; tests/whisper_real.rs checks the
        // whole list against faster-whisper's on Whisper's own vocabulary.)
        for s in [
            b'a' as u32,
            id("<|endoftext|>"),
            id("<|en|>"),
            id("<|notimestamps|>"),
        ] {
            assert!(!t.suppress.contains(&s), "{s} must stay: {:?}", t.suppress);
        }
        assert_eq!(
            t.blank,
            [32, id("<|endoftext|>")],
            "a space and end-of-text"
        );
    }
}
