//! Recognition error rates: Levenshtein distance over characters (CER) and words (WER).

/// Minimum number of insertions, deletions and substitutions turning `a` into `b`.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    // One row of the dynamic-programming table at a time.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(x != y);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

/// Errors summed over a test set: CER = char edits / reference chars, WER = word edits /
/// reference words (corpus-level, as sclite reports them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorRates {
    pub char_edits: usize,
    pub chars: usize,
    pub word_edits: usize,
    pub words: usize,
    pub utterances: usize,
}

impl ErrorRates {
    pub fn add(&mut self, reference: &str, hypothesis: &str) {
        let (rc, hc): (Vec<char>, Vec<char>) =
            (reference.chars().collect(), hypothesis.chars().collect());
        let rw: Vec<&str> = reference.split_whitespace().collect();
        let hw: Vec<&str> = hypothesis.split_whitespace().collect();
        self.char_edits += edit_distance(&rc, &hc);
        self.chars += rc.len();
        self.word_edits += edit_distance(&rw, &hw);
        self.words += rw.len();
        self.utterances += 1;
    }

    pub fn cer(&self) -> f64 {
        self.char_edits as f64 / self.chars.max(1) as f64
    }

    pub fn wer(&self) -> f64 {
        self.word_edits as f64 / self.words.max(1) as f64
    }

    /// The counts as numbers to sum across processes (`from_counts` reads them back).
    pub fn counts(&self) -> [f64; 5] {
        [
            self.char_edits,
            self.chars,
            self.word_edits,
            self.words,
            self.utterances,
        ]
        .map(|c| c as f64)
    }

    pub fn from_counts(c: &[f64]) -> ErrorRates {
        let at = |i: usize| c.get(i).copied().unwrap_or(0.0) as usize;
        ErrorRates {
            char_edits: at(0),
            chars: at(1),
            word_edits: at(2),
            words: at(3),
            utterances: at(4),
        }
    }

    /// Mean word-level edit distance per utterance.
    pub fn mean_word_distance(&self) -> f64 {
        self.word_edits as f64 / self.utterances.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_each_kind_of_edit() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "ab"), 2);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("flaw", "lawn"), 2);
    }

    #[test]
    fn rates_are_corpus_level() {
        let mut r = ErrorRates::default();
        r.add("THE CAT", "THE CAT");
        r.add("A DOG", "A DOT");
        assert_eq!((r.char_edits, r.chars), (1, 12));
        assert_eq!((r.word_edits, r.words), (1, 4));
        assert!((r.wer() - 0.25).abs() < 1e-12);
        assert!((r.mean_word_distance() - 0.5).abs() < 1e-12);
    }
}
