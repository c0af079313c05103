//! `tokenizer.json`: Hugging Face `tokenizers`' schema, so `Tokenizer.from_file` in Python
//! (tokenizers >= 0.20, which reads merges as pairs) encodes and decodes as this crate does.
//!
//! Both of our tokenizers are a `BPE` model over characters:
//! - vocab: `[PAD] [UNK] [SOS] [EOS]` at ids 0-3, then the sorted characters, then one token
//!   per merge in merge order;
//! - `added_tokens`: the four specials at ids 0-3. `[PAD] [SOS] [EOS]` are special (decoding
//!   skips them); `[UNK]` is not, and the decoder writes it as U+FFFD, as `Tokenizer::decode`
//!   does;
//! - char level: no merges and no pre-tokenizer;
//! - BPE: a `Split` pre-tokenizer whose regex cuts the text into the chunks merges never cross
//!   (see `bpe.rs`): `\S{1,256}` (a word continuing past a cut), `\s\S{1,255}` (one whitespace
//!   character and the word after it), `\s{1,256}(?!\S)` and `\s{1,256}` (the rest of a
//!   whitespace run); 256 is `MAX_CHUNK`;
//! - decoder: replace `[UNK]`, then fuse the tokens without separators.
//!
//! `from_json` also reads the compact schema `{"kind": "char"|"bpe", "special_tokens": [...],
//! "chars": [...], "merges": [[a, b], ...]}`, so checkpoints that carry it keep loading.
//! A text containing a special token's name literally (`[SOS]`) is the one known difference:
//! Hugging Face matches added tokens in the input, `Tokenizer::encode` spells them out.

use super::bpe::{BpeTokenizer, MAX_CHUNK};
use super::char_tokenizer::CharTokenizer;
use super::tokenizer::{Tokenizer, NUM_SPECIAL, REPLACEMENT, SPECIAL_TOKENS, UNK};
use crate::error::{Error, Result};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// The Hugging Face file, with the fields this crate sets.
#[derive(Serialize, Deserialize)]
struct HfFile {
    version: String,
    truncation: Value,
    padding: Value,
    added_tokens: Vec<AddedToken>,
    normalizer: Value,
    pre_tokenizer: Value,
    post_processor: Value,
    decoder: Value,
    model: BpeModel,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct AddedToken {
    id: u32,
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

#[derive(Serialize, Deserialize)]
struct BpeModel {
    #[serde(rename = "type")]
    kind: String,
    dropout: Value,
    unk_token: Option<String>,
    continuing_subword_prefix: Value,
    end_of_word_suffix: Value,
    fuse_unk: bool,
    byte_fallback: bool,
    #[serde(default)]
    ignore_merges: bool,
    vocab: Vocab,
    merges: Vec<(String, String)>,
}

/// Token -> id, written in id order.
#[derive(Deserialize)]
#[serde(from = "HashMap<String, u32>")]
struct Vocab(Vec<(String, u32)>);

impl From<HashMap<String, u32>> for Vocab {
    fn from(map: HashMap<String, u32>) -> Vocab {
        let mut v: Vec<(String, u32)> = map.into_iter().collect();
        v.sort_by_key(|&(_, id)| id);
        Vocab(v)
    }
}

impl Serialize for Vocab {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (token, id) in &self.0 {
            map.serialize_entry(token, id)?;
        }
        map.end()
    }
}

fn chunk_pre_tokenizer() -> Value {
    let (m, w) = (MAX_CHUNK, MAX_CHUNK - 1);
    json!({
        "type": "Split",
        "pattern": {"Regex": format!(r"\S{{1,{m}}}|\s\S{{1,{w}}}|\s{{1,{m}}}(?!\S)|\s{{1,{m}}}")},
        "behavior": "Isolated",
        "invert": false
    })
}

fn concatenating_decoder() -> Value {
    json!({
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": SPECIAL_TOKENS[UNK as usize]}, "content": REPLACEMENT},
            {"type": "Fuse"}
        ]
    })
}

fn added_tokens() -> Vec<AddedToken> {
    (0..)
        .zip(SPECIAL_TOKENS)
        .map(|(id, name)| AddedToken {
            id,
            content: name.to_string(),
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: id != UNK,
        })
        .collect()
}

/// `tokenizer`'s file in Hugging Face's schema. Errors when two ids spell the same text (BPE
/// can learn one string by two merge paths; a Hugging Face vocabulary maps a string to one id).
pub(super) fn to_json(tokenizer: &Tokenizer) -> std::result::Result<String, String> {
    let merges: &[(u32, u32)] = match tokenizer {
        Tokenizer::Char(_) => &[],
        Tokenizer::Bpe(t) => t.merges(),
    };
    let unk = SPECIAL_TOKENS[UNK as usize];
    let mut vocab: Vec<(String, u32)> = (0..)
        .zip(SPECIAL_TOKENS)
        .map(|(id, s)| (s.into(), id))
        .collect();
    let mut ids: HashMap<&str, u32> = (0..).zip(SPECIAL_TOKENS).map(|(id, s)| (s, id)).collect();
    for id in NUM_SPECIAL..tokenizer.vocab_size() as u32 {
        let text = tokenizer.token_text(id);
        if let Some(first) = ids.insert(text, id) {
            return Err(format!(
                "ids {first} and {id} both spell {text:?}; a Hugging Face vocabulary holds each \
                 string once"
            ));
        }
        if text.contains(unk) {
            return Err(format!(
                "id {id} spells {text:?}, which the decoder would take for {unk}"
            ));
        }
        vocab.push((text.to_string(), id));
    }
    let file = HfFile {
        version: "1.0".into(),
        truncation: Value::Null,
        padding: Value::Null,
        added_tokens: added_tokens(),
        normalizer: Value::Null,
        pre_tokenizer: match tokenizer {
            Tokenizer::Char(_) => Value::Null,
            Tokenizer::Bpe(_) => chunk_pre_tokenizer(),
        },
        post_processor: Value::Null,
        decoder: concatenating_decoder(),
        model: BpeModel {
            kind: "BPE".into(),
            dropout: Value::Null,
            unk_token: Some(SPECIAL_TOKENS[UNK as usize].into()),
            continuing_subword_prefix: Value::Null,
            end_of_word_suffix: Value::Null,
            fuse_unk: false,
            byte_fallback: false,
            ignore_merges: false,
            vocab: Vocab(vocab),
            merges: merges
                .iter()
                .map(|&(a, b)| {
                    (
                        tokenizer.token_text(a).into(),
                        tokenizer.token_text(b).into(),
                    )
                })
                .collect(),
        },
    };
    serde_json::to_string_pretty(&file).map_err(|e| e.to_string())
}

/// Read a tokenizer file in either schema; errors name the file and the field at fault.
pub(super) fn from_json(path: &Path, text: &str) -> Result<Tokenizer> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::format(path, format!("not a tokenizer JSON file: {e}")))?;
    if value.get("kind").is_some() {
        let file: CompactFile = serde_json::from_value(value)
            .map_err(|e| Error::format(path, format!("not a tokenizer JSON file: {e}")))?;
        return file
            .into_tokenizer()
            .map_err(|msg| Error::format(path, msg));
    }
    let file: HfFile = serde_json::from_value(value).map_err(|e| {
        Error::format(
            path,
            format!("not a tokenizer JSON file (Hugging Face schema): {e}"),
        )
    })?;
    from_hf(file).map_err(|msg| Error::format(path, msg))
}

/// Require `field` to be what this crate writes: it reads the tokenizers it writes, not every
/// pipeline Hugging Face can describe.
fn expect(field: &str, got: &Value, want: &Value) -> std::result::Result<(), String> {
    if got != want {
        return Err(format!("{field} is {got}, expected {want}"));
    }
    Ok(())
}

fn from_hf(file: HfFile) -> std::result::Result<Tokenizer, String> {
    for (field, got) in [
        ("truncation", &file.truncation),
        ("padding", &file.padding),
        ("normalizer", &file.normalizer),
        ("post_processor", &file.post_processor),
    ] {
        expect(field, got, &Value::Null)?;
    }
    expect("decoder", &file.decoder, &concatenating_decoder())?;
    if file.added_tokens != added_tokens() {
        return Err(format!(
            "added_tokens must be {SPECIAL_TOKENS:?} at ids 0-3 ([UNK] not special), got {:?}",
            file.added_tokens
        ));
    }
    let m = &file.model;
    if m.kind != "BPE" {
        return Err(format!("model.type is {:?}, expected \"BPE\"", m.kind));
    }
    for (field, got) in [
        ("model.dropout", &m.dropout),
        (
            "model.continuing_subword_prefix",
            &m.continuing_subword_prefix,
        ),
        ("model.end_of_word_suffix", &m.end_of_word_suffix),
    ] {
        expect(field, got, &Value::Null)?;
    }
    if m.unk_token.as_deref() != Some(SPECIAL_TOKENS[UNK as usize])
        || m.fuse_unk
        || m.byte_fallback
        || m.ignore_merges
    {
        return Err(format!(
            "model must have unk_token \"[UNK]\" and fuse_unk, byte_fallback and ignore_merges \
             false; got unk_token {:?}, fuse_unk {}, byte_fallback {}, ignore_merges {}",
            m.unk_token, m.fuse_unk, m.byte_fallback, m.ignore_merges
        ));
    }
    let vocab = &m.vocab.0;
    let base = vocab
        .len()
        .checked_sub(m.merges.len())
        .filter(|&base| base >= NUM_SPECIAL as usize)
        .ok_or_else(|| {
            format!(
                "model.vocab has {} tokens, too few for the {NUM_SPECIAL} specials and {} merges",
                vocab.len(),
                m.merges.len()
            )
        })?;
    for (want, (token, id)) in (0..).zip(vocab) {
        if *id != want {
            return Err(format!(
                "model.vocab ids must run 0..{} without gaps; {token:?} has id {id}, expected {want}",
                vocab.len()
            ));
        }
        if let Some(special) = SPECIAL_TOKENS.get(want as usize) {
            if token != special {
                return Err(format!(
                    "model.vocab id {want} is {token:?}, expected {special:?}"
                ));
            }
        }
    }
    let mut chars = Vec::with_capacity(base);
    for (token, id) in &vocab[NUM_SPECIAL as usize..base] {
        let mut it = token.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => chars.push(c),
            _ => {
                return Err(format!(
                    "model.vocab id {id} is {token:?}: with {} merges, ids {NUM_SPECIAL}..{base} \
                     must be single characters",
                    m.merges.len()
                ))
            }
        }
    }
    let ids: HashMap<&str, u32> = vocab.iter().map(|(t, id)| (t.as_str(), *id)).collect();
    let mut merges = Vec::with_capacity(m.merges.len());
    for (r, (a, b)) in m.merges.iter().enumerate() {
        let id_of = |t: &str| {
            ids.get(t).copied().ok_or_else(|| {
                format!("model.merges[{r}] names {t:?}, which is not in model.vocab")
            })
        };
        let (ia, ib) = (id_of(a)?, id_of(b)?);
        let joined = format!("{a}{b}");
        let want = (base + r) as u32;
        if ids.get(joined.as_str()) != Some(&want) {
            return Err(format!(
                "model.merges[{r}] joins {a:?} and {b:?}; {joined:?} must have id {want} (merge \
                 r makes id {base} + r)"
            ));
        }
        merges.push((ia, ib));
    }
    if file.pre_tokenizer.is_null() {
        if !merges.is_empty() {
            return Err("pre_tokenizer is null, which this crate writes only for a \
                        character-level tokenizer (no merges)"
                .into());
        }
        return CharTokenizer::from_chars(chars).map(Tokenizer::Char);
    }
    expect("pre_tokenizer", &file.pre_tokenizer, &chunk_pre_tokenizer())?;
    BpeTokenizer::from_parts(chars, merges).map(Tokenizer::Bpe)
}

/// The compact schema (see the module comment).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum CompactFile {
    Char {
        special_tokens: Vec<String>,
        chars: Vec<char>,
    },
    Bpe {
        special_tokens: Vec<String>,
        chars: Vec<char>,
        /// Merge `i` joins ids `a` and `b` into id `4 + chars.len() + i`.
        merges: Vec<(u32, u32)>,
    },
}

impl CompactFile {
    fn into_tokenizer(self) -> std::result::Result<Tokenizer, String> {
        let check_specials = |names: &[String]| {
            if names != SPECIAL_TOKENS {
                return Err(format!(
                    "special_tokens is {names:?}, expected {SPECIAL_TOKENS:?}"
                ));
            }
            Ok(())
        };
        match self {
            CompactFile::Char {
                special_tokens,
                chars,
            } => {
                check_specials(&special_tokens)?;
                CharTokenizer::from_chars(chars).map(Tokenizer::Char)
            }
            CompactFile::Bpe {
                special_tokens,
                chars,
                merges,
            } => {
                check_specials(&special_tokens)?;
                BpeTokenizer::from_parts(chars, merges).map(Tokenizer::Bpe)
            }
        }
    }
}
