//! ops::to_half / ops::from_half against the reference (odd lengths, values past the f16
//! range, subnormals), and what mixed precision builds on them: with the policy's `save_half`
//! the backwards keep their activations as f16 copies (a Linear's weight gradient then reads
//! its input rounded to f16, the GELU backward its input rounded), which one copy serves
//! when several backwards keep the same tensor.
mod common;
use common::*;
use wgformer::gpu::KernelPolicy;
use wgformer::ops;
use wgformer::reference::elementwise::gelu_backward;
use wgformer::reference::half_copy::half_copy;
use wgformer::tensor::DType;
use wgformer::{Error, Gpu, Tensor};

/// One f16 step at `v`'s magnitude: any rounding mode lands within it.
fn half_ulp(v: f64) -> f64 {
    let v = v.abs().max(6.1e-5); // the smallest normal half; below it the step is fixed
    2f64.powi(v.log2().floor() as i32 - 10)
}

#[test]
fn half_copies_read_back_as_the_reference_rounds() {
    for (n, seed) in [(1, 1), (2, 2), (7, 3), (1001, 4)] {
        let mut xv: Vec<f32> = values(n, seed).iter().map(|v| v * 300.0).collect();
        if n > 4 {
            // Past the f16 range (clamped to +-65504) and below its normal range.
            xv[..4].copy_from_slice(&[1e6, -7e4, 3e-6, -1e-7]);
        }
        let x = tensor(&xv, &[n]);
        let h = ops::to_half(&x).unwrap();
        assert_eq!((h.dtype(), h.shape()), (DType::F16, &[n][..]));
        assert_eq!(h.storage().len(), n.div_ceil(2), "two halves per word");
        let back = ops::from_half(&h).unwrap().to_vec().unwrap();
        let want = half_copy(&f64s(&xv));
        let mut exact = 0;
        for (i, (&g, &w)) in back.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= half_ulp(w),
                "n = {n}, value {i}: {} read back as {g}, the nearest half is {w}",
                xv[i]
            );
            exact += (g as f64 == w) as usize;
        }
        println!("n = {n}: {exact} of {n} read back exactly as the nearest half");
    }
}

#[test]
fn half_copies_refuse_the_wrong_dtype() {
    let ids = Tensor::from_u32(&gpu(), &[1, 2, 3], &[3]).unwrap();
    assert!(matches!(ops::to_half(&ids), Err(Error::Shape { .. })));
    let x = tensor(&[1.0, 2.0], &[2]);
    assert!(matches!(ops::from_half(&x), Err(Error::Shape { .. })));
    let h = ops::to_half(&x).unwrap();
    assert!(
        h.to_vec().is_err(),
        "an f16 tensor is read through from_half"
    );
}

/// A device of the test's own whose backwards keep f16 copies (matmuls stay f32).
fn saving_half() -> Gpu {
    device_with(KernelPolicy {
        save_half: true,
        ..KernelPolicy::default()
    })
}

#[test]
fn kept_activations_are_their_f16_copies() {
    let gpu = saving_half();
    let _on = use_device(&gpu);
    let (rows, k, n) = (9, 12, 5);
    let (xv, wv, dyv) = (
        values(rows * k, 21)
            .iter()
            .map(|v| v * 3.0)
            .collect::<Vec<_>>(),
        values(n * k, 22),
        values(rows * n, 23),
    );
    let x0 = leaf(&xv, &[rows, k]);
    // An activation (made by a recorded op) is kept as f16; the leaf x0 would be kept whole.
    let x = ops::scale(&x0, 1.0).unwrap();
    let w = leaf(&wv, &[n, k]);
    // Three Linears keep the same x (as q, k and v projections do): one copy serves them.
    let before = gpu.counters().dispatches;
    let ys: Vec<Tensor> = (0..3).map(|_| ops::linear(&x, &w, None).unwrap()).collect();
    let to_half_dispatches = gpu.counters().dispatches - before - 3;
    assert_eq!(
        to_half_dispatches, 1,
        "one f16 copy of x for three backwards"
    );
    let sum = ops::add(&ops::add(&ys[0], &ys[1]).unwrap(), &ys[2]).unwrap();
    sum.backward_with(tensor(&dyv, &[rows, n])).unwrap();
    let x_half = half_copy(&f64s(&xv));
    let (dx, dw) = linear_backward(&x_half, &f64s(&wv), &f64s(&dyv), rows, k, n);
    let triple = |v: Vec<f64>| v.into_iter().map(|g| 3.0 * g).collect::<Vec<_>>();
    // dW reads the f16 copy of x; dx reads only W (f32), so it is exact.
    assert_close("dW from f16 x", &grad_of(&w), &triple(dw), 1e-5);
    assert_close("dx", &grad_of(&x0), &triple(dx), 1e-5);
    let (_, dw_full) = linear_backward(&f64s(&xv), &f64s(&wv), &f64s(&dyv), rows, k, n);
    let gap = grad_of(&w)
        .iter()
        .zip(triple(dw_full))
        .map(|(&g, w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(
        gap > 1e-5,
        "dW matched the f32 input: x was not kept as f16"
    );

    // GELU's backward reads its input rounded to f16 too.
    let a0 = leaf(&xv, &[rows * k]);
    let a = ops::scale(&a0, 1.0).unwrap();
    let g = ops::gelu(&a).unwrap();
    let dgv = values(rows * k, 24);
    g.backward_with(tensor(&dgv, &[rows * k])).unwrap();
    let want = gelu_backward(&x_half, &f64s(&dgv));
    assert_close("gelu dx from f16 x", &grad_of(&a0), &want, 1e-5);
}
