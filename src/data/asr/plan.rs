//! What the synthetic speech corpus contains, decided before any audio is made: the sentences,
//! their split, and the voice of every utterance. Everything follows from the text and the seed,
//! so the same command rebuilds the same corpus (and resumes a half-built one).
//!
//! Splits are cut by sentence: a validation or test sentence never occurs in training. The
//! `test_voices` split speaks test-pool sentences with voices held out of every other split.

use super::transcript::normalize_transcript;
use super::voices::Voice;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use std::collections::HashSet;

pub const MIN_WORDS: usize = 3;
pub const MAX_WORDS: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
    TestVoices,
}

impl Split {
    pub const ALL: [Split; 4] = [Split::Train, Split::Val, Split::Test, Split::TestVoices];

    /// The folder under `wav/`, the manifest's file stem and the utterance id prefix.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::TestVoices => "test_voices",
        }
    }
}

/// Utterances per split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorpusSizes {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub test_voices: usize,
}

impl CorpusSizes {
    fn of(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train,
            Split::Val => self.val,
            Split::Test => self.test,
            Split::TestVoices => self.test_voices,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedUtterance {
    pub split: Split,
    /// `<split>-<index, 6 digits>`: the WAV file's stem.
    pub id: String,
    /// Normalised: what is spoken and what the manifest holds.
    pub transcript: String,
    pub voice: Voice,
}

/// `<split>-<index, 6 digits>`: utterance `index` of `split`, and its WAV file's stem.
pub fn utterance_id(split: Split, index: usize) -> String {
    format!("{}-{index:06}", split.name())
}

/// The lines of `text`, normalised, of `MIN_WORDS..=MAX_WORDS` words, first occurrences only.
pub fn corpus_sentences(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    text.lines()
        .map(normalize_transcript)
        .filter(|s| (MIN_WORDS..=MAX_WORDS).contains(&s.split(' ').count()))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// Shuffle `sentences` with `seed`, cut the sentence pools, and give every utterance a voice.
///
/// Pools, in shuffled order: test (`max(test, test_voices)` sentences: `test` and
/// `test_voices` take its first ones), val, then every remaining sentence for training, which
/// cycles through them when `train` asks for more utterances than there are sentences.
pub fn plan_corpus(
    sentences: &[String],
    sizes: CorpusSizes,
    seed: u64,
) -> Result<Vec<PlannedUtterance>> {
    let mut shuffled = sentences.to_vec();
    SplitMix64::new(seed).shuffle(&mut shuffled);
    let test_pool = sizes.test.max(sizes.test_voices);
    let held = test_pool + sizes.val;
    if shuffled.len() <= held && sizes.train > 0 || shuffled.len() < held {
        return Err(Error::format(
            "speech corpus plan",
            format!(
                "{} distinct sentences, but test/test_voices and val need {held} and training \
                 at least one more",
                shuffled.len()
            ),
        ));
    }
    let (test, rest) = shuffled.split_at(test_pool);
    let (val, train) = rest.split_at(sizes.val);
    let mut plan = Vec::new();
    for (k, split) in Split::ALL.into_iter().enumerate() {
        let pool = match split {
            Split::Train => train,
            Split::Val => val,
            Split::Test | Split::TestVoices => test,
        };
        // One voice stream per split, so resizing one split leaves the others' voices alone.
        let mut rng = SplitMix64::new(seed ^ (k as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        for i in 0..sizes.of(split) {
            plan.push(PlannedUtterance {
                split,
                id: utterance_id(split, i),
                transcript: pool[i % pool.len()].clone(),
                voice: Voice::draw(&mut rng, split == Split::TestVoices),
            });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("SENTENCE {i} OF THE TEST"))
            .collect()
    }

    const SIZES: CorpusSizes = CorpusSizes {
        train: 300,
        val: 20,
        test: 30,
        test_voices: 40,
    };

    #[test]
    fn corpus_sentences_keep_three_to_twelve_words_once() {
        let text = "Who's there, my lord?\nNay, answer me: stand, and unfold yourself.\nHo!\n\
                    Who's there, my lord?\n1 Clown.\n\
                    one two three four five six seven eight nine ten eleven twelve thirteen\n";
        assert_eq!(
            corpus_sentences(text),
            [
                "WHO'S THERE MY LORD",
                "NAY ANSWER ME STAND AND UNFOLD YOURSELF"
            ]
        );
    }

    #[test]
    fn plan_splits_by_sentence_and_holds_voices_out() {
        let plan = plan_corpus(&sentences(500), SIZES, 1).unwrap();
        let of = |split| plan.iter().filter(move |u| u.split == split);
        for split in Split::ALL {
            assert_eq!(of(split).count(), SIZES.of(split), "{split:?}");
        }
        let train: HashSet<&str> = of(Split::Train).map(|u| u.transcript.as_str()).collect();
        let val: HashSet<&str> = of(Split::Val).map(|u| u.transcript.as_str()).collect();
        for u in of(Split::Val)
            .chain(of(Split::Test))
            .chain(of(Split::TestVoices))
        {
            assert!(!train.contains(u.transcript.as_str()), "{} in train", u.id);
        }
        for u in of(Split::Test).chain(of(Split::TestVoices)) {
            assert!(!val.contains(u.transcript.as_str()), "{} in val", u.id);
        }
        assert!(plan
            .iter()
            .all(|u| u.voice.is_held_out() == (u.split == Split::TestVoices)));
        let ids: HashSet<&str> = plan.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids.len(), plan.len());
    }

    #[test]
    fn plan_is_deterministic_per_seed() {
        let s = sentences(500);
        assert_eq!(
            plan_corpus(&s, SIZES, 5).unwrap(),
            plan_corpus(&s, SIZES, 5).unwrap()
        );
        assert_ne!(
            plan_corpus(&s, SIZES, 5).unwrap(),
            plan_corpus(&s, SIZES, 6).unwrap()
        );
    }

    #[test]
    fn plan_refuses_too_few_sentences() {
        let msg = plan_corpus(&sentences(60), SIZES, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("60 distinct sentences"), "{msg}");
    }
}
