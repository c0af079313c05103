//! Sum / mean over an axis vs the CPU reference, forward and backward.
mod common;
use common::*;
use wgformer::gpu::RowWidth;
use wgformer::ops;
use wgformer::reference::reduce as reference;

#[test]
fn sum_and_mean_over_each_axis_match_reference_forward_and_backward() {
    // The second shape's middle axis is long next to its few outputs: summed in chunks of
    // rows first (the last one short), then over the chunks. The last two have 8 or more
    // outputs side by side (9 and 37, not multiples of 8) over long axes: one launch, a
    // workgroup per 8 outputs.
    // Both row widths: the wide one (GPUs) sums those in one launch.
    for (_, device) in row_width_devices() {
        let _on = use_device(&device);
        for shape in [[3usize, 7, 33], [2, 301, 5], [1, 300, 9], [2, 301, 37]] {
            check_each_axis(shape);
        }
    }
}

/// A bias gradient's sum (many rows, a few hundred outputs) is one dispatch with the wide row
/// kernels (GPUs), two with the narrow ones (CPU adapters: partial sums, then their sum).
#[test]
fn a_bias_gradient_sum_is_one_dispatch_on_gpus() {
    let devices = row_width_devices();
    for (width, launches) in [(RowWidth::Wide, 1), (RowWidth::Narrow, 2)] {
        let device = of_width(&devices, width);
        let _on = use_device(device);
        let (rows, n) = (2048, 260);
        let xv = values(rows * n, 31);
        let x = tensor(&xv, &[rows, n]);
        let before = device.counters();
        let y = ops::sum_axis(&x, 0).unwrap();
        assert_eq!(
            (device.counters() - before).dispatches,
            launches,
            "{width:?}"
        );
        let want = reference::sum_axis(&f64s(&xv), &[rows, n], 0);
        assert_close("bias sum", &y.to_vec().unwrap(), &want, 1e-4);
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
