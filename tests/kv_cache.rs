//! The decoding caches of `MultiHeadAttention`: a re-ordering (beam search re-ranking its
//! sequences) is applied as the cache next grows, composes with the ones before it, and gives
//! what gathering the rows at once gives; a cross-attention cache of one memory serves every
//! sequence without being copied.
mod common;
use common::*;
use wgformer::nn::{Init, KvCache, MultiHeadAttention};
use wgformer::ops::AttentionMask;

const D: usize = 16;

fn attention(seed: u64) -> MultiHeadAttention {
    MultiHeadAttention::new(&mut Init::new(&gpu(), seed), "attn", D, 2).unwrap()
}

/// Rows `rows` of `data` viewed as [rows, t, D].
fn rows_of(data: &[f32], t: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| data[r * t * D..(r + 1) * t * D].iter().copied())
        .collect()
}

fn f64_vec(t: &wgformer::Tensor) -> Vec<f64> {
    f64s(&t.to_vec().unwrap())
}

#[test]
fn deferred_reorders_compose_and_match_gathering_the_rows_at_once() {
    let _g = wgformer::no_grad();
    let attn = attention(1);
    let causal = AttentionMask::causal();
    let first = values(3 * 2 * D, 2); // 3 sequences, 2 positions
    let next = values(3 * D, 3); // one more position each, in the new order

    let mut deferred = KvCache::default();
    attn.forward_self_cached(&tensor(&first, &[3, 2, D]), &causal, &mut deferred, None)
        .unwrap();
    deferred.reorder(&[2, 0]).unwrap();
    deferred.reorder(&[1, 1, 0]).unwrap(); // rows 0, 0, 2 of the first step
    assert_eq!(deferred.sequences(), 3);
    assert_eq!(deferred.k.as_ref().unwrap().shape(), &[3, 2, 2, D / 2]);
    let got = attn
        .forward_self_cached(&tensor(&next, &[3, 1, D]), &causal, &mut deferred, None)
        .unwrap();

    let mut at_once = KvCache::default();
    let gathered = rows_of(&first, 2, &[0, 0, 2]);
    attn.forward_self_cached(&tensor(&gathered, &[3, 2, D]), &causal, &mut at_once, None)
        .unwrap();
    let want = attn
        .forward_self_cached(&tensor(&next, &[3, 1, D]), &causal, &mut at_once, None)
        .unwrap();
    assert_close("output", &got.to_vec().unwrap(), &f64_vec(&want), 1e-6);
    for (what, a, b) in [
        ("keys", &deferred.k, &at_once.k),
        ("values", &deferred.v, &at_once.v),
    ] {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(a.shape(), &[3, 2, 3, D / 2], "{what}");
        assert_close(what, &a.to_vec().unwrap(), &f64_vec(b), 1e-6);
    }
    assert!(
        deferred.reorder(&[0, 3]).is_err(),
        "sequence 3 of a cache of 3"
    );
}

/// Four beams over one memory: against 40 frames (the `Rows` kernel on GPUs) and 100
/// (`SplitKeys` everywhere), the shared one-row cache gives what a cache of the memory copied per beam gives, and stays
/// one row through re-orderings.
#[test]
fn one_memory_serves_every_sequence_of_cross_attention_without_copies() {
    let _g = wgformer::no_grad();
    let attn = attention(4);
    for frames in [40, 100] {
        let memory = values(frames * D, 5);
        let queries = values(4 * D, 6);
        let mut shared = KvCache::default();
        let x = tensor(&queries, &[4, 1, D]);
        let one = tensor(&memory, &[1, frames, D]);
        let got = attn
            .forward_cross_cached(&x, &one, &AttentionMask::none(), &mut shared, None)
            .unwrap();

        let mut copied = KvCache::default();
        let four = tensor(&memory.repeat(4), &[4, frames, D]);
        let want = attn
            .forward_cross_cached(&x, &four, &AttentionMask::none(), &mut copied, None)
            .unwrap();
        let case = format!("{frames} frames");
        assert_close(&case, &got.to_vec().unwrap(), &f64_vec(&want), 1e-5);

        shared.reorder(&[3, 3, 0, 1]).unwrap();
        let again = attn
            .forward_cross_cached(&x, &one, &AttentionMask::none(), &mut shared, None)
            .unwrap();
        assert_close(&case, &again.to_vec().unwrap(), &f64_vec(&want), 1e-5);
        assert_eq!(shared.k.as_ref().unwrap().shape(), &[1, 2, frames, D / 2]);
    }
}
