//! The one text normalisation for speech transcripts, used alike on training targets and on the
//! references a recogniser is scored against, so that a word error never comes from formatting.
//!
//! Rules, in order:
//! - letters are upper-cased; ASCII letters A-Z are kept;
//! - the apostrophe (and its typographic forms ’ ‘ ʼ) is kept as `'`, so DON'T and 'TIS survive;
//!   a "word" made of apostrophes only (a quotation mark) is dropped;
//! - digits are dropped, not spelled: spelled numbers depend on context ("1601" is a year, a
//!   count or a code) and the corpora used here write numbers as words already;
//! - every other character (punctuation, hyphens, symbols, letters outside A-Z) becomes a space;
//! - whitespace is collapsed to single spaces and trimmed.

use crate::data::Tokenizer;

/// The characters a normalised transcript is made of; the ASR vocabulary.
pub const TRANSCRIPT_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ' ";

/// `s` in the transcript alphabet: see the module docs for the rules.
pub fn normalize_transcript(s: &str) -> String {
    let mut spaced = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'a'..='z' => spaced.push(c.to_ascii_uppercase()),
            'A'..='Z' | '\'' => spaced.push(c),
            '\u{2019}' | '\u{2018}' | '\u{02BC}' => spaced.push('\''),
            '0'..='9' => {}
            _ => spaced.push(' '),
        }
    }
    let words: Vec<&str> = spaced
        .split_whitespace()
        .filter(|w| w.chars().any(|c| c != '\''))
        .collect();
    words.join(" ")
}

/// Character tokenizer over `TRANSCRIPT_ALPHABET`: specials 0..4, then space, apostrophe, A-Z.
pub fn asr_tokenizer() -> Tokenizer {
    Tokenizer::char_level(TRANSCRIPT_ALPHABET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_upper_cases_and_keeps_apostrophes() {
        assert_eq!(normalize_transcript("Don't, 'tis o'er."), "DON'T 'TIS O'ER");
        assert_eq!(normalize_transcript("It’s here"), "IT'S HERE");
    }

    #[test]
    fn normalize_turns_punctuation_and_hyphens_into_spaces() {
        assert_eq!(
            normalize_transcript("  Ho! what, ho--well-a-day;\tsir?\n"),
            "HO WHAT HO WELL A DAY SIR"
        );
    }

    #[test]
    fn normalize_drops_digits_and_lone_quotes() {
        assert_eq!(normalize_transcript("1 Clown. ' Act 3 '"), "CLOWN ACT");
        assert_eq!(normalize_transcript("café"), "CAF");
        assert_eq!(normalize_transcript("1601, -- !"), "");
    }

    #[test]
    fn normalize_is_idempotent() {
        let once = normalize_transcript("O Romeo, Romeo! wherefore art thou Romeo?");
        assert_eq!(normalize_transcript(&once), once);
    }

    #[test]
    fn tokenizer_covers_every_normalised_transcript() {
        let tok = asr_tokenizer();
        assert_eq!(tok.vocab_size(), 4 + 28);
        let text = normalize_transcript("Who's there? Nay, answer me: stand, and unfold yourself.");
        assert!(tok.covers(&text));
        assert_eq!(tok.decode(&tok.encode(&text)), text);
        assert_eq!(tok.encode(" 'A"), vec![4, 5, 6]);
    }
}
