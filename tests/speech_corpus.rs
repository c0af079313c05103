//! The synthetic speech corpus on the bundled Shakespeare and modern-English sentences. The synthesis test needs the TTS
//! engines: `scripts/test` and CI install them first (`scripts/install_tts`); without them it
//! fails with an error naming the missing engine.

use std::collections::HashSet;
use std::path::Path;
use wgformer::data::asr::{
    build_speech_corpus, corpus_sentences, plan_corpus, plan_modern, read_manifest, CorpusSizes,
    ModernSizes, ModernText, Split, SAMPLE_RATE,
};

const DEFAULT_SIZES: CorpusSizes = CorpusSizes {
    train: 4000,
    val: 200,
    test: 200,
    test_voices: 200,
};

fn shakespeare() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/shakespeare.txt")).unwrap()
}

fn sotu() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sotu.txt")).unwrap()
}

#[test]
fn modern_text_gives_thousands_of_sentences_in_the_transcript_alphabet() {
    let sentences = corpus_sentences(&sotu());
    assert!(sentences.len() > 6_000, "{} sentences", sentences.len());
    let shakespeare: HashSet<String> = corpus_sentences(&shakespeare()).into_iter().collect();
    let shared = sentences
        .iter()
        .filter(|s| shakespeare.contains(*s))
        .count();
    assert!(shared < 10, "{shared} sentences also in Shakespeare");
}

#[test]
fn default_plan_on_shakespeare_has_distinct_training_sentences_and_unseen_test_sentences() {
    let sentences = corpus_sentences(&shakespeare());
    assert!(sentences.len() > 10_000, "{} sentences", sentences.len());
    let plan = plan_corpus(&sentences, DEFAULT_SIZES, 1).unwrap();
    let train: Vec<&str> = plan
        .iter()
        .filter(|u| u.split == Split::Train)
        .map(|u| u.transcript.as_str())
        .collect();
    let distinct: HashSet<&str> = train.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        train.len(),
        "enough sentences that no training sentence repeats"
    );
    for u in plan.iter().filter(|u| u.split != Split::Train) {
        assert!(
            !distinct.contains(u.transcript.as_str()),
            "{} is also in train",
            u.id
        );
    }
}

/// configs/asr-finetune.yaml grows the configs/asr.yaml corpus in place (12,000 training
/// utterances instead of 4,000): that is only sound if the larger plan keeps every utterance of
/// the smaller one, held-out sets included, and its extra sentences are new and unseen in test.
#[test]
fn a_larger_training_split_keeps_the_smaller_plan_and_adds_distinct_sentences() {
    let sentences = corpus_sentences(&shakespeare());
    let small = plan_corpus(&sentences, DEFAULT_SIZES, 1).unwrap();
    let sizes = CorpusSizes {
        train: 12_000,
        ..DEFAULT_SIZES
    };
    let large = plan_corpus(&sentences, sizes, 1).unwrap();
    let of = |plan: &[wgformer::data::asr::PlannedUtterance], split: Split| {
        plan.iter()
            .filter(|u| u.split == split)
            .map(|u| (u.id.clone(), u.transcript.clone(), u.voice.to_string()))
            .collect::<Vec<_>>()
    };
    for split in [Split::Val, Split::Test, Split::TestVoices] {
        assert_eq!(of(&small, split), of(&large, split), "{split:?} changed");
    }
    let (small_train, large_train) = (of(&small, Split::Train), of(&large, Split::Train));
    assert_eq!(large_train.len(), 12_000);
    assert_eq!(small_train[..], large_train[..4000]);
    let distinct: HashSet<&str> = large_train.iter().map(|u| u.1.as_str()).collect();
    assert_eq!(distinct.len(), 12_000, "no training sentence repeats");
    for u in large.iter().filter(|u| u.split != Split::Train) {
        assert!(!distinct.contains(u.transcript.as_str()), "{}", u.id);
    }
}

/// The sample rate, channels and bits of a canonical 44-byte-header WAV file.
fn wav_format(bytes: &[u8]) -> (u32, u16, u16) {
    assert_eq!(
        (&bytes[0..4], &bytes[8..16], &bytes[36..40]),
        (&b"RIFF"[..], &b"WAVEfmt "[..], &b"data"[..])
    );
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    (rate, u16_at(22), u16_at(34))
}

#[test]
fn corpus_build_is_byte_identical_across_runs_and_resumes() {
    let sizes = CorpusSizes {
        train: 9,
        val: 2,
        test: 2,
        test_voices: 3,
    };
    let text = shakespeare();
    let sotu = sotu();
    // Just enough modern training utterances that every sox effect is drawn at least once (the
    // effects are drawn from the seed alone, whatever the sentences).
    let sentences = corpus_sentences(&sotu);
    let effects_of = |train: usize| -> String {
        let sizes = ModernSizes { train, test: 2 };
        let plan = plan_modern(&sentences, &HashSet::new(), sizes, 3).unwrap();
        plan.iter().map(|u| u.effects.to_string() + ",").collect()
    };
    let all_effects = |train: usize| {
        let e = effects_of(train);
        ["pitch", "reverb", "telephone"]
            .iter()
            .all(|x| e.contains(x))
    };
    let modern_train = (1..=60)
        .find(|&n| all_effects(n))
        .expect("60 draws hold every effect");
    let modern = Some(ModernText {
        text: &sotu,
        sizes: ModernSizes {
            train: modern_train,
            test: 2,
        },
    });
    let made = 16 + 2 + modern_train;
    let root = std::env::temp_dir().join(format!("wgformer-speech-{}", std::process::id()));
    let (a, b) = (root.join("a"), root.join("b"));
    let quiet = |_: usize, _: usize| {};
    let first = build_speech_corpus(&text, modern, &a, sizes, 3, 2, &quiet).unwrap();
    assert_eq!(
        first.made.values().map(|s| s.utterances).sum::<usize>(),
        made
    );
    build_speech_corpus(&text, modern, &b, sizes, 3, 2, &quiet).unwrap();
    let voices: Vec<String> = read_manifest(a.join("train_modern.tsv"))
        .unwrap()
        .into_iter()
        .map(|e| e.voice)
        .collect();
    for effect in ["pitch", "reverb", "telephone"] {
        assert!(
            voices.iter().any(|v| v.contains(effect)),
            "no {effect} in {voices:?}"
        );
    }
    for split in Split::ALL {
        let manifest =
            |dir: &Path| read_manifest(dir.join(format!("{}.tsv", split.name()))).unwrap();
        let (in_a, in_b) = (manifest(&a), manifest(&b));
        assert_eq!(in_a.len(), in_b.len());
        for (x, y) in in_a.iter().zip(&in_b) {
            let bytes = std::fs::read(&x.audio).unwrap();
            assert_eq!(
                bytes,
                std::fs::read(&y.audio).unwrap(),
                "{} differs between runs",
                x.audio.display()
            );
            assert_eq!(wav_format(&bytes), (SAMPLE_RATE, 1, 16));
            assert!(
                bytes.len() > 44 + 16_000,
                "{} is under half a second",
                x.audio.display()
            );
        }
    }
    let again = build_speech_corpus(&text, modern, &a, sizes, 3, 2, &quiet).unwrap();
    assert_eq!((again.skipped, again.made.len()), (made, 0));
    std::fs::remove_dir_all(&root).unwrap();
}
