//! A config's `tokenizer` section made real: the text a tokenizer reads, and the tokenizer
//! built from it.

use super::asr::{asr_tokenizer, normalize_transcript};
use super::Tokenizer;
use crate::config::{TokenizerConfig, TokenizerKind};
use crate::error::Result;

/// The tokenizer `c` describes, built from (usually the training part of) `text`.
pub fn build_tokenizer(c: &TokenizerConfig, text: &str) -> Result<Tokenizer> {
    match c.kind {
        TokenizerKind::Char => Ok(Tokenizer::char_level(text)),
        TokenizerKind::Bpe => Tokenizer::train_bpe(text, c.vocab_size),
        TokenizerKind::Asr => Ok(asr_tokenizer()),
    }
}

/// The text the tokenizer of `c` reads: for `asr`, every line normalised as a transcript
/// (upper case letters, apostrophe, space), lines joined by spaces; otherwise unchanged.
pub fn prepare_text(c: &TokenizerConfig, text: &str) -> String {
    match c.kind {
        TokenizerKind::Asr => text
            .lines()
            .map(normalize_transcript)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => text.to_string(),
    }
}
