//! Sum / mean over an axis vs the CPU reference, forward and backward.
mod common;
use common::*;
use wgformer::ops;
use wgformer::reference::reduce as reference;

#[test]
fn sum_and_mean_over_each_axis_match_reference_forward_and_backward() {
    // The second shape's middle axis is long next to its few outputs: summed in chunks of
    // rows first (the last one short), then over the chunks.
    for shape in [[3usize, 7, 33], [2, 301, 5]] {
        check_each_axis(shape);
    }
}

fn check_each_axis(shape: [usize; 3]) {
    let n: usize = shape.iter().product();
    let xv = values(n, 11);
    for axis in 0..3 {
        let mut out_shape = shape.to_vec();
        out_shape.remove(axis);
        let wv = values(out_shape.iter().product(), 12);
        for mean in [false, true] {
            let x = leaf(&xv, &shape);
            let y = if mean {
                ops::mean_axis(&x, axis)
            } else {
                ops::sum_axis(&x, axis)
            }
            .unwrap();
            assert_eq!(y.shape(), &out_shape[..]);
            let (want, dwant) = if mean {
                (
                    reference::mean_axis(&f64s(&xv), &shape, axis),
                    reference::mean_axis_backward(&f64s(&wv), &shape, axis),
                )
            } else {
                (
                    reference::sum_axis(&f64s(&xv), &shape, axis),
                    reference::sum_axis_backward(&f64s(&wv), &shape, axis),
                )
            };
            assert_close(
                &format!("forward {shape:?} axis {axis} mean {mean}"),
                &y.to_vec().unwrap(),
                &want,
                1e-5,
            );
            y.backward_with(tensor(&wv, &out_shape)).unwrap();
            assert_close(
                &format!("backward {shape:?} axis {axis} mean {mean}"),
                &grad_of(&x),
                &dwant,
                1e-6,
            );
        }
    }
}

#[test]
fn sum_axis_gradient_matches_finite_differences() {
    let shape = [5usize, 9];
    let xv = values(45, 13);
    let wv = values(9, 14);
    let x = leaf(&xv, &shape);
    ops::sum_axis(&x, 0)
        .unwrap()
        .backward_with(tensor(&wv, &[9]))
        .unwrap();
    assert_matches_finite_differences(
        "sum fd",
        &grad_of(&x),
        &f64s(&xv),
        &f64s(&wv),
        |x| reference::sum_axis(x, &shape, 0),
        1e-4,
    );
}

#[test]
fn axis_out_of_range_is_an_error() {
    let x = tensor(&values(6, 1), &[2, 3]);
    assert!(ops::sum_axis(&x, 2).is_err());
    assert!(ops::sum_leading(&x, 4).is_err());
}
