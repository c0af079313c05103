//! Byte-pair encoding with characters (not bytes) as base symbols.
//!
//! Text is first cut into chunks, GPT-2 style: a run of non-whitespace with the single
//! whitespace character before it attached (`" the"`, `"\nHAMLET."`); the rest of a longer
//! whitespace run is a chunk of its own. Runs longer than `MAX_CHUNK` characters are cut so
//! encoding stays linear in the text length. Merges never cross chunks, and every id stands for
//! a fixed string, so decoding is concatenation and `decode(encode(s)) == s` for any `s` whose
//! characters were in the training text. Unknown characters encode to UNK and never merge.
//!
//! Training counts pairs once per distinct chunk (weighted by its frequency) and updates the
//! counts incrementally after each merge: only chunks that contain the merged pair are
//! revisited, found through a pair -> chunks index, and the best pair comes from a max-heap
//! with lazily discarded stale entries. Ties go to the pair with the smaller ids, so training
//! is deterministic.

use super::tokenizer::{check_chars, NUM_SPECIAL, UNK};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

type Pair = (u32, u32);

/// Longest chunk, in characters.
pub(super) const MAX_CHUNK: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct BpeTokenizer {
    /// Sorted, distinct base characters; `chars[i]` has id `NUM_SPECIAL + i`.
    chars: Vec<char>,
    /// Merge `r` joins the pair into id `NUM_SPECIAL + chars.len() + r`.
    merges: Vec<Pair>,
    char_ids: HashMap<char, u32>,
    ranks: HashMap<Pair, u32>,
    /// Text of every non-special id, in id order.
    texts: Vec<String>,
}

impl BpeTokenizer {
    /// Learn merges on `text` until `vocab_size` ids exist (specials included) or no pair is
    /// left that occurs at least twice. Errors when `vocab_size` cannot hold the base symbols.
    pub fn train(text: &str, vocab_size: usize) -> Result<BpeTokenizer, String> {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let base = NUM_SPECIAL as usize + chars.len();
        if vocab_size < base {
            return Err(format!(
                "{vocab_size} is smaller than the {base} base symbols ({NUM_SPECIAL} special + {} \
                 distinct characters of the training text)",
                chars.len()
            ));
        }
        let char_ids: HashMap<char, u32> =
            (NUM_SPECIAL..).zip(&chars).map(|(i, &c)| (c, i)).collect();

        let mut freq: HashMap<&str, i64> = HashMap::new();
        for chunk in chunks(text) {
            *freq.entry(chunk).or_default() += 1;
        }
        let mut distinct: Vec<(&str, i64)> = freq.into_iter().collect();
        distinct.sort_unstable();
        let counts: Vec<i64> = distinct.iter().map(|&(_, n)| n).collect();
        let mut words: Vec<Vec<u32>> = distinct
            .iter()
            .map(|(w, _)| w.chars().map(|c| char_ids[&c]).collect())
            .collect();

        let mut pair_counts: HashMap<Pair, i64> = HashMap::new();
        let mut where_: HashMap<Pair, HashSet<u32>> = HashMap::new();
        for (wi, w) in words.iter().enumerate() {
            for p in w.windows(2) {
                *pair_counts.entry((p[0], p[1])).or_default() += counts[wi];
                where_.entry((p[0], p[1])).or_default().insert(wi as u32);
            }
        }
        let mut heap: BinaryHeap<(i64, Reverse<Pair>)> =
            pair_counts.iter().map(|(&p, &n)| (n, Reverse(p))).collect();

        let mut merges = Vec::new();
        while base + merges.len() < vocab_size {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            if pair_counts.get(&pair) != Some(&count) {
                continue; // stale: the count changed after this entry was pushed
            }
            if count < 2 {
                break;
            }
            let new_id = (base + merges.len()) as u32;
            merges.push(pair);
            let mut delta: HashMap<Pair, i64> = HashMap::new();
            for wi in where_.remove(&pair).unwrap_or_default() {
                let w = &mut words[wi as usize];
                if !w.windows(2).any(|p| (p[0], p[1]) == pair) {
                    continue; // the index is not pruned when a chunk loses a pair
                }
                let c = counts[wi as usize];
                for p in w.windows(2) {
                    *delta.entry((p[0], p[1])).or_default() -= c;
                }
                merge_pair(w, pair, new_id);
                for p in w.windows(2) {
                    *delta.entry((p[0], p[1])).or_default() += c;
                    where_.entry((p[0], p[1])).or_default().insert(wi);
                }
            }
            for (p, d) in delta {
                if d == 0 {
                    continue;
                }
                let n = pair_counts.entry(p).or_default();
                *n += d;
                if *n > 0 {
                    heap.push((*n, Reverse(p)));
                } else {
                    pair_counts.remove(&p);
                }
            }
        }
        BpeTokenizer::from_parts(chars, merges)
    }

    /// From stored base characters and merges; checks that every merge joins ids that exist
    /// before it and that no merge repeats.
    pub fn from_parts(chars: Vec<char>, merges: Vec<(u32, u32)>) -> Result<BpeTokenizer, String> {
        check_chars(&chars)?;
        let base = NUM_SPECIAL + chars.len() as u32;
        let mut texts: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        let mut ranks = HashMap::with_capacity(merges.len());
        for (r, &(a, b)) in merges.iter().enumerate() {
            let next = base + r as u32;
            for id in [a, b] {
                if id < NUM_SPECIAL || id >= next {
                    return Err(format!(
                        "merge {r} is [{a}, {b}], but a merge may only join ids {NUM_SPECIAL}..{next} \
                         (base characters and earlier merges)"
                    ));
                }
            }
            if let Some(first) = ranks.insert((a, b), r as u32) {
                return Err(format!("merge {r} [{a}, {b}] repeats merge {first}"));
            }
            let joined = format!(
                "{}{}",
                texts[(a - NUM_SPECIAL) as usize],
                texts[(b - NUM_SPECIAL) as usize]
            );
            texts.push(joined);
        }
        let char_ids = (NUM_SPECIAL..).zip(&chars).map(|(i, &c)| (c, i)).collect();
        Ok(BpeTokenizer {
            chars,
            merges,
            char_ids,
            ranks,
            texts,
        })
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut out = Vec::with_capacity(text.len() / 3);
        for chunk in chunks(text) {
            let ids = cache
                .entry(chunk)
                .or_insert_with(|| self.encode_chunk(chunk));
            out.extend_from_slice(ids);
        }
        out
    }

    /// Apply merges to one chunk in rank order (the order training learned them), each to
    /// every occurrence left to right: the segmentation training produced for this chunk.
    fn encode_chunk(&self, chunk: &str) -> Vec<u32> {
        let mut w: Vec<u32> = chunk
            .chars()
            .map(|c| self.char_ids.get(&c).copied().unwrap_or(UNK))
            .collect();
        let base = NUM_SPECIAL + self.chars.len() as u32;
        while let Some((rank, pair)) = w
            .windows(2)
            .filter_map(|p| self.ranks.get(&(p[0], p[1])).map(|&r| (r, (p[0], p[1]))))
            .min()
        {
            merge_pair(&mut w, pair, base + rank);
        }
        w
    }

    pub fn vocab_size(&self) -> usize {
        NUM_SPECIAL as usize + self.texts.len()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    /// Text of a non-special id; None outside the vocabulary.
    pub fn symbol(&self, id: u32) -> Option<&str> {
        let i = id.checked_sub(NUM_SPECIAL)? as usize;
        self.texts.get(i).map(String::as_str)
    }
}

/// Replace every non-overlapping occurrence of `pair` in `w`, left to right, by `id`.
fn merge_pair(w: &mut Vec<u32>, pair: Pair, id: u32) {
    let (mut read, mut write) = (0, 0);
    while read < w.len() {
        if read + 1 < w.len() && (w[read], w[read + 1]) == pair {
            w[write] = id;
            read += 2;
        } else {
            w[write] = w[read];
            read += 1;
        }
        write += 1;
    }
    w.truncate(write);
}

/// Cut `text` into chunks (see the module comment): a new chunk starts before a whitespace
/// character that ends a word or that is the last one before a word, and after `MAX_CHUNK`
/// characters.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    let mut prev_ws: Option<bool> = None;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let ws = c.is_whitespace();
        if let Some(prev_ws) = prev_ws {
            let next_is_word = it.peek().is_some_and(|&(_, n)| !n.is_whitespace());
            if len == MAX_CHUNK || (ws && (!prev_ws || next_is_word)) {
                out.push(&text[start..i]);
                (start, len) = (i, 0);
            }
        }
        prev_ws = Some(ws);
        len += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_attach_one_whitespace_character_to_the_next_word() {
        assert_eq!(chunks("a  b"), ["a", " ", " b"]);
        assert_eq!(
            chunks("to be,\n\n\nor not "),
            ["to", " be,", "\n\n", "\nor", " not", " "]
        );
        assert_eq!(chunks(" x"), [" x"]);
        assert_eq!(chunks(""), Vec::<&str>::new());
    }

    #[test]
    fn chunks_are_cut_at_max_chunk_characters() {
        let long = "é".repeat(MAX_CHUNK * 2 + 3);
        let parts = chunks(&long);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            [MAX_CHUNK, MAX_CHUNK, 3]
        );
    }

    #[test]
    fn merge_pair_replaces_non_overlapping_occurrences_left_to_right() {
        let mut w = vec![5, 5, 5, 6, 5, 5];
        merge_pair(&mut w, (5, 5), 9);
        assert_eq!(w, [9, 5, 6, 9]);
    }
}
