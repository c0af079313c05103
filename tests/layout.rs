//! permute / transpose, concat and slice vs the CPU reference, forward and backward, plus
//! round trips, u32 data and the errors for shapes that do not fit.
mod common;
use common::*;
use wgformer::reference::layout as reference;
use wgformer::{ops, Tensor};

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Every permutation of 0..n.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..n {
            let mut q = p.clone();
            q.insert(at, n - 1);
            all.push(q);
        }
    }
    all
}

/// permute on the GPU vs the reference, forward and (via sum(out * w)) backward.
fn check_permute(shape: &[usize], perm: &[usize], seed: u64) {
    let n = numel(shape);
    let xv = values(n, seed);
    let wv = values(n, seed + 1);
    let x = leaf(&xv, shape);
    let y = ops::permute(&x, perm).unwrap();
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    assert_eq!(
        y.shape(),
        &out_shape[..],
        "shape of {shape:?} permuted by {perm:?}"
    );
    let want = reference::permute(&f64s(&xv), shape, perm);
    assert_close(
        &format!("permute {shape:?} by {perm:?}"),
        &y.to_vec().unwrap(),
        &want,
        0.0,
    );
    y.backward_with(tensor(&wv, &out_shape)).unwrap();
    let dwant = reference::permute_backward(&f64s(&wv), shape, perm);
    assert_close(
        &format!("permute backward {shape:?} by {perm:?}"),
        &grad_of(&x),
        &dwant,
        0.0,
    );
}

#[test]
fn permute_matches_reference_for_every_permutation_of_rank_3_and_4_on_odd_shapes() {
    for (i, perm) in permutations(3).iter().enumerate() {
        check_permute(&[7, 33, 5], perm, i as u64);
        check_permute(&[1, 65, 3], perm, 100 + i as u64);
    }
    for (i, perm) in permutations(4).iter().enumerate() {
        check_permute(&[2, 7, 3, 5], perm, 200 + i as u64);
        check_permute(&[3, 1, 7, 1], perm, 300 + i as u64);
        // Innermost axis of whole vec4: the permutations that keep it last use `permute4`.
        check_permute(&[2, 7, 3, 8], perm, 400 + i as u64);
    }
}

#[test]
fn permute_handles_rank_1_to_6_and_higher_ranks_that_collapse() {
    check_permute(&[33], &[0], 1);
    check_permute(&[7, 33], &[1, 0], 2);
    check_permute(&[2, 3, 1, 4, 2, 3], &[3, 0, 5, 2, 1, 4], 3);
    check_permute(&[2, 3, 2, 3, 2, 3], &[5, 3, 1, 4, 2, 0], 4);
    // Rank 8, but size-1 axes vanish and axes 4, 5 stay adjacent: 5 axes to index.
    check_permute(&[2, 1, 3, 2, 5, 2, 1, 3], &[7, 4, 5, 0, 1, 2, 6, 3], 5);
}

#[test]
fn head_split_and_merge_round_trip_exactly() {
    // [B, T, H, Dh] -> [B, H, T, Dh] -> [B, T, H, Dh], as multi-head attention uses them.
    // Dh = 5 moves single values, Dh = 8 whole vec4 (`permute4`).
    for shape in [[2, 7, 3, 5], [2, 7, 3, 8]] {
        let xv = values(numel(&shape), 7);
        let x = tensor(&xv, &shape);
        let heads = ops::permute(&x, &[0, 2, 1, 3]).unwrap();
        assert_eq!(heads.shape(), &[2, 3, 7, shape[3]]);
        let back = ops::permute(&heads, &[0, 2, 1, 3]).unwrap();
        assert_eq!(back.shape(), &shape);
        assert_eq!(back.to_vec().unwrap(), xv);
    }
    // A rank-5 permutation and its inverse.
    let shape = [3, 2, 5, 1, 7];
    let perm = [4, 2, 0, 3, 1];
    let mut inverse = [0; 5];
    for (i, &a) in perm.iter().enumerate() {
        inverse[a] = i;
    }
    let xv = values(numel(&shape), 8);
    let y = ops::permute(&tensor(&xv, &shape), &perm).unwrap();
    assert_eq!(ops::permute(&y, &inverse).unwrap().to_vec().unwrap(), xv);
}

#[test]
fn permute_gradient_matches_finite_differences() {
    let shape = [3, 5, 7];
    let perm = [2, 0, 1];
    let xv = values(105, 9);
    let wv = values(105, 10);
    let x = leaf(&xv, &shape);
    let y = ops::permute(&x, &perm).unwrap();
    y.backward_with(tensor(&wv, y.shape())).unwrap();
    assert_matches_finite_differences(
        "permute fd",
        &grad_of(&x),
        &f64s(&xv),
        &f64s(&wv),
        |x| reference::permute(x, &shape, &perm),
        1e-6,
    );
}

#[test]
fn transpose_swaps_two_axes() {
    let shape = [7, 1, 33];
    let xv = values(numel(&shape), 11);
    let x = leaf(&xv, &shape);
    let y = ops::transpose(&x, 2, 0).unwrap();
    assert_eq!(y.shape(), &[33, 1, 7]);
    assert_close(
        "transpose",
        &y.to_vec().unwrap(),
        &reference::permute(&f64s(&xv), &shape, &[2, 1, 0]),
        0.0,
    );
    let wv = values(y.numel(), 12);
    y.backward_with(tensor(&wv, y.shape())).unwrap();
    assert_close(
        "transpose backward",
        &grad_of(&x),
        &reference::permute_backward(&f64s(&wv), &shape, &[2, 1, 0]),
        0.0,
    );
    // Swapping an axis with itself changes nothing.
    assert_eq!(ops::transpose(&x, 1, 1).unwrap().to_vec().unwrap(), xv);
}

/// Two parts take the one-dispatch kernel (`concat_pair`), three the per-part one.
#[test]
fn concat_of_two_and_three_parts_along_each_axis_matches_reference_forward_and_backward() {
    // Base [3, 5, 8]: the joins along axes 0 and 1 move whole vec4 (the wide kernels).
    let cases = (0..3).flat_map(|a| {
        [[3usize, 5, 7], [3, 5, 8]]
            .into_iter()
            .flat_map(move |base| [(base, a, &[1usize, 7, 33][..]), (base, a, &[7, 33][..])])
    });
    for (base, axis, lens) in cases {
        let shapes: Vec<Vec<usize>> = lens
            .iter()
            .map(|&l| {
                let mut s = base.to_vec();
                s[axis] = l;
                s
            })
            .collect();
        let data: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| values(numel(s), 20 + i as u64))
            .collect();
        let parts: Vec<Tensor> = data.iter().zip(&shapes).map(|(d, s)| leaf(d, s)).collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let y = ops::concat(&refs, axis).unwrap();
        let mut out_shape = base.to_vec();
        out_shape[axis] = lens.iter().sum();
        assert_eq!(y.shape(), &out_shape[..]);
        let data64: Vec<Vec<f64>> = data.iter().map(|d| f64s(d)).collect();
        let slices: Vec<&[f64]> = data64.iter().map(|d| &d[..]).collect();
        let want = reference::concat(&slices, &shapes, axis);
        assert_close(
            &format!("concat axis {axis}"),
            &y.to_vec().unwrap(),
            &want,
            0.0,
        );

        let wv = values(y.numel(), 30);
        y.backward_with(tensor(&wv, &out_shape)).unwrap();
        let dwant = reference::concat_backward(&f64s(&wv), &shapes, axis);
        for (i, part) in parts.iter().enumerate() {
            assert_close(
                &format!("concat backward axis {axis} part {i}"),
                &grad_of(part),
                &dwant[i],
                0.0,
            );
        }
    }
}

#[test]
fn concat_gradient_reaches_only_parts_that_want_one_and_matches_finite_differences() {
    let shapes = vec![vec![2, 3, 5], vec![2, 1, 5]];
    let av = values(30, 40);
    let bv = values(10, 41);
    let wv = values(40, 42);
    let a = leaf(&av, &shapes[0]);
    let b = tensor(&bv, &shapes[1]);
    let y = ops::concat(&[&a, &b], 1).unwrap();
    y.backward_with(tensor(&wv, &[2, 4, 5])).unwrap();
    assert!(b.grad().is_none());
    let b64 = f64s(&bv);
    assert_matches_finite_differences(
        "concat fd",
        &grad_of(&a),
        &f64s(&av),
        &f64s(&wv),
        |a| reference::concat(&[a, &b64], &shapes, 1),
        1e-6,
    );
}

/// A beam-search cache [B, H, T, D] re-ordered (rows repeated and dropped) and grown by a step,
/// along axes 1 to 3, with an odd last axis (one word per invocation) and a vec4 one.
#[test]
fn gather_concat_matches_reference_forward_and_backward() {
    let rows = [2usize, 2, 0, 3, 2];
    let rows_u32: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    for (x_shape, axis) in (1..4).flat_map(|a| [([4usize, 3, 6, 5], a), ([4, 3, 6, 8], a)]) {
        let mut y_shape = x_shape.to_vec();
        y_shape[0] = rows.len();
        y_shape[axis] = 2;
        let (xv, yv) = (values(numel(&x_shape), 70), values(numel(&y_shape), 71));
        let (x, y) = (leaf(&xv, &x_shape), leaf(&yv, &y_shape));
        let out = ops::gather_concat(&x, &rows_u32, &y, axis).unwrap();
        let mut out_shape = y_shape.clone();
        out_shape[axis] += x_shape[axis];
        assert_eq!(out.shape(), &out_shape[..]);
        let want =
            reference::gather_concat(&f64s(&xv), &x_shape, &rows, &f64s(&yv), &y_shape, axis);
        let case = format!("gather_concat {x_shape:?} axis {axis}");
        assert_close(&case, &out.to_vec().unwrap(), &want, 0.0);

        let wv = values(out.numel(), 72);
        out.backward_with(tensor(&wv, &out_shape)).unwrap();
        let (dx, dy) =
            reference::gather_concat_backward(&f64s(&wv), &x_shape, &rows, &y_shape, axis);
        assert_close(&format!("{case} d x"), &grad_of(&x), &dx, 1e-6);
        assert_close(&format!("{case} d y"), &grad_of(&y), &dy, 0.0);
    }
}

#[test]
fn gather_concat_gradient_matches_finite_differences() {
    let (x_shape, y_shape, rows) = ([3usize, 2, 4, 3], [4usize, 2, 1, 3], [1usize, 1, 2, 0]);
    let rows_u32: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let (xv, yv) = (values(72, 73), values(24, 74));
    let x = leaf(&xv, &x_shape);
    let out = ops::gather_concat(&x, &rows_u32, &tensor(&yv, &y_shape), 2).unwrap();
    let wv = values(out.numel(), 75);
    out.backward_with(tensor(&wv, out.shape())).unwrap();
    let y64 = f64s(&yv);
    assert_matches_finite_differences(
        "gather_concat fd",
        &grad_of(&x),
        &f64s(&xv),
        &f64s(&wv),
        |x| reference::gather_concat(x, &x_shape, &rows, &y64, &y_shape, 2),
        1e-6,
    );
}

#[test]
fn slice_along_each_axis_matches_reference_forward_and_backward() {
    // [.., 8]: the slices along axes 0 and 1 move whole vec4 (the wide kernels).
    for (shape, axis) in (0..3).flat_map(|a| [([7usize, 33, 5], a), ([7, 33, 8], a)]) {
        let xv = values(numel(&shape), 50);
        let full = shape[axis];
        for (start, len) in [(0, full), (0, 1), (full - 1, 1), (1, full - 2), (2, 0)] {
            let x = leaf(&xv, &shape);
            let y = ops::slice(&x, axis, start, len).unwrap();
            let mut out_shape = shape.to_vec();
            out_shape[axis] = len;
            assert_eq!(y.shape(), &out_shape[..]);
            let what = format!("slice axis {axis} {start}+{len}");
            assert_close(
                &what,
                &y.to_vec().unwrap(),
                &reference::slice(&f64s(&xv), &shape, axis, start, len),
                0.0,
            );
            let wv = values(y.numel(), 51);
            y.backward_with(tensor(&wv, &out_shape)).unwrap();
            let dwant = reference::slice_backward(&f64s(&wv), &shape, axis, start, len);
            assert_close(&format!("{what} backward"), &grad_of(&x), &dwant, 0.0);
        }
    }
}

#[test]
fn slice_backward_overwrites_stale_memory_outside_the_window_with_zeros() {
    // The gradient buffer comes from the pool; fill some with garbage and free it first.
    let shape = [65usize, 7];
    drop(Tensor::full(&gpu(), &shape, f32::NAN).unwrap());
    let xv = values(numel(&shape), 52);
    let x = leaf(&xv, &shape);
    let y = ops::slice(&x, 0, 30, 4).unwrap();
    let wv = values(28, 53);
    y.backward_with(tensor(&wv, &[4, 7])).unwrap();
    assert_close(
        "slice backward",
        &grad_of(&x),
        &reference::slice_backward(&f64s(&wv), &shape, 0, 30, 4),
        0.0,
    );
}

#[test]
fn slice_gradient_matches_finite_differences() {
    let shape = [3usize, 7, 2];
    let xv = values(42, 54);
    let wv = values(3 * 4 * 2, 55);
    let x = leaf(&xv, &shape);
    let y = ops::slice(&x, 1, 2, 4).unwrap();
    y.backward_with(tensor(&wv, y.shape())).unwrap();
    assert_matches_finite_differences(
        "slice fd",
        &grad_of(&x),
        &f64s(&xv),
        &f64s(&wv),
        |x| reference::slice(x, &shape, 1, 2, 4),
        1e-6,
    );
}

#[test]
fn layout_ops_move_u32_ids_bit_exactly() {
    let g = gpu();
    // Many of these words are NaN patterns as f32 (0x7f800001 a signalling one): a float
    // load and store could change them, a word copy must not.
    let ids: Vec<u32> = (0..35u32)
        .map(|i| i.wrapping_mul(0x0101_0101).wrapping_add(0x7f80_0001))
        .collect();
    let x = Tensor::from_u32(&g, &ids, &[5, 7]).unwrap();
    let t = ops::transpose(&x, 0, 1).unwrap();
    let want: Vec<u32> = (0..35).map(|i| ids[(i % 5) * 7 + i / 5]).collect();
    assert_eq!(t.to_vec_u32().unwrap(), want);
    let s = ops::slice(&x, 1, 2, 3).unwrap();
    let want: Vec<u32> = (0..5)
        .flat_map(|r| ids[r * 7 + 2..r * 7 + 5].to_vec())
        .collect();
    assert_eq!(s.to_vec_u32().unwrap(), want);
    let c = ops::concat(&[&x, &x], 0).unwrap();
    assert_eq!(c.to_vec_u32().unwrap(), [ids.clone(), ids].concat());
}

#[test]
fn shapes_that_do_not_fit_are_errors() {
    let x = tensor(&values(105, 60), &[3, 5, 7]);
    // permute / transpose
    assert!(ops::permute(&x, &[0, 1]).is_err(), "too few axes");
    assert!(ops::permute(&x, &[0, 1, 2, 3]).is_err(), "too many axes");
    assert!(ops::permute(&x, &[0, 1, 1]).is_err(), "repeated axis");
    assert!(ops::permute(&x, &[0, 1, 3]).is_err(), "axis out of range");
    assert!(ops::transpose(&x, 0, 3).is_err());
    let wide = tensor(&values(432, 61), &[2, 3, 2, 3, 2, 3, 2]);
    assert!(
        ops::permute(&wide, &[6, 5, 4, 3, 2, 1, 0]).is_err(),
        "7 axes that cannot merge"
    );
    // slice
    assert!(ops::slice(&x, 3, 0, 1).is_err(), "axis out of range");
    assert!(ops::slice(&x, 1, 3, 3).is_err(), "window past the end");
    assert!(ops::slice(&x, 1, 6, 0).is_err(), "start past the end");
    assert!(
        ops::slice(&x, 1, 1, usize::MAX).is_err(),
        "start + len overflows"
    );
    // concat
    let y = tensor(&values(30, 62), &[3, 2, 5]);
    assert!(
        ops::concat(&[&x, &y], 1).is_err(),
        "mismatched off-axis length"
    );
    assert!(
        ops::concat(&[&x, &y.reshape(&[30]).unwrap()], 0).is_err(),
        "mismatched rank"
    );
    assert!(ops::concat(&[&x, &x], 3).is_err(), "axis out of range");
    assert!(ops::concat(&[], 0).is_err(), "no parts");
    let ids = Tensor::from_u32(&gpu(), &[0; 105], &[3, 5, 7]).unwrap();
    assert!(ops::concat(&[&x, &ids], 0).is_err(), "mismatched dtype");
    // gather_concat
    let step = tensor(&values(20, 63), &[2, 5, 2]);
    assert!(ops::gather_concat(&x, &[0, 2], &step, 2).is_ok());
    assert!(
        ops::gather_concat(&x, &[0, 3], &step, 2).is_err(),
        "row past x's rows"
    );
    assert!(
        ops::gather_concat(&x, &[0], &step, 2).is_err(),
        "rows do not match y"
    );
    assert!(ops::gather_concat(&x, &[0, 2], &step, 0).is_err(), "axis 0");
    assert!(
        ops::gather_concat(&x, &[0, 2], &step, 1).is_err(),
        "mismatched off-axis length"
    );
}
