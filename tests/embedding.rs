//! Embedding gather vs the CPU reference, and its deterministic scatter-add backward:
//! repeated ids accumulate, out-of-range ids read nothing, rows are summed in position order.
mod common;
use common::*;
use wgformer::reference::embedding as reference;
use wgformer::{ops, Tensor};

fn ids_tensor(ids: &[u32], shape: &[usize]) -> Tensor {
    Tensor::from_u32(&gpu(), ids, shape).unwrap()
}

/// Deterministic ids in 0..vocab with plenty of repeats.
fn some_ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    wgformer::rng::uniform_vec(n, 0.0, vocab as f32, seed)
        .iter()
        .map(|&u| (u as u32).min(vocab as u32 - 1))
        .collect()
}

#[test]
fn embedding_forward_and_backward_match_reference_on_odd_shapes() {
    // (vocab, dim, ids shape); 300 and 520 ids span several 256-id chunks of the sort.
    let cases: [(usize, usize, &[usize]); 5] = [
        (1, 1, &[1]),
        (7, 33, &[5]),
        (33, 65, &[2, 7]),
        (65, 7, &[3, 100]),
        (5, 3, &[4, 130]),
    ];
    for (i, &(vocab, dim, ids_shape)) in cases.iter().enumerate() {
        let seed = 10 * i as u64;
        let n: usize = ids_shape.iter().product();
        let ids = some_ids(n, vocab, seed);
        let tv = values(vocab * dim, seed + 1);
        let table = leaf(&tv, &[vocab, dim]);
        let y = ops::embedding(&table, &ids_tensor(&ids, ids_shape)).unwrap();
        let mut out_shape = ids_shape.to_vec();
        out_shape.push(dim);
        assert_eq!(y.shape(), &out_shape[..]);
        let what = format!("vocab {vocab} dim {dim} ids {ids_shape:?}");
        assert_close(
            &format!("{what} forward"),
            &y.to_vec().unwrap(),
            &reference::embedding(&f64s(&tv), &ids, dim),
            0.0,
        );
        let wv = values(n * dim, seed + 2);
        y.backward_with(tensor(&wv, &out_shape)).unwrap();
        let dwant = reference::embedding_backward(&ids, &f64s(&wv), vocab, dim);
        assert_close(&format!("{what} backward"), &grad_of(&table), &dwant, 1e-6);
    }
}

#[test]
fn repeated_ids_accumulate_and_unused_rows_get_zero_gradient() {
    let (vocab, dim) = (6, 3);
    let ids = [4u32, 1, 4, 4, 0, 1];
    let table = leaf(&values(vocab * dim, 1), &[vocab, dim]);
    let y = ops::embedding(&table, &ids_tensor(&ids, &[6])).unwrap();
    y.backward_with(Tensor::ones(&gpu(), &[6, dim]).unwrap())
        .unwrap();
    let counts = [1.0f32, 2.0, 0.0, 0.0, 3.0, 0.0];
    let want: Vec<f32> = counts.iter().flat_map(|&c| [c; 3]).collect();
    assert_eq!(grad_of(&table), want);
}

#[test]
fn each_gradient_row_is_summed_in_position_order_on_every_run() {
    // 700 ids over 3 rows: long runs that cross the sort's chunks. The GPU adds each row's
    // gradients in increasing position, so it equals that f32 sum bit for bit, every time.
    let (vocab, dim, n) = (3, 5, 700);
    let ids = some_ids(n, vocab, 3);
    let wv = values(n * dim, 4);
    let mut want = vec![0.0f32; vocab * dim];
    for (r, &id) in ids.iter().enumerate() {
        for d in 0..dim {
            want[id as usize * dim + d] += wv[r * dim + d];
        }
    }
    for _ in 0..2 {
        let table = leaf(&values(vocab * dim, 5), &[vocab, dim]);
        let y = ops::embedding(&table, &ids_tensor(&ids, &[n])).unwrap();
        y.backward_with(tensor(&wv, &[n, dim])).unwrap();
        assert_eq!(grad_of(&table), want);
    }
}

#[test]
fn embedding_gradient_matches_finite_differences() {
    let (vocab, dim) = (7, 5);
    let ids = [3u32, 0, 6, 3, 3, 1, 0, 6, 2];
    let tv = values(vocab * dim, 6);
    let wv = values(ids.len() * dim, 7);
    let table = leaf(&tv, &[vocab, dim]);
    let y = ops::embedding(&table, &ids_tensor(&ids, &[3, 3])).unwrap();
    y.backward_with(tensor(&wv, &[3, 3, dim])).unwrap();
    assert_matches_finite_differences(
        "embedding fd",
        &grad_of(&table),
        &f64s(&tv),
        &f64s(&wv),
        |t| reference::embedding(t, &ids, dim),
        1e-6,
    );
}

#[test]
fn ids_out_of_range_give_zero_rows_and_no_gradient() {
    let (vocab, dim) = (4, 33);
    let ids = [2u32, 4, 1, u32::MAX, 2, 1000];
    let tv = values(vocab * dim, 8);
    // Garbage left in the pool where the output may land must not survive.
    drop(Tensor::full(&gpu(), &[6, dim], f32::NAN).unwrap());
    let table = leaf(&tv, &[vocab, dim]);
    let y = ops::embedding(&table, &ids_tensor(&ids, &[6])).unwrap();
    let got = y.to_vec().unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let row = &got[r * dim..(r + 1) * dim];
        if (id as usize) < vocab {
            assert_eq!(
                row,
                &tv[id as usize * dim..(id as usize + 1) * dim],
                "row {r}"
            );
        } else {
            assert!(
                row.iter().all(|&v| v == 0.0),
                "row {r} (id {id}) is not zero: {row:?}"
            );
        }
    }
    let wv = values(ids.len() * dim, 9);
    y.backward_with(tensor(&wv, &[6, dim])).unwrap();
    let in_range: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|&id| (id as usize) < vocab)
        .collect();
    let w_in_range: Vec<f64> = ids
        .iter()
        .enumerate()
        .filter(|(_, &id)| (id as usize) < vocab)
        .flat_map(|(r, _)| f64s(&wv[r * dim..(r + 1) * dim]))
        .collect();
    let dwant = reference::embedding_backward(&in_range, &w_in_range, vocab, dim);
    assert_close("embedding backward", &grad_of(&table), &dwant, 1e-6);
}

#[test]
fn wrong_dtypes_and_ranks_are_errors() {
    let table = tensor(&values(12, 10), &[4, 3]);
    let ids = ids_tensor(&[0, 1], &[2]);
    assert!(
        ops::embedding(&table, &tensor(&[0.0, 1.0], &[2])).is_err(),
        "f32 ids"
    );
    assert!(
        ops::embedding(&table.reshape(&[12]).unwrap(), &ids).is_err(),
        "rank-1 table"
    );
    assert!(
        ops::embedding(&table.reshape(&[2, 2, 3]).unwrap(), &ids).is_err(),
        "rank-3 table"
    );
    assert!(
        ops::embedding(&ids_tensor(&[0; 12], &[4, 3]), &ids).is_err(),
        "u32 table"
    );
}
