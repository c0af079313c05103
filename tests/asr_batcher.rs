//! The speech batcher: padding, lengths, the frame budget, one visit per epoch, determinism.

use std::collections::HashMap;
use wgformer::audio::Features;
use wgformer::data::asr::{asr_tokenizer, AsrBatch, AsrBatcher, Utterance};
use wgformer::data::{EOS, PAD, SOS};
use wgformer::rng::SplitMix64;

const BINS: usize = 3;
const WORDS: [&str; 6] = [
    "A",
    "TO BE",
    "OR NOT",
    "WHO'S THERE",
    "AY",
    "STAND AND UNFOLD YOURSELF",
];

/// `n` utterances of 1..=40 frames; feature value = 1000 u + 10 t + bin + 1 (never 0, so
/// padding is recognisable).
fn utterances(n: usize, seed: u64) -> Vec<Utterance> {
    let tok = asr_tokenizer();
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|u| {
            let frames = 1 + (rng.next_u64() % 40) as usize;
            let data = (0..frames * BINS)
                .map(|k| (1000 * u + 10 * (k / BINS) + k % BINS + 1) as f32)
                .collect();
            let text = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
            Utterance::new(
                format!("utt-{u}"),
                Features::new(frames, BINS, data),
                text,
                &tok,
            )
        })
        .collect()
}

fn by_id(utts: &[Utterance]) -> HashMap<String, &Utterance> {
    utts.iter().map(|u| (u.id.clone(), u)).collect()
}

#[test]
fn batches_are_padded_with_zeros_and_pad_and_carry_true_lengths() {
    let utts = utterances(57, 1);
    let index = by_id(&utts);
    let batcher = AsrBatcher::new(utts.clone(), 120, 8, 0).unwrap();
    for batch in batcher.epoch(0) {
        let AsrBatch {
            batch: b,
            frames: t,
            bins,
            labels: s,
            ..
        } = batch;
        assert_eq!(bins, BINS);
        assert_eq!(batch.features.len(), b * t * BINS);
        assert_eq!(batch.decoder_input.len(), b * (s + 1));
        assert_eq!(batch.ctc_targets.len(), b * s);
        assert_eq!(*batch.feature_lens.iter().max().unwrap() as usize, t);
        assert_eq!(*batch.target_lens.iter().max().unwrap() as usize, s);
        for (r, id) in batch.ids.iter().enumerate() {
            let u = index[id];
            let (frames, n) = (u.features.frames, u.tokens.len());
            assert_eq!(
                (
                    batch.feature_lens[r] as usize,
                    batch.target_lens[r] as usize
                ),
                (frames, n)
            );
            let row = &batch.features[r * t * BINS..(r + 1) * t * BINS];
            assert_eq!(&row[..frames * BINS], &u.features.data[..]);
            assert!(row[frames * BINS..].iter().all(|&v| v == 0.0));
            let input = &batch.decoder_input[r * (s + 1)..(r + 1) * (s + 1)];
            let target = &batch.decoder_target[r * (s + 1)..(r + 1) * (s + 1)];
            let mut want_input = vec![SOS];
            want_input.extend(&u.tokens);
            want_input.resize(s + 1, PAD);
            let mut want_target = u.tokens.clone();
            want_target.push(EOS);
            want_target.resize(s + 1, PAD);
            let mut want_ctc = u.tokens.clone();
            want_ctc.resize(s, PAD);
            assert_eq!((input, target), (&want_input[..], &want_target[..]), "{id}");
            assert_eq!(
                &batch.ctc_targets[r * s..(r + 1) * s],
                &want_ctc[..],
                "{id}"
            );
        }
    }
}

#[test]
fn every_utterance_appears_once_per_epoch_within_the_budget() {
    let utts = utterances(200, 2);
    let (max_frames, max_batch) = (160, 6);
    let batcher = AsrBatcher::new(utts, max_frames, max_batch, 9).unwrap();
    for epoch in 0..3 {
        let mut seen: Vec<String> = Vec::new();
        for batch in batcher.epoch(epoch) {
            assert!(
                batch.batch * batch.frames <= max_frames,
                "{} x {}",
                batch.batch,
                batch.frames
            );
            assert!(batch.batch <= max_batch);
            seen.extend(batch.ids);
        }
        seen.sort();
        let mut all: Vec<String> = (0..200).map(|u| format!("utt-{u}")).collect();
        all.sort();
        assert_eq!(seen, all, "epoch {epoch}");
    }
    assert!(
        batcher.num_batches() < 200,
        "similar lengths should share batches"
    );
}

#[test]
fn epochs_are_deterministic_per_seed_and_differ_between_epochs() {
    let order = |seed, epoch| -> Vec<Vec<String>> {
        let batcher = AsrBatcher::new(utterances(100, 3), 200, 16, seed).unwrap();
        batcher.epoch(epoch).map(|b| b.ids).collect()
    };
    assert_eq!(order(4, 0), order(4, 0));
    assert_ne!(order(4, 0), order(4, 1));
    assert_ne!(order(4, 0), order(5, 0));
}

#[test]
fn utterances_that_cannot_be_batched_are_named() {
    let mut utts = utterances(5, 4);
    utts[2].features = Features::new(50, BINS, vec![1.0; 50 * BINS]);
    let err = |utts: Vec<Utterance>, max_frames| {
        AsrBatcher::new(utts, max_frames, 4, 0)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err(utts.clone(), 49).contains("utt-2 has 50 frames"));
    utts[2].features = Features::new(2, BINS + 1, vec![1.0; 2 * (BINS + 1)]);
    assert!(err(utts, 100).contains("utt-2 has 4 bins, expected 3"));
    assert!(err(Vec::new(), 100).contains("no utterances"));
}
