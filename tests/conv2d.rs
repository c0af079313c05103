//! conv2d vs the CPU reference: forward on odd shapes (strides 1 and 2, padding 0 and 1, odd
//! and even kernels, sizes that are no multiple of any tile), backward vs the reference
//! gradients and vs finite differences, and shape errors.
mod common;
use common::*;
use wgformer::ops::{self, Conv2dConfig};
use wgformer::reference::conv2d::{self as reference, Conv2dShape};
use wgformer::Tensor;

struct Case {
    s: Conv2dShape,
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    /// x [batch, c_in, h, w], weight [c_out, c_in, k.0, k.1], stride and padding per dim.
    fn new(
        [batch, c_in, h, w]: [usize; 4],
        [c_out, kh, kw]: [usize; 3],
        stride: [usize; 2],
        padding: [usize; 2],
        seed: u64,
    ) -> Case {
        let s = Conv2dShape {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride,
            padding,
        };
        Case {
            s,
            x: values(batch * c_in * h * w, seed),
            weight: values(c_out * c_in * kh * kw, seed + 1),
            bias: values(c_out, seed + 2),
        }
    }

    fn cfg(&self) -> Conv2dConfig {
        Conv2dConfig {
            stride: self.s.stride,
            padding: self.s.padding,
        }
    }

    fn x_shape(&self) -> [usize; 4] {
        [self.s.batch, self.s.c_in, self.s.h, self.s.w]
    }

    fn weight_shape(&self) -> [usize; 4] {
        [self.s.c_out, self.s.c_in, self.s.kh, self.s.kw]
    }

    fn out_shape(&self) -> [usize; 4] {
        let [oh, ow] = self.s.output_hw();
        [self.s.batch, self.s.c_out, oh, ow]
    }

    fn name(&self) -> String {
        format!(
            "x {:?} weight {:?} stride {:?} padding {:?}",
            self.x_shape(),
            self.weight_shape(),
            self.s.stride,
            self.s.padding
        )
    }
}

/// Strides 1 and 2 (per dim), padding 0 and 1, C_out 1 and 5, kernels 3x3, 2x3, 1x1, 4x2, and
/// H / W that are no multiple of 4, 16, 32 or 128.
fn cases() -> Vec<Case> {
    vec![
        Case::new([2, 3, 7, 9], [5, 3, 3], [1, 1], [1, 1], 1),
        Case::new([3, 2, 11, 6], [1, 3, 3], [2, 1], [1, 1], 2),
        Case::new([1, 4, 13, 17], [5, 2, 3], [2, 2], [0, 1], 3),
        Case::new([2, 1, 9, 33], [5, 3, 3], [2, 1], [0, 0], 4),
        Case::new([2, 5, 6, 5], [3, 1, 1], [1, 2], [0, 0], 5),
        Case::new([1, 3, 10, 7], [5, 4, 2], [1, 1], [1, 0], 6),
        // Enough taps and pixels for the matmul's fast tiled kernels.
        Case::new([2, 6, 35, 21], [33, 3, 3], [2, 1], [1, 1], 7),
    ]
}

#[test]
fn conv2d_forward_matches_reference_on_odd_shapes() {
    for c in cases() {
        for with_bias in [true, false] {
            let bias = tensor(&c.bias, &[c.s.c_out]);
            let out = ops::conv2d(
                &tensor(&c.x, &c.x_shape()),
                &tensor(&c.weight, &c.weight_shape()),
                with_bias.then_some(&bias),
                c.cfg(),
            )
            .unwrap();
            assert_eq!(out.shape(), c.out_shape(), "{}", c.name());
            let bias64 = f64s(&c.bias);
            let want = reference::conv2d(
                &f64s(&c.x),
                &f64s(&c.weight),
                with_bias.then_some(&bias64[..]),
                &c.s,
            );
            let what = format!("conv2d forward {} bias {with_bias}", c.name());
            assert_close(&what, &out.to_vec().unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn conv2d_backward_matches_reference_gradients() {
    for (i, c) in cases().into_iter().enumerate() {
        let x = leaf(&c.x, &c.x_shape());
        let weight = leaf(&c.weight, &c.weight_shape());
        let bias = leaf(&c.bias, &[c.s.c_out]);
        let out_shape = c.out_shape();
        let dout = values(out_shape.iter().product(), 100 + i as u64);
        ops::conv2d(&x, &weight, Some(&bias), c.cfg())
            .unwrap()
            .backward_with(tensor(&dout, &out_shape))
            .unwrap();
        let (dx, dw, db) =
            reference::conv2d_backward(&f64s(&c.x), &f64s(&c.weight), &f64s(&dout), &c.s);
        let what = c.name();
        assert_close(&format!("conv2d dx {what}"), &grad_of(&x), &dx, 1e-5);
        assert_close(
            &format!("conv2d dweight {what}"),
            &grad_of(&weight),
            &dw,
            1e-5,
        );
        assert_close(&format!("conv2d dbias {what}"), &grad_of(&bias), &db, 1e-5);
    }
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let c = Case::new([2, 2, 5, 4], [3, 3, 2], [2, 1], [1, 1], 9);
    let (x, weight, bias) = (
        leaf(&c.x, &c.x_shape()),
        leaf(&c.weight, &c.weight_shape()),
        leaf(&c.bias, &[c.s.c_out]),
    );
    let out_shape = c.out_shape();
    let dout = values(out_shape.iter().product(), 10);
    ops::conv2d(&x, &weight, Some(&bias), c.cfg())
        .unwrap()
        .backward_with(tensor(&dout, &out_shape))
        .unwrap();
    let (xf, wf, bf, df) = (f64s(&c.x), f64s(&c.weight), f64s(&c.bias), f64s(&dout));
    let s = c.s;
    assert_matches_finite_differences(
        "conv2d dx fd",
        &grad_of(&x),
        &xf,
        &df,
        |x| reference::conv2d(x, &wf, Some(&bf), &s),
        1e-4,
    );
    assert_matches_finite_differences(
        "conv2d dweight fd",
        &grad_of(&weight),
        &wf,
        &df,
        |w| reference::conv2d(&xf, w, Some(&bf), &s),
        1e-4,
    );
    assert_matches_finite_differences(
        "conv2d dbias fd",
        &grad_of(&bias),
        &bf,
        &df,
        |b| reference::conv2d(&xf, &wf, Some(b), &s),
        1e-4,
    );
}

#[test]
fn conv2d_without_bias_still_gives_input_and_weight_gradients() {
    let c = Case::new([2, 3, 7, 9], [5, 3, 3], [2, 1], [1, 1], 11);
    let (x, weight) = (leaf(&c.x, &c.x_shape()), leaf(&c.weight, &c.weight_shape()));
    let out_shape = c.out_shape();
    let dout = values(out_shape.iter().product(), 12);
    ops::conv2d(&x, &weight, None, c.cfg())
        .unwrap()
        .backward_with(tensor(&dout, &out_shape))
        .unwrap();
    let (dx, dw, _) = reference::conv2d_backward(&f64s(&c.x), &f64s(&c.weight), &f64s(&dout), &c.s);
    assert_close("conv2d dx, no bias", &grad_of(&x), &dx, 1e-5);
    assert_close("conv2d dweight, no bias", &grad_of(&weight), &dw, 1e-5);
}

#[test]
fn conv2d_output_size_follows_the_pytorch_formula() {
    let cfg = Conv2dConfig {
        stride: [2, 1],
        padding: [1, 1],
    };
    assert_eq!(cfg.output_size([300, 80], [3, 3]), [150, 80]);
    assert_eq!(cfg.output_size([150, 80], [3, 3]), [75, 80]);
    assert_eq!(cfg.output_size([7, 4], [4, 2]), [3, 5]);
    assert_eq!(cfg.output_size([1, 1], [5, 5]), [0, 0]);
}

#[test]
fn conv2d_rejects_bad_shapes_and_dtypes() {
    let cfg = Conv2dConfig {
        stride: [1, 1],
        padding: [0, 0],
    };
    let x = tensor(&values(2 * 3 * 5 * 5, 1), &[2, 3, 5, 5]);
    let weight = tensor(&values(4 * 3 * 3 * 3, 2), &[4, 3, 3, 3]);
    let bias = tensor(&values(4, 3), &[4]);
    assert!(ops::conv2d(&x, &weight, Some(&bias), cfg).is_ok());
    let err = |r: wgformer::Result<Tensor>| r.unwrap_err().to_string();

    let wrong_c_in = tensor(&values(4 * 2 * 9, 4), &[4, 2, 3, 3]);
    let msg = err(ops::conv2d(&x, &wrong_c_in, None, cfg));
    assert!(msg.contains("C_in = 3"), "names the expected C_in: {msg}");
    let short_bias = tensor(&values(3, 5), &[3]);
    let msg = err(ops::conv2d(&x, &weight, Some(&short_bias), cfg));
    assert!(
        msg.contains("bias must be [4]"),
        "names the bias shape: {msg}"
    );
    let flat = tensor(&values(150, 6), &[2, 75]);
    assert!(ops::conv2d(&flat, &weight, None, cfg).is_err());
    let too_big = tensor(&values(4 * 3 * 36, 7), &[4, 3, 6, 6]);
    let msg = err(ops::conv2d(&x, &too_big, None, cfg));
    assert!(
        msg.contains("does not fit"),
        "says the kernel does not fit: {msg}"
    );
    let zero_stride = Conv2dConfig {
        stride: [0, 1],
        padding: [0, 0],
    };
    assert!(ops::conv2d(&x, &weight, None, zero_stride).is_err());
    let ids = Tensor::from_u32(&gpu(), &[0; 150], &[2, 3, 5, 5]).unwrap();
    assert!(ops::conv2d(&ids, &weight, None, cfg).is_err());
}

#[test]
fn conv2d_backward_rejects_a_gradient_of_the_wrong_shape() {
    let c = Case::new([1, 2, 5, 5], [3, 3, 3], [1, 1], [1, 1], 13);
    let x = leaf(&c.x, &c.x_shape());
    let out = ops::conv2d(&x, &tensor(&c.weight, &c.weight_shape()), None, c.cfg()).unwrap();
    let wrong = tensor(&values(3 * 25 - 1, 14), &[3 * 25 - 1]);
    let msg = out.backward_with(wrong).unwrap_err().to_string();
    assert!(
        msg.contains("does not match the output [1, 3, 5, 5]"),
        "{msg}"
    );
}

#[test]
fn conv2d_in_chunks_of_the_batch_equals_the_whole_batch_forward_and_backward() {
    // What conv2d does above the binding limit, checked against the unchunked op.
    use wgformer::ops::{conv2d, conv2d_in_chunks, Conv2dConfig};
    let cfg = Conv2dConfig {
        stride: [2, 1],
        padding: [1, 1],
    };
    let (xs, ws, bs) = (
        values(5 * 2 * 9 * 7, 1),
        values(3 * 2 * 3 * 3, 2),
        values(3, 3),
    );
    let run = |chunk: Option<usize>| {
        let x = leaf(&xs, &[5, 2, 9, 7]);
        let w = leaf(&ws, &[3, 2, 3, 3]);
        let b = leaf(&bs, &[3]);
        let y = match chunk {
            Some(n) => conv2d_in_chunks(&x, &w, Some(&b), cfg, n).unwrap(),
            None => conv2d(&x, &w, Some(&b), cfg).unwrap(),
        };
        let shape = y.shape().to_vec();
        let dy = values(y.numel(), 4);
        let out = y.to_vec().unwrap();
        y.backward_with(tensor(&dy, &shape)).unwrap();
        (shape, out, grad_of(&x), grad_of(&w), grad_of(&b))
    };
    let whole = run(None);
    for n in [1, 2, 3, 5, 8] {
        let part = run(Some(n));
        assert_eq!(part.0, whole.0, "shape, chunks of {n}");
        for (name, got, want) in [
            ("y", &part.1, &whole.1),
            ("dx", &part.2, &whole.2),
            ("dw", &part.3, &whole.3),
            ("db", &part.4, &whole.4),
        ] {
            let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
            assert_close(&format!("{name}, chunks of {n}"), got, &want, 1e-5);
        }
    }
    let x = tensor(&xs, &[5, 2, 9, 7]);
    let w = tensor(&ws, &[3, 2, 3, 3]);
    assert!(conv2d_in_chunks(&x, &w, None, cfg, 0).is_err());
}
