//! What the synthetic speech corpus contains, decided before any audio is made: the sentences,
//! their split, and the voice of every utterance. Everything follows from the text and the seed,
//! so the same command rebuilds the same corpus (and resumes a half-built one).
//!
//! Splits are cut by sentence: a validation or test sentence never occurs in training. The
//! `test_voices` split speaks test-pool sentences with voices held out of every other split.
//!
//! A second, modern-English text (`plan_modern`) adds its own two splits: `train_modern`, spoken
//! by a wider set of voices and transformed by sox effects, and `test_modern`, held-out modern
//! sentences spoken untransformed by the training voices.

use super::effects::Effects;
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
    TrainModern,
    TestModern,
}

impl Split {
    /// The splits of the main text, whose manifests a build always writes.
    pub const BASE: [Split; 4] = [Split::Train, Split::Val, Split::Test, Split::TestVoices];
    pub const ALL: [Split; 6] = [
        Split::Train,
        Split::Val,
        Split::Test,
        Split::TestVoices,
        Split::TrainModern,
        Split::TestModern,
    ];

    /// The folder under `wav/`, the manifest's file stem and the utterance id prefix.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::TestVoices => "test_voices",
            Split::TrainModern => "train_modern",
            Split::TestModern => "test_modern",
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
            Split::TrainModern | Split::TestModern => 0,
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
    /// sox transformations of the voice (none outside `train_modern`).
    pub effects: Effects,
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
            Split::TrainModern | Split::TestModern => continue,
        };
        // One voice stream per split, so resizing one split leaves the others' voices alone.
        let mut rng = SplitMix64::new(seed ^ (k as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        for i in 0..sizes.of(split) {
            plan.push(PlannedUtterance {
                split,
                id: utterance_id(split, i),
                transcript: pool[i % pool.len()].clone(),
                voice: Voice::draw(&mut rng, split == Split::TestVoices),
                effects: Effects::default(),
            });
        }
    }
    Ok(plan)
}

// Seed offsets of the modern text's random streams ("modern", "TEST", "TRAIN" in ASCII), so
// they never coincide with the main text's.
const MODERN_SHUFFLE: u64 = 0x6D6F_6465_726E;
const MODERN_TEST_VOICES: u64 = 0x5445_5354;
const MODERN_TRAIN_VOICES: u64 = 0x0054_5241_494E;

/// Utterances of the modern text's two splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModernSizes {
    pub train: usize,
    pub test: usize,
}

/// Plan the modern text's splits: `sentences` minus `exclude` (the main plan's held-out
/// sentences, which no training split may speak), shuffled with `seed`; the first `test` are
/// `test_modern`, the rest cycle through `train_modern`, each with a wide voice and its effects.
pub fn plan_modern(
    sentences: &[String],
    exclude: &HashSet<&str>,
    sizes: ModernSizes,
    seed: u64,
) -> Result<Vec<PlannedUtterance>> {
    let mut shuffled: Vec<String> = sentences
        .iter()
        .filter(|s| !exclude.contains(s.as_str()))
        .cloned()
        .collect();
    SplitMix64::new(seed ^ MODERN_SHUFFLE).shuffle(&mut shuffled);
    if shuffled.len() <= sizes.test && sizes.train > 0 || shuffled.len() < sizes.test {
        return Err(Error::format(
            "speech corpus plan (modern text)",
            format!(
                "{} distinct sentences, but test_modern needs {} and training at least one more",
                shuffled.len(),
                sizes.test
            ),
        ));
    }
    let (test, train) = shuffled.split_at(sizes.test);
    let mut plan = Vec::new();
    let mut rng = SplitMix64::new(seed ^ MODERN_TEST_VOICES);
    for (i, sentence) in test.iter().enumerate() {
        plan.push(PlannedUtterance {
            split: Split::TestModern,
            id: utterance_id(Split::TestModern, i),
            transcript: sentence.clone(),
            voice: Voice::draw(&mut rng, false),
            effects: Effects::default(),
        });
    }
    let mut rng = SplitMix64::new(seed ^ MODERN_TRAIN_VOICES);
    for i in 0..sizes.train {
        let voice = Voice::draw_wide(&mut rng);
        plan.push(PlannedUtterance {
            split: Split::TrainModern,
            id: utterance_id(Split::TrainModern, i),
            transcript: train[i % train.len()].clone(),
            voice,
            effects: Effects::draw(&mut rng),
        });
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
        for split in Split::BASE {
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
    fn modern_plan_holds_its_test_sentences_and_the_excluded_ones_out_of_training() {
        let s = sentences(300);
        let exclude: HashSet<&str> = s[..10].iter().map(String::as_str).collect();
        let sizes = ModernSizes {
            train: 500,
            test: 40,
        };
        let plan = plan_modern(&s, &exclude, sizes, 3).unwrap();
        let of = |split| plan.iter().filter(move |u| u.split == split);
        assert_eq!(of(Split::TestModern).count(), 40);
        assert_eq!(of(Split::TrainModern).count(), 500);
        let test: HashSet<&str> = of(Split::TestModern)
            .map(|u| u.transcript.as_str())
            .collect();
        for u in of(Split::TrainModern) {
            assert!(!test.contains(u.transcript.as_str()), "{} in test", u.id);
            assert!(
                !exclude.contains(u.transcript.as_str()),
                "{} excluded",
                u.id
            );
            assert!(!u.voice.is_held_out());
        }
        assert!(of(Split::TestModern).all(|u| u.effects.is_none() && !u.voice.is_held_out()));
        assert!(of(Split::TrainModern).any(|u| !u.effects.is_none()));
        assert_eq!(plan, plan_modern(&s, &exclude, sizes, 3).unwrap());
        let msg = plan_modern(&s[..40], &HashSet::new(), sizes, 3)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("40 distinct sentences"), "{msg}");
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
    fn growing_the_training_splits_keeps_every_planned_utterance() {
        // A grown corpus (configs/asr-grow.yaml) only appends training utterances: the held-out
        // splits and the utterances already synthesised stay exactly as they were.
        let s = sentences(500);
        let grown = CorpusSizes {
            train: 2 * SIZES.train,
            ..SIZES
        };
        let (small, big) = (
            plan_corpus(&s, SIZES, 1).unwrap(),
            plan_corpus(&s, grown, 1).unwrap(),
        );
        let added: Vec<_> = big.iter().filter(|u| !small.contains(u)).collect();
        assert_eq!(small.len() + added.len(), big.len(), "nothing lost");
        assert!(added.iter().all(|u| u.split == Split::Train));
        let modern = |train| {
            let sizes = ModernSizes { train, test: 40 };
            plan_modern(&s, &HashSet::new(), sizes, 1).unwrap()
        };
        let (small, big) = (modern(200), modern(400));
        assert_eq!(big[..small.len()], small[..]);
    }

    #[test]
    fn plan_refuses_too_few_sentences() {
        let msg = plan_corpus(&sentences(60), SIZES, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("60 distinct sentences"), "{msg}");
    }
}
