//! Character-level tokenizer: id `4 + i` is the i-th distinct character of the training text
//! in sorted order; any other character encodes to UNK.

use super::tokenizer::{check_chars, NUM_SPECIAL, UNK};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct CharTokenizer {
    /// Sorted, distinct; id of `chars[i]` is `NUM_SPECIAL + i`.
    chars: Vec<char>,
    /// The same characters as strings, so `symbol` can hand out `&str`.
    texts: Vec<String>,
    ids: HashMap<char, u32>,
}

impl CharTokenizer {
    pub fn from_text(text: &str) -> CharTokenizer {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharTokenizer::from_chars(chars).expect("sorted and deduplicated")
    }

    /// From a sorted list of distinct characters (as stored in a tokenizer file).
    pub fn from_chars(chars: Vec<char>) -> Result<CharTokenizer, String> {
        check_chars(&chars)?;
        let texts = chars.iter().map(|c| c.to_string()).collect();
        let ids = (NUM_SPECIAL..)
            .zip(&chars)
            .map(|(id, &c)| (c, id))
            .collect();
        Ok(CharTokenizer { chars, texts, ids })
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.chars()
            .map(|c| self.ids.get(&c).copied().unwrap_or(UNK))
            .collect()
    }

    pub fn vocab_size(&self) -> usize {
        NUM_SPECIAL as usize + self.chars.len()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Text of a non-special id; None outside the vocabulary.
    pub fn symbol(&self, id: u32) -> Option<&str> {
        let i = id.checked_sub(NUM_SPECIAL)? as usize;
        self.texts.get(i).map(String::as_str)
    }
}
