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
