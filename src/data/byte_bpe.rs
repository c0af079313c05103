//! GPT-2's byte-level BPE (Whisper's, GPT-2's, RoBERTa's tokenizer) read from a Hugging Face
//! `tokenizer.json`: its vocabulary, merges and added (special) tokens.
//!
//! Encoding: the text is cut into pieces by GPT-2's pre-tokenizer pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (hand-written in
//! `pieces`, as the `regex` crate has no look-ahead); each piece's UTF-8 bytes become printable
//! characters (`byte_to_char`: every byte has one, so nothing is ever unknown), and the merges
//! join adjacent symbols, lowest rank first, until none applies; the symbols are vocabulary
//! entries. Decoding maps the characters back to bytes and reads them as UTF-8.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

pub struct ByteBpe {
    vocab: HashMap<String, u32>,
    /// id -> token text (byte characters for the vocabulary, plain text for added tokens).
    tokens: Vec<Option<String>>,
    /// (left, right) -> rank: lower merges first.
    merges: HashMap<(String, String), usize>,
    /// Added tokens: id -> (content, special).
    added: HashMap<u32, (String, bool)>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
}

/// GPT-2's map from bytes to printable characters: the printable Latin-1 bytes stand for
/// themselves; the other 68 (controls, space, ...) take the characters from U+0100 on, in order.
/// So a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        out[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\0')
        };
    }
    out
}

impl ByteBpe {
    /// Read `tokenizer.json` (a `BPE` model with a `ByteLevel` pre-tokenizer).
    pub fn load(path: &Path) -> Result<ByteBpe> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ByteBpe::from_json(path, &text)
    }

    /// Parse the text of a `tokenizer.json`; `path` names it in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<ByteBpe> {
        let bad = |msg: String| Error::format(path, msg);
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(bad(format!(
                "model.type is {}, expected \"BPE\" (a byte-level BPE tokenizer)",
                model["type"]
            )));
        }
        let vocab_json = model["vocab"]
            .as_object()
            .ok_or_else(|| bad("model.vocab is not an object of token -> id".into()))?;
        let mut vocab = HashMap::new();
        for (token, id) in vocab_json {
            let id = id
                .as_u64()
                .ok_or_else(|| bad(format!("model.vocab[{token:?}] is not an id")))?;
            vocab.insert(token.clone(), id as u32);
        }
        let merges_json = model["merges"]
            .as_array()
            .ok_or_else(|| bad("model.merges is not a list".into()))?;
        let mut merges = HashMap::new();
        for (rank, m) in merges_json.iter().enumerate() {
            // Either "left right" (older files) or ["left", "right"].
            let pair = match m {
                serde_json::Value::String(s) => s
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(a) if a.len() == 2 => a[0]
                    .as_str()
                    .zip(a[1].as_str())
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                _ => None,
            };
            let pair =
                pair.ok_or_else(|| bad(format!("model.merges[{rank}] is not a pair: {m}")))?;
            merges.entry(pair).or_insert(rank);
        }
        let mut added = HashMap::new();
        for t in json["added_tokens"].as_array().into_iter().flatten() {
            let (Some(id), Some(content)) = (t["id"].as_u64(), t["content"].as_str()) else {
                return Err(bad(format!(
                    "added_tokens entry without id or content: {t}"
                )));
            };
            let special = t["special"].as_bool().unwrap_or(false);
            added.insert(id as u32, (content.to_string(), special));
        }
        let size = vocab
            .values()
            .chain(added.keys())
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut tokens = vec![None; size];
        for (t, &id) in &vocab {
            tokens[id as usize] = Some(t.clone());
        }
        for (&id, (content, _)) in &added {
            tokens[id as usize] = Some(content.clone());
        }
        let byte_to_char = byte_chars();
        let char_to_byte = (0..=255u8).map(|b| (byte_to_char[b as usize], b)).collect();
        Ok(ByteBpe {
            vocab,
            tokens,
            merges,
            added,
            byte_to_char,
            char_to_byte,
        })
    }

    /// The printable character that stands for byte `b` in the vocabulary (`Ġ` for a space).
    pub fn byte_char(&self, b: u8) -> char {
        self.byte_to_char[b as usize]
    }

    /// One more than the largest id (vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token: an added token's content (`<|endoftext|>`) or a vocabulary entry.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|(_, (content, _))| content == token)
            .map(|(&id, _)| id)
            .or_else(|| self.vocab.get(token).copied())
    }

    /// Ids of `text` (no special tokens added; special-token text is encoded as plain text).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for piece in pieces(text) {
            let symbols: Vec<String> = piece
                .bytes()
                .map(|b| self.byte_to_char[b as usize].to_string())
                .collect();
            for s in self.merge(symbols) {
                // Every single byte character is in a byte-level vocabulary, and every merge
                // result is too; a vocabulary missing one would drop it here.
                if let Some(&id) = self.vocab.get(&s) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// Apply the merges to one piece: repeatedly join the adjacent pair of lowest rank.
    fn merge(&self, mut symbols: Vec<String>) -> Vec<String> {
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.merges
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|&r| (r, i))
                })
                .min();
            let Some((rank, _)) = best else {
                return symbols;
            };
            // Join every occurrence of that pair, left to right.
            let mut out = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len()
                    && self
                        .merges
                        .get(&(symbols[i].clone(), symbols[i + 1].clone()))
                        == Some(&rank)
                {
                    out.push(format!("{}{}", symbols[i], symbols[i + 1]));
                    i += 2;
                } else {
                    out.push(symbols[i].clone());
                    i += 1;
                }
            }
            symbols = out;
        }
    }

    /// Text of `ids`. Special added tokens are skipped (as `tokenizers`' `decode` does by
    /// default); ids the tokenizer does not know (e.g. Whisper's timestamps) are skipped too.
    /// Invalid UTF-8 (a character cut between tokens) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            if let Some((content, special)) = self.added.get(&id) {
                if !special {
                    bytes.extend(content.as_bytes());
                }
                continue;
            }
            let Some(Some(token)) = self.tokens.get(id as usize) else {
                continue;
            };
            bytes.extend(token.chars().filter_map(|c| self.char_to_byte.get(&c)));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The character classes of GPT-2's pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// `text` cut by GPT-2's pre-tokenizer pattern (see the module comment), alternative by
/// alternative: a contraction; an optional space and a run of letters, of digits or of other
/// symbols; whitespace up to (not including) the last one before a non-space; whitespace.
pub fn pieces(text: &str) -> Vec<&str> {
    const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let rest = &text[at(i)..];
        let len = if let Some(c) = CONTRACTIONS.iter().find(|c| rest.starts_with(**c)) {
            c.chars().count()
        } else {
            let c = chars[i].1;
            // ` ?X+`: a space may lead a run of letters, digits or other symbols.
            let lead = usize::from(c == ' ');
            let run_class = chars.get(i + lead).map(|&(_, n)| class(n));
            match run_class {
                Some(k) if k != Class::Space && (lead == 1 || class(c) == k) => {
                    let run = chars[i + lead..]
                        .iter()
                        .take_while(|&&(_, n)| class(n) == k)
                        .count();
                    lead + run
                }
                _ => {
                    // `\s+(?!\S)`, else `\s+`: a whitespace run stops one short of a
                    // following non-space, which the next piece may take as its leading space.
                    let run = chars[i..]
                        .iter()
                        .take_while(|&&(_, n)| class(n) == Class::Space)
                        .count();
                    if i + run < chars.len() && run > 1 {
                        run - 1
                    } else {
                        run
                    }
                }
            }
        };
        out.push(&text[at(i)..at(i + len)]);
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_the_gpt2_pattern() {
        assert_eq!(
            pieces("Hello world, it's 2024!  Two  spaces\n\nend "),
            [
                "Hello", " world", ",", " it", "'s", " 2024", "!", " ", " Two", " ", " spaces",
                "\n", "\n", "end", " "
            ]
        );
        assert_eq!(pieces(" 'quoted' -x"), [" '", "quoted", "'", " -", "x"]);
        assert_eq!(pieces("a \nb"), ["a", " ", "\n", "b"]);
        assert_eq!(pieces("abc123def"), ["abc", "123", "def"]);
        assert_eq!(pieces("café ♪♪"), ["café", " ♪♪"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }

    #[test]
    fn every_byte_has_its_own_printable_character() {
        let chars = byte_chars();
        assert_eq!(chars[b' ' as usize], 'Ġ');
        assert_eq!(chars[b'\n' as usize], 'Ċ');
        assert_eq!(chars[b'a' as usize], 'a');
        let distinct: std::collections::HashSet<char> = chars.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    fn tiny() -> ByteBpe {
        let json = r#"{
            "model": {"type": "BPE",
                      "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "he": 5, "ll": 6,
                                "hell": 7, "hello": 8, "Ġhello": 9, "w": 10},
                      "merges": ["h e", "l l", "he ll", "hell o", "Ġ hello"]},
            "added_tokens": [{"id": 11, "content": "<|endoftext|>", "special": true}]
        }"#;
        ByteBpe::from_json(Path::new("tokenizer.json"), json).unwrap()
    }

    #[test]
    fn merges_apply_by_rank_and_decoding_inverts_encoding() {
        let t = tiny();
        assert_eq!(t.encode("hello hello"), [8, 9]);
        assert_eq!(t.encode("hew"), [5, 10]);
        assert_eq!(t.decode(&[8, 9, 11]), "hello hello");
        assert_eq!(t.token_id("<|endoftext|>"), Some(11));
        assert_eq!(t.vocab_size(), 12);
    }

    #[test]
    fn a_file_that_is_not_a_bpe_tokenizer_is_refused_by_name() {
        let path = Path::new("models/x/tokenizer.json");
        let err = |s: &str| ByteBpe::from_json(path, s).err().unwrap().to_string();
        assert!(err("{").contains("models/x/tokenizer.json"));
        assert!(err(r#"{"model": {"type": "WordPiece"}}"#).contains("expected \"BPE\""));
        assert!(
            err(r#"{"model": {"type": "BPE", "vocab": {}, "merges": [3]}}"#).contains("merges[0]")
        );
    }
}
