//! CTC prefix scores: log p_ctc(g... | X), the probability that the CTC head's output for one
//! utterance *begins* with the label sequence g, summed over every alignment. Joint CTC/attention
//! decoding adds it to the attention decoder's scores inside the beam search (Watanabe et al.,
//! "Hybrid CTC/Attention Architecture for End-to-End Speech Recognition", 2017; ESPnet's
//! `CTCPrefixScore`, which this follows). All of it runs on the CPU over the log-posteriors of
//! one utterance, which come from the GPU once per utterance.
//!
//! For a prefix g the scorer keeps, for every frame t, two forward variables:
//! `r_n[t]` = log p(the first t+1 frames emit exactly g, the last frame emitting g's last label)
//! and `r_b[t]` = the same with the last frame a blank. Extending g by a label c:
//!
//! ```text
//! phi[t]   = logaddexp(r_b[t], r_n[t])          (r_b[t] alone when c repeats g's last label:
//!                                               CTC needs a blank between two equal labels)
//! r_n'[t]  = logaddexp(r_n'[t-1], phi[t-1]) + x[t, c]
//! r_b'[t]  = logaddexp(r_n'[t-1], r_b'[t-1]) + x[t, blank]
//! psi(g+c) = logsumexp over t of (phi[t-1] + x[t, c])   (c first emitted at frame t)
//! ```
//!
//! and the end of the sentence scores the whole utterance: psi(g + EOS) = log p_ctc(g | X) =
//! logaddexp(r_n[T-1], r_b[T-1]). A hypothesis that covers only part of the audio therefore gets
//! a very low score for ending, which is what keeps joint decoding from stopping after the first
//! sentence of a long utterance. Blank and the start token are never emitted (score -inf).
//! Prefix probabilities only fall as a prefix grows, so every increment psi(g+c) - psi(g) is <= 0.

/// log(0) in the forward variables.
const LOG_ZERO: f64 = f64::NEG_INFINITY;

fn log_add(a: f64, b: f64) -> f64 {
    if a == LOG_ZERO {
        return b;
    }
    if b == LOG_ZERO {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// The CTC log-posteriors of one utterance and the ids that are not ordinary labels.
pub struct CtcPrefixScorer {
    /// log p(class | frame), [frames, vocab] row-major.
    log_probs: Vec<f64>,
    frames: usize,
    vocab: usize,
    blank: u32,
    sos: u32,
    eos: u32,
}

/// What the scorer knows about one prefix.
#[derive(Clone, Debug)]
pub struct PrefixState {
    r_n: Vec<f64>,
    r_b: Vec<f64>,
    /// psi of this prefix.
    score: f64,
    /// Its labels so far (the start token excluded).
    len: usize,
    last: Option<u32>,
}

impl PrefixState {
    /// log p_ctc(prefix... | X).
    pub fn score(&self) -> f64 {
        self.score
    }
}

impl CtcPrefixScorer {
    /// `logits`: [frames, vocab] row-major, the CTC head's output for one utterance's valid
    /// frames; they are turned into log-probabilities here.
    pub fn new(
        logits: &[f32],
        frames: usize,
        vocab: usize,
        blank: u32,
        sos: u32,
        eos: u32,
    ) -> Self {
        assert_eq!(
            logits.len(),
            frames * vocab,
            "CTC logits are [frames, vocab]"
        );
        let log_probs = logits.chunks(vocab).flat_map(super::log_softmax).collect();
        CtcPrefixScorer {
            log_probs,
            frames,
            vocab,
            blank,
            sos,
            eos,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn x(&self, t: usize, c: u32) -> f64 {
        self.log_probs[t * self.vocab + c as usize]
    }

    /// The empty prefix: every frame so far a blank; its prefix probability is 1.
    pub fn start(&self) -> PrefixState {
        let mut r_b = vec![LOG_ZERO; self.frames];
        let mut acc = 0.0;
        for (t, r) in r_b.iter_mut().enumerate() {
            acc += self.x(t, self.blank);
            *r = acc;
        }
        PrefixState {
            r_n: vec![LOG_ZERO; self.frames],
            r_b,
            score: 0.0,
            len: 0,
            last: None,
        }
    }

    /// log p_ctc(g | X): the whole utterance emits exactly the prefix g.
    pub fn full_score(&self, g: &PrefixState) -> f64 {
        match self.frames {
            0 => {
                if g.len == 0 {
                    0.0
                } else {
                    LOG_ZERO
                }
            }
            t => log_add(g.r_n[t - 1], g.r_b[t - 1]),
        }
    }

    /// The state of g extended by `c`; its `score()` is psi(g + c).
    pub fn extend(&self, g: &PrefixState, c: u32) -> PrefixState {
        let (frames, len) = (self.frames, g.len + 1);
        if c == self.eos {
            return PrefixState {
                r_n: Vec::new(),
                r_b: Vec::new(),
                score: self.full_score(g),
                len,
                last: Some(c),
            };
        }
        let mut r_n = vec![LOG_ZERO; frames];
        let mut r_b = vec![LOG_ZERO; frames];
        if c == self.blank || c == self.sos || frames == 0 {
            return PrefixState {
                r_n,
                r_b,
                score: LOG_ZERO,
                len,
                last: Some(c),
            };
        }
        let repeat = g.last == Some(c);
        let phi = |t: usize| {
            if repeat {
                g.r_b[t]
            } else {
                log_add(g.r_b[t], g.r_n[t])
            }
        };
        // Frame 0 can emit c only as the first label.
        let mut psi = LOG_ZERO;
        if g.len == 0 {
            r_n[0] = self.x(0, c);
            psi = r_n[0];
        }
        // g's own labels need at least g.len frames, so c is emitted at frame g.len at the
        // earliest: r_n and r_b stay log(0) before it.
        for t in g.len.max(1)..frames {
            let p = phi(t - 1);
            r_n[t] = log_add(r_n[t - 1], p) + self.x(t, c);
            r_b[t] = log_add(r_n[t - 1], r_b[t - 1]) + self.x(t, self.blank);
            psi = log_add(psi, p + self.x(t, c));
        }
        PrefixState {
            r_n,
            r_b,
            score: psi,
            len,
            last: Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLANK: u32 = 0;
    const SOS: u32 = 1;
    const EOS: u32 = 2;

    /// Every frame's class sequence (V^T of them) with its probability: the brute-force
    /// definition of the prefix and full-sequence probabilities.
    fn paths(probs: &[f64], frames: usize, vocab: usize) -> Vec<(Vec<u32>, f64)> {
        let mut out = vec![(Vec::new(), 1.0)];
        for t in 0..frames {
            out = out
                .into_iter()
                .flat_map(|(path, p)| {
                    (0..vocab as u32).map(move |c| {
                        let mut next = path.clone();
                        next.push(c);
                        (next, p * probs[t * vocab + c as usize])
                    })
                })
                .collect();
        }
        out
    }

    /// The labels of an alignment: repeats merged, blanks dropped; None if it passes through a
    /// class that is not a label (sos, eos).
    fn collapse(path: &[u32]) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        let mut prev = BLANK;
        for &c in path {
            if c == SOS || c == EOS {
                return None;
            }
            if c != BLANK && c != prev {
                out.push(c);
            }
            prev = c;
        }
        Some(out)
    }

    /// Whether the alignment's first frames emit exactly `prefix` (its later frames, whatever
    /// they hold, do not matter).
    fn begins_with(path: &[u32], prefix: &[u32]) -> bool {
        (1..=path.len()).any(|t| collapse(&path[..t]).as_deref() == Some(prefix))
    }

    /// Posteriors over 5 classes (blank, sos, eos, a=3, b=4) for 4 frames, with sos and eos
    /// given some mass too (the scorer must never emit them).
    fn example() -> (Vec<f32>, Vec<f64>) {
        let raw: [[f64; 5]; 4] = [
            [0.3, 0.05, 0.05, 0.4, 0.2],
            [0.5, 0.05, 0.05, 0.2, 0.2],
            [0.2, 0.05, 0.05, 0.3, 0.4],
            [0.4, 0.05, 0.05, 0.4, 0.1],
        ];
        let probs: Vec<f64> = raw.iter().flatten().copied().collect();
        let logits = probs.iter().map(|p| p.ln() as f32).collect();
        (logits, probs)
    }

    #[test]
    fn prefix_and_full_scores_match_the_sum_over_all_alignments() {
        let (logits, probs) = example();
        let scorer = CtcPrefixScorer::new(&logits, 4, 5, BLANK, SOS, EOS);
        let all = paths(&probs, 4, 5);
        for prefix in [
            vec![3],
            vec![4],
            vec![3, 3],
            vec![3, 4],
            vec![4, 3, 4],
            vec![3, 4, 3, 4],
        ] {
            let mut state = scorer.start();
            for &c in &prefix {
                state = scorer.extend(&state, c);
            }
            let begins: f64 = all
                .iter()
                .filter(|(path, _)| begins_with(path, &prefix))
                .map(|(_, p)| p)
                .sum();
            let exact: f64 = all
                .iter()
                .filter(|(path, _)| collapse(path).as_ref() == Some(&prefix))
                .map(|(_, p)| p)
                .sum();
            // The logits are f32: agreement to about 1e-7 relative.
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b;
            assert!(
                close(state.score().exp(), begins),
                "prefix {prefix:?}: {} vs {begins}",
                state.score().exp()
            );
            let end = scorer.extend(&state, EOS).score().exp();
            assert!(close(end, exact), "full {prefix:?}: {end} vs {exact}");
        }
    }

    #[test]
    fn blank_and_start_are_never_emitted_and_prefixes_only_lose_probability() {
        let (logits, _) = example();
        let scorer = CtcPrefixScorer::new(&logits, 4, 5, BLANK, SOS, EOS);
        let a = scorer.extend(&scorer.start(), 3);
        assert_eq!(scorer.extend(&a, BLANK).score(), LOG_ZERO);
        assert_eq!(scorer.extend(&a, SOS).score(), LOG_ZERO);
        let ab = scorer.extend(&a, 4);
        assert!(ab.score() <= a.score() && a.score() <= 0.0);
        // Five labels cannot fit in four frames.
        let mut long = scorer.start();
        for c in [3, 4, 3, 4, 3] {
            long = scorer.extend(&long, c);
        }
        assert_eq!(long.score(), LOG_ZERO);
    }
}
