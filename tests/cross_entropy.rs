//! Fused log-softmax + NLL cross-entropy vs the CPU reference: loss and gradient, with label
//! smoothing and ignored rows, on vocab sizes that are not multiples of any workgroup size;
//! the gradient also vs finite differences. Degenerate inputs (every row ignored, huge logits,
//! targets out of range) give finite results, and bad shapes are errors.
mod common;
use common::*;
use wgformer::ops::{self, RowWidth};
use wgformer::reference::cross_entropy as reference;
use wgformer::reference::finite_diff::numerical_grad;
use wgformer::{Gpu, Tensor};

/// Inside most vocabularies, like a pad id, so ignoring is by value and not by range.
const IGNORE: u32 = 5;

/// (rows, vocab): vocab of 1 and 1000, around the workgroup sizes, and up to 50 rows.
const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (1, 7),
    (3, 33),
    (7, 65),
    (5, 130),
    (4, 1000),
    (50, 7),
    (13, 64),
];

fn logits(n: usize, seed: u64) -> Vec<f32> {
    values(n, seed).iter().map(|v| 3.0 * v).collect()
}

/// A target per row; every third row (past the first) is `IGNORE`, and no other row is.
fn targets(rows: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let draws = values(rows, seed);
    (0..rows)
        .map(|r| {
            let t = (((draws[r] + 1.0) * 0.5 * vocab as f32) as u32).min(vocab as u32 - 1);
            if r % 3 == 2 {
                IGNORE
            } else if t == IGNORE {
                t - 1
            } else {
                t
            }
        })
        .collect()
}

fn as_i64(t: &[u32]) -> Vec<i64> {
    t.iter().map(|&v| v as i64).collect()
}

fn u32_tensor(data: &[u32]) -> Tensor {
    Tensor::from_u32(&gpu(), data, &[data.len()]).unwrap()
}

/// GPU loss and d(dloss * loss)/dlogits.
fn run(x: &[f32], t: &[u32], rows: usize, vocab: usize, ls: f32, dloss: f32) -> (f32, Vec<f32>) {
    let logits = leaf(x, &[rows, vocab]);
    let loss = ops::cross_entropy(&logits, &u32_tensor(t), IGNORE, ls).unwrap();
    assert_eq!(loss.numel(), 1);
    let value = loss.to_scalar().unwrap();
    loss.backward_with(tensor(&[dloss], loss.shape())).unwrap();
    (value, grad_of(&logits))
}

#[test]
fn cross_entropy_loss_matches_reference_with_smoothing_and_ignored_rows() {
    let devices = row_width_devices();
    for (rows, vocab) in SHAPES {
        let x = logits(rows * vocab, vocab as u64);
        let t = targets(rows, vocab, rows as u64);
        // Both shapes of the row-loss kernel: 8 lanes per row (CPU default), 64 (GPU default).
        for (ls, width) in [
            (0.0, RowWidth::Narrow),
            (0.1, RowWidth::Narrow),
            (0.1, RowWidth::Wide),
        ] {
            let _on = use_device(of_width(&devices, width));
            let (loss, _) = run(&x, &t, rows, vocab, ls, 1.0);
            let want = reference::cross_entropy(
                &f64s(&x),
                &as_i64(&t),
                rows,
                vocab,
                IGNORE as i64,
                ls as f64,
            );
            assert_close(
                &format!("loss {rows}x{vocab} ls={ls} {width:?}"),
                &[loss],
                &[want],
                1e-5,
            );
        }
    }
}

#[test]
fn cross_entropy_gradient_matches_reference_with_smoothing_and_ignored_rows() {
    let devices = row_width_devices();
    for (rows, vocab) in SHAPES {
        let x = logits(rows * vocab, 100 + vocab as u64);
        let t = targets(rows, vocab, 100 + rows as u64);
        for (ls, width) in [
            (0.0, RowWidth::Narrow),
            (0.2, RowWidth::Narrow),
            (0.2, RowWidth::Wide),
        ] {
            let _on = use_device(of_width(&devices, width));
            let (_, g) = run(&x, &t, rows, vocab, ls, 1.7);
            let want = reference::cross_entropy_backward(
                &f64s(&x),
                &as_i64(&t),
                rows,
                vocab,
                IGNORE as i64,
                ls as f64,
                1.7,
            );
            assert_close(
                &format!("dlogits {rows}x{vocab} ls={ls} {width:?}"),
                &g,
                &want,
                1e-6,
            );
            for r in (0..rows).filter(|&r| t[r] == IGNORE) {
                assert!(
                    g[r * vocab..(r + 1) * vocab].iter().all(|&v| v == 0.0),
                    "ignored row {r} has a gradient"
                );
            }
        }
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    for (rows, vocab) in [(4, 7), (5, 33), (3, 130)] {
        let x = logits(rows * vocab, 200 + vocab as u64);
        let t = targets(rows, vocab, 200);
        for ls in [0.0, 0.1] {
            let (_, g) = run(&x, &t, rows, vocab, ls, 1.3);
            let ti = as_i64(&t);
            let numeric = numerical_grad(
                |x| 1.3 * reference::cross_entropy(x, &ti, rows, vocab, IGNORE as i64, ls as f64),
                &f64s(&x),
                1e-5,
            );
            assert_close(
                &format!("dlogits fd {rows}x{vocab} ls={ls}"),
                &g,
                &numeric,
                1e-4,
            );
        }
    }
}

#[test]
fn cross_entropy_with_every_row_ignored_is_zero_with_zero_gradient() {
    let (rows, vocab) = (5, 33);
    let x = logits(rows * vocab, 1);
    for ls in [0.0, 0.1] {
        let (loss, g) = run(&x, &[IGNORE; 5], rows, vocab, ls, 1.0);
        assert_eq!(loss, 0.0);
        assert!(g.iter().all(|&v| v == 0.0), "gradient {g:?}");
    }
}

#[test]
fn cross_entropy_of_huge_logits_is_finite_and_matches_reference() {
    // Row 0: the target holds 1e4 (loss ~0). Row 1: another class holds 1e4 (loss ~1e4).
    // Row 2: every logit is around -1e4.
    let (rows, vocab) = (3, 65);
    let mut x = logits(rows * vocab, 2);
    let t = [3u32, 3, 64];
    x[3] = 1e4;
    x[vocab + 10] = 1e4;
    x[2 * vocab..].iter_mut().for_each(|v| *v -= 1e4);
    for ls in [0.0, 0.1] {
        let (loss, g) = run(&x, &t, rows, vocab, ls, 1.0);
        assert!(
            loss.is_finite() && g.iter().all(|v| v.is_finite()),
            "loss {loss}"
        );
        let want = reference::cross_entropy(
            &f64s(&x),
            &as_i64(&t),
            rows,
            vocab,
            IGNORE as i64,
            ls as f64,
        );
        assert_close(&format!("huge loss ls={ls}"), &[loss], &[want], 1e-5);
        let dwant = reference::cross_entropy_backward(
            &f64s(&x),
            &as_i64(&t),
            rows,
            vocab,
            IGNORE as i64,
            ls as f64,
            1.0,
        );
        assert_close(&format!("huge dlogits ls={ls}"), &g, &dwant, 1e-6);
    }
}

#[test]
fn cross_entropy_treats_out_of_range_targets_as_ignored() {
    let (rows, vocab) = (4, 33);
    let x = logits(rows * vocab, 3);
    let t = [6u32, 33, 1_000_000, 0];
    let as_ignored = [6i64, -1, -1, 0];
    let (loss, g) = run(&x, &t, rows, vocab, 0.1, 1.0);
    let want = reference::cross_entropy(&f64s(&x), &as_ignored, rows, vocab, -1, 0.1);
    assert_close("out-of-range loss", &[loss], &[want], 1e-5);
    let dwant =
        reference::cross_entropy_backward(&f64s(&x), &as_ignored, rows, vocab, -1, 0.1, 1.0);
    assert_close("out-of-range dlogits", &g, &dwant, 1e-6);
}

#[test]
fn cross_entropy_forward_and_backward_read_nothing_back() {
    // A device of its own: the shared one's counters move with the other tests.
    let gpu = Gpu::new().unwrap();
    let (rows, vocab) = (6, 33);
    let x = Tensor::from_slice(&gpu, &logits(rows * vocab, 4), &[rows, vocab])
        .unwrap()
        .requires_grad();
    let t = Tensor::from_u32(&gpu, &targets(rows, vocab, 4), &[rows]).unwrap();
    let before = gpu.counters();
    let loss = ops::cross_entropy(&x, &t, IGNORE, 0.1).unwrap();
    loss.backward().unwrap();
    assert!(x.grad().is_some());
    assert_eq!((gpu.counters() - before).bytes_read_back, 0);
}

#[test]
fn cross_entropy_rejects_bad_shapes_and_types() {
    let x = tensor(&logits(4 * 7, 5), &[4, 7]);
    let ok = u32_tensor(&[0, 1, 2, 3]);
    assert!(ops::cross_entropy(&x, &ok, IGNORE, 0.0).is_ok());
    // Targets count != rows.
    assert!(ops::cross_entropy(&x, &u32_tensor(&[0, 1, 2]), IGNORE, 0.0).is_err());
    // Targets not u32.
    assert!(ops::cross_entropy(&x, &tensor(&[0.0, 1.0, 2.0, 3.0], &[4]), IGNORE, 0.0).is_err());
    // Logits not [N, V].
    assert!(ops::cross_entropy(&tensor(&logits(28, 6), &[28]), &ok, IGNORE, 0.0).is_err());
    assert!(ops::cross_entropy(&tensor(&logits(28, 7), &[2, 2, 7]), &ok, IGNORE, 0.0).is_err());
    // Smoothing outside [0, 1].
    assert!(ops::cross_entropy(&x, &ok, IGNORE, 1.5).is_err());
    assert!(ops::cross_entropy(&x, &ok, IGNORE, f32::NAN).is_err());
    let msg = ops::cross_entropy(&x, &u32_tensor(&[0, 1, 2]), IGNORE, 0.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[4]"),
        "the error should name the expected shape: {msg}"
    );
}
