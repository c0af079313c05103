//! ctc_loss vs the CPU reference: loss and gradient on batches with varied input and target
//! lengths (repeats, an empty target, an infeasible utterance, padded frames, no frames), with
//! the blank first and last, on a long case with more states than a workgroup has invocations,
//! vs finite differences on a tiny case; errors for bad shapes and dtypes; and values the CPU
//! cannot check (lengths past the padding, invalid labels) neither hang nor read out of bounds.
mod common;
use common::*;
use wgformer::ops;
use wgformer::reference::ctc::{self as reference, CtcShape};
use wgformer::Tensor;

/// One utterance: its frames and its labels.
struct Utterance {
    frames: u32,
    labels: Vec<u32>,
}

fn utt(frames: u32, labels: &[u32]) -> Utterance {
    Utterance {
        frames,
        labels: labels.to_vec(),
    }
}

struct Batch {
    sh: CtcShape,
    logits: Vec<f32>,
    input_lengths: Vec<u32>,
    targets: Vec<u32>,
    target_lengths: Vec<u32>,
}

impl Batch {
    /// Logits `[B, time, vocab]` of spread `scale`, targets padded to the longest with `pad`.
    fn new(
        utts: &[Utterance],
        time: usize,
        vocab: usize,
        blank: u32,
        scale: f32,
        seed: u64,
    ) -> Batch {
        let batch = utts.len();
        let max_target = utts.iter().map(|u| u.labels.len()).max().unwrap_or(0);
        let mut targets = vec![blank; batch * max_target];
        for (b, u) in utts.iter().enumerate() {
            targets[b * max_target..][..u.labels.len()].copy_from_slice(&u.labels);
        }
        Batch {
            sh: CtcShape {
                batch,
                time,
                vocab,
                max_target,
                blank: blank as usize,
            },
            logits: values(batch * time * vocab, seed)
                .iter()
                .map(|v| v * scale)
                .collect(),
            input_lengths: utts.iter().map(|u| u.frames).collect(),
            targets,
            target_lengths: utts.iter().map(|u| u.labels.len() as u32).collect(),
        }
    }

    fn logits_shape(&self) -> [usize; 3] {
        [self.sh.batch, self.sh.time, self.sh.vocab]
    }

    /// The GPU loss, with a gradient flowing to the returned logits leaf.
    fn gpu_loss(&self) -> (Tensor, Tensor) {
        let gpu = gpu();
        let b = self.sh.batch;
        let logits = leaf(&self.logits, &self.logits_shape());
        let loss = ops::ctc_loss(
            &logits,
            &Tensor::from_u32(&gpu, &self.input_lengths, &[b]).unwrap(),
            &Tensor::from_u32(&gpu, &self.targets, &[b, self.sh.max_target]).unwrap(),
            &Tensor::from_u32(&gpu, &self.target_lengths, &[b]).unwrap(),
            self.sh.blank as u32,
        )
        .unwrap();
        (loss, logits)
    }

    fn reference_loss(&self, logits: &[f64]) -> Vec<f64> {
        reference::ctc_loss(
            logits,
            &self.sh,
            &self.input_lengths,
            &self.targets,
            &self.target_lengths,
        )
    }

    fn reference_grad(&self, dloss: &[f64]) -> Vec<f64> {
        reference::ctc_loss_backward(
            &f64s(&self.logits),
            &self.sh,
            &self.input_lengths,
            &self.targets,
            &self.target_lengths,
            dloss,
        )
    }

    /// Loss and gradient (seeded with `dloss`) against the reference.
    fn check(&self, what: &str, dloss: &[f32], loss_tol: f64, grad_tol: f64) {
        let (loss, logits) = self.gpu_loss();
        assert_eq!(loss.shape(), &[self.sh.batch]);
        let want = self.reference_loss(&f64s(&self.logits));
        assert_close(
            &format!("{what} loss"),
            &loss.to_vec().unwrap(),
            &want,
            loss_tol,
        );
        loss.backward_with(tensor(dloss, &[self.sh.batch])).unwrap();
        let want = self.reference_grad(&f64s(dloss));
        assert_close(
            &format!("{what} dlogits"),
            &grad_of(&logits),
            &want,
            grad_tol,
        );
    }
}

/// Full length with a repeat; input shorter than T; an empty target; an infeasible one ("aaa"
/// needs 5 frames, has 4); back-to-back repeats; no frames at all; one frame, one label.
fn varied(blank: u32, other: impl Fn(u32) -> u32) -> Vec<Utterance> {
    let l = |ids: &[u32]| ids.iter().map(|&i| other(i)).collect::<Vec<u32>>();
    vec![
        utt(12, &l(&[1, 2, 2, 3, 1])),
        utt(9, &l(&[4, 5, 6])),
        utt(7, &[]),
        utt(4, &l(&[1, 1, 1])),
        utt(12, &l(&[2, 2, 3, 3])),
        utt(0, &l(&[1])),
        utt(1, &l(&[6])),
    ]
    .into_iter()
    .inspect(|u| assert!(!u.labels.contains(&blank)))
    .collect()
}

#[test]
fn ctc_matches_reference_on_a_varied_batch_with_blank_zero() {
    let batch = Batch::new(&varied(0, |i| i), 12, 7, 0, 2.0, 1);
    let dloss = values(batch.sh.batch, 2);
    batch.check("blank 0", &dloss, 1e-5, 1e-5);
    // The infeasible and the frameless utterances cost nothing.
    let (loss, _) = batch.gpu_loss();
    let loss = loss.to_vec().unwrap();
    assert_eq!((loss[3], loss[5]), (0.0, 0.0));
    assert!(loss[0] > 0.0 && loss[2] > 0.0);
}

#[test]
fn ctc_matches_reference_with_the_blank_last() {
    // Labels 1..=6 become 0..=5; the blank is class 6.
    let batch = Batch::new(&varied(6, |i| i - 1), 12, 7, 6, 2.0, 3);
    let dloss = values(batch.sh.batch, 4);
    batch.check("blank last", &dloss, 1e-5, 1e-5);
}

#[test]
fn ctc_handles_more_states_than_a_workgroup_and_long_inputs() {
    // S = 200 (401 states) over T = 480 frames, and a second utterance that is shorter on both.
    let long: Vec<u32> = (0..200).map(|i| 1 + (i * 7 % 29) as u32).collect();
    let utts = [utt(480, &long), utt(300, &long[..130])];
    let batch = Batch::new(&utts, 480, 30, 0, 1.0, 5);
    // alpha and beta reach ~ -1500 here; one f32 rounding of alpha + beta - log p is then
    // ~1e-4, which exp() turns into a relative error of the occupancies of that size.
    batch.check("S = 200, T = 480", &[1.0, 0.5], 1e-5, 1e-3);
}

#[test]
fn ctc_gradient_matches_finite_differences() {
    let utts = [utt(5, &[1, 2, 2]), utt(4, &[3]), utt(3, &[])];
    let batch = Batch::new(&utts, 5, 4, 0, 1.5, 6);
    let (loss, logits) = batch.gpu_loss();
    let dloss = values(3, 7);
    loss.backward_with(tensor(&dloss, &[3])).unwrap();
    assert_matches_finite_differences(
        "ctc dlogits fd",
        &grad_of(&logits),
        &f64s(&batch.logits),
        &f64s(&dloss),
        |x| batch.reference_loss(x),
        1e-4,
    );
}

#[test]
fn ctc_lengths_past_the_padding_and_invalid_labels_neither_hang_nor_read_out_of_bounds() {
    let gpu = gpu();
    let logits = leaf(&values(2 * 6 * 5, 8), &[2, 6, 5]);
    // Utterance 0 claims 9 frames of 6 and 4 labels of 3: clamped to 6 and 3. Utterance 1 has
    // a label past V and the blank inside its target: loss 0, no gradient.
    let clamped = Batch {
        sh: CtcShape {
            batch: 1,
            time: 6,
            vocab: 5,
            max_target: 3,
            blank: 0,
        },
        logits: values(6 * 5, 8),
        input_lengths: vec![6],
        targets: vec![1, 2, 3],
        target_lengths: vec![3],
    };
    let loss = ops::ctc_loss(
        &logits,
        &Tensor::from_u32(&gpu, &[9, 6], &[2]).unwrap(),
        &Tensor::from_u32(&gpu, &[1, 2, 3, 7, 0, 2], &[2, 3]).unwrap(),
        &Tensor::from_u32(&gpu, &[4, 3], &[2]).unwrap(),
        0,
    )
    .unwrap();
    let got = loss.to_vec().unwrap();
    assert_close(
        "clamped lengths",
        &got[..1],
        &clamped.reference_loss(&f64s(&clamped.logits)),
        1e-5,
    );
    assert_eq!(got[1], 0.0);
    loss.backward_with(tensor(&[1.0, 1.0], &[2])).unwrap();
    let grad = grad_of(&logits);
    assert!(grad[..30].iter().all(|g| g.is_finite()));
    assert!(grad[30..].iter().all(|&g| g == 0.0));
}

#[test]
fn ctc_rejects_bad_shapes_and_dtypes() {
    let gpu = gpu();
    let u32s = |data: &[u32], shape: &[usize]| Tensor::from_u32(&gpu, data, shape).unwrap();
    let logits = tensor(&values(2 * 4 * 3, 9), &[2, 4, 3]);
    let lens = u32s(&[4, 3], &[2]);
    let targets = u32s(&[1, 2, 1, 0], &[2, 2]);
    let tlens = u32s(&[2, 1], &[2]);
    assert!(ops::ctc_loss(&logits, &lens, &targets, &tlens, 0).is_ok());
    let err = |r: wgformer::Result<Tensor>| r.unwrap_err().to_string();

    let flat = tensor(&values(24, 9), &[8, 3]);
    assert!(err(ops::ctc_loss(&flat, &lens, &targets, &tlens, 0)).contains("[B, T, V]"));
    let msg = err(ops::ctc_loss(&logits, &lens, &targets, &tlens, 3));
    assert!(msg.contains("blank 3"), "names the blank: {msg}");
    let float_lens = tensor(&[4.0, 3.0], &[2]);
    let msg = err(ops::ctc_loss(&logits, &float_lens, &targets, &tlens, 0));
    assert!(msg.contains("input_lengths must be u32"), "{msg}");
    let three_lens = u32s(&[4, 3, 2], &[3]);
    let msg = err(ops::ctc_loss(&logits, &lens, &targets, &three_lens, 0));
    assert!(msg.contains("target_lengths"), "{msg}");
    let flat_targets = u32s(&[1, 2, 1, 0], &[4]);
    let msg = err(ops::ctc_loss(&logits, &lens, &flat_targets, &tlens, 0));
    assert!(msg.contains("targets must be u32 [B, S]"), "{msg}");
    let float_logits = u32s(&[0; 24], &[2, 4, 3]);
    assert!(ops::ctc_loss(&float_logits, &lens, &targets, &tlens, 0).is_err());

    let leaf_logits = leaf(&values(24, 9), &[2, 4, 3]);
    let loss = ops::ctc_loss(&leaf_logits, &lens, &targets, &tlens, 0).unwrap();
    let msg = loss
        .backward_with(tensor(&[1.0], &[1]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("f32 [2]"),
        "names the loss gradient's shape: {msg}"
    );
}

#[test]
fn ctc_of_a_batch_without_labels_is_the_all_blank_path() {
    let batch = Batch::new(&[utt(5, &[]), utt(2, &[])], 5, 3, 0, 1.0, 11);
    assert_eq!(batch.sh.max_target, 0);
    batch.check("S = 0", &[1.0, -2.0], 1e-5, 1e-5);
}
