//! The `Tokenizer` front end: special ids and encode/decode dispatch (the file format is in
//! `tokenizer_file.rs`).
//!
//! Every tokenizer reserves ids 0..4 for `[PAD] [UNK] [SOS] [EOS]`; text symbols start at 4.
//! Decoding drops PAD/SOS/EOS and writes U+FFFD for UNK (and for ids outside the vocabulary),
//! so `decode(encode(s)) == s` exactly for any `s` made of characters the tokenizer covers.

use super::bpe::BpeTokenizer;
use super::char_tokenizer::CharTokenizer;
use crate::error::{Error, Result};
use std::path::Path;

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const SOS: u32 = 2;
pub const EOS: u32 = 3;
pub const NUM_SPECIAL: u32 = 4;
pub const SPECIAL_TOKENS: [&str; 4] = ["[PAD]", "[UNK]", "[SOS]", "[EOS]"];

/// What an unknown id decodes to.
pub(super) const REPLACEMENT: &str = "\u{FFFD}";

#[derive(Clone, Debug, PartialEq)]
pub enum Tokenizer {
    Char(CharTokenizer),
    Bpe(BpeTokenizer),
}

impl Tokenizer {
    /// One id per distinct character of `text`, in sorted order after the specials.
    pub fn char_level(text: &str) -> Tokenizer {
        Tokenizer::Char(CharTokenizer::from_text(text))
    }

    /// Byte-pair merges learned on `text` until the vocabulary (specials included) reaches
    /// `vocab_size`, or no pair occurs twice. Base symbols are the characters of `text`.
    pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Tokenizer> {
        BpeTokenizer::train(text, vocab_size)
            .map(Tokenizer::Bpe)
            .map_err(|msg| Error::format("tokenizer.vocab_size", msg))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Tokenizer::Char(_) => "char",
            Tokenizer::Bpe(_) => "bpe",
        }
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Char(t) => t.encode(text),
            Tokenizer::Bpe(t) => t.encode(text),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&id| self.token_text(id)).collect()
    }

    /// Number of ids, specials included: the model's embedding and output size.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Bpe(t) => t.vocab_size(),
        }
    }

    /// The text an id decodes to (specials: "" for PAD/SOS/EOS, U+FFFD for UNK).
    pub fn token_text(&self, id: u32) -> &str {
        if id < NUM_SPECIAL {
            return if id == UNK { REPLACEMENT } else { "" };
        }
        let text = match self {
            Tokenizer::Char(t) => t.symbol(id),
            Tokenizer::Bpe(t) => t.symbol(id),
        };
        text.unwrap_or(REPLACEMENT)
    }

    /// The printable name of an id: `[PAD]`-style names for specials, the text otherwise.
    pub fn token_name(&self, id: u32) -> &str {
        match SPECIAL_TOKENS.get(id as usize) {
            Some(name) => name,
            None => self.token_text(id),
        }
    }

    /// Whether every character of `text` has an id (so nothing in it encodes to UNK).
    pub fn covers(&self, text: &str) -> bool {
        let chars = match self {
            Tokenizer::Char(t) => t.chars(),
            Tokenizer::Bpe(t) => t.chars(),
        };
        text.chars().all(|c| chars.binary_search(&c).is_ok())
    }

    /// Write `tokenizer.json` in Hugging Face's schema (see `tokenizer_file`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = super::tokenizer_file::to_json(self)
            .map_err(|msg| Error::format(path, format!("cannot write this tokenizer: {msg}")))?;
        std::fs::write(path, json + "\n").map_err(|e| Error::io(path, e))
    }

    /// The `tokenizer.json` text `save` writes.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        let json = super::tokenizer_file::to_json(self).map_err(|msg| {
            Error::format(
                "tokenizer.json",
                format!("cannot write this tokenizer: {msg}"),
            )
        })?;
        Ok((json + "\n").into_bytes())
    }

    /// Read a tokenizer file (Hugging Face's schema or the compact one); errors name the file
    /// and what is wrong in it.
    pub fn load(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Tokenizer::from_json(path, &text)
    }

    /// A tokenizer file's text; `path` names it in errors.
    pub fn from_json(path: impl AsRef<Path>, text: &str) -> Result<Tokenizer> {
        super::tokenizer_file::from_json(path.as_ref(), text)
    }
}

/// Sorted, duplicate-free characters; the error says which character breaks the rule.
pub(super) fn check_chars(chars: &[char]) -> std::result::Result<(), String> {
    for w in chars.windows(2) {
        if w[0] >= w[1] {
            return Err(format!(
                "chars must be sorted and distinct, but {:?} comes before {:?}",
                w[0], w[1]
            ));
        }
    }
    Ok(())
}
