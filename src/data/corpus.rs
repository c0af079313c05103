//! The corpus: a UTF-8 text file cut into contiguous train / val / test parts.

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use std::path::Path;

/// Read a UTF-8 text file; invalid UTF-8 is an error naming the file and the byte offset.
pub fn read_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Error::format(
            path,
            format!("not valid UTF-8 text (invalid byte sequence at byte offset {at})"),
        )
    })
}

/// The three parts of a corpus, in file order: train first, then val, then test.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    pub train: String,
    pub val: String,
    pub test: String,
}

/// A corpus after tokenization.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSplits {
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    pub test: Vec<u32>,
}

impl Corpus {
    /// `read_text(path)` then `split`; errors name the file.
    pub fn load(path: impl AsRef<Path>, val_fraction: f64, test_fraction: f64) -> Result<Corpus> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Corpus::split(&text, val_fraction, test_fraction).map_err(|e| match e {
            Error::Format { msg, .. } => Error::format(path, msg),
            other => other,
        })
    }

    /// The last `test_fraction` of the text is test, the `val_fraction` before it val, the
    /// rest train. Each cut is moved forward to the next line start (so no line is split
    /// between parts) unless no newline follows it.
    pub fn split(text: &str, val_fraction: f64, test_fraction: f64) -> Result<Corpus> {
        for (key, f) in [
            ("data.val_fraction", val_fraction),
            ("data.test_fraction", test_fraction),
        ] {
            if !(0.0..1.0).contains(&f) {
                return Err(Error::format(
                    "corpus",
                    format!("{key} is {f}, expected a value in [0, 1)"),
                ));
            }
        }
        if val_fraction + test_fraction >= 1.0 {
            return Err(Error::format(
                "corpus",
                format!(
                    "data.val_fraction + data.test_fraction = {} leaves nothing to train on",
                    val_fraction + test_fraction
                ),
            ));
        }
        let n = text.len() as f64;
        let val_start =
            line_start_at_or_after(text, (n * (1.0 - val_fraction - test_fraction)) as usize);
        let test_start =
            line_start_at_or_after(text, (n * (1.0 - test_fraction)) as usize).max(val_start);
        if val_start == 0 {
            return Err(Error::format(
                "corpus",
                format!("the train part is empty ({} bytes of text)", text.len()),
            ));
        }
        Ok(Corpus {
            train: text[..val_start].to_string(),
            val: text[val_start..test_start].to_string(),
            test: text[test_start..].to_string(),
        })
    }

    pub fn encode(&self, tokenizer: &Tokenizer) -> TokenSplits {
        TokenSplits {
            train: tokenizer.encode(&self.train),
            val: tokenizer.encode(&self.val),
            test: tokenizer.encode(&self.test),
        }
    }
}

/// The first line start at or after byte `at` (the end of the text if none follows); `at`
/// itself when it is already a line start.
fn line_start_at_or_after(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    if at == 0 || text.as_bytes()[at - 1] == b'\n' {
        return at;
    }
    match text.as_bytes()[at..].iter().position(|&b| b == b'\n') {
        Some(i) => at + i + 1,
        None => {
            // No newline ahead: cut at the nearest character boundary instead.
            (at..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len())
        }
    }
}
