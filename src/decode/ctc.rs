//! Greedy CTC decoding: the most likely class of every encoder frame, repeats merged, blanks
//! dropped (the best path, not the best labelling; no language model).

/// `logits`: [B, T, V] row-major on the CPU; `lens`: valid frames of each row.
pub fn ctc_greedy(
    logits: &[f32],
    lens: &[usize],
    frames: usize,
    vocab: usize,
    blank: u32,
) -> Vec<Vec<u32>> {
    lens.iter()
        .enumerate()
        .map(|(b, &len)| {
            let mut out = Vec::new();
            let mut prev = blank;
            for t in 0..len.min(frames) {
                let row = &logits[(b * frames + t) * vocab..][..vocab];
                let best = super::argmax(row) as u32;
                if best != blank && best != prev {
                    out.push(best);
                }
                prev = best;
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(classes: &[u32], vocab: usize) -> Vec<f32> {
        classes
            .iter()
            .flat_map(|&c| (0..vocab).map(move |v| if v as u32 == c { 1.0 } else { 0.0 }))
            .collect()
    }

    #[test]
    fn repeats_merge_blanks_separate_and_padding_is_ignored() {
        // a a _ a b b _ | padding frames c c
        let frames = [5, 5, 0, 5, 6, 6, 0, 7, 7];
        let logits = one_hot(&frames, 8);
        assert_eq!(ctc_greedy(&logits, &[7], 9, 8, 0), vec![vec![5, 5, 6]]);
        assert_eq!(ctc_greedy(&logits, &[9], 9, 8, 0), vec![vec![5, 5, 6, 7]]);
        assert_eq!(ctc_greedy(&logits, &[0], 9, 8, 0), vec![Vec::<u32>::new()]);
    }
}
