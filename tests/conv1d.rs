//! conv1d vs the CPU reference: forward on odd shapes (strides 1 and 2, padding 0 and 1,
//! kernels of 1 to 4 taps, lengths and channel counts that are no multiple of any tile),
//! backward vs the reference gradients and vs finite differences, and shape errors.
mod common;
use common::*;
use wgformer::ops::{self, Conv1dConfig};
use wgformer::reference::conv1d::{self as reference, Conv1dShape};
use wgformer::Tensor;

struct Case {
    s: Conv1dShape,
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Case {
    /// x [batch, t, c_in], weight [c_out, c_in, k].
    fn new(
        [batch, t, c_in]: [usize; 3],
        [c_out, k]: [usize; 2],
        stride: usize,
        padding: usize,
        seed: u64,
    ) -> Case {
        let s = Conv1dShape {
            batch,
            t,
            c_in,
            c_out,
            k,
            stride,
            padding,
        };
        Case {
            s,
            x: values(batch * t * c_in, seed),
            weight: values(c_out * c_in * k, seed + 1),
            bias: values(c_out, seed + 2),
        }
    }

    fn cfg(&self) -> Conv1dConfig {
        Conv1dConfig {
            stride: self.s.stride,
            padding: self.s.padding,
        }
    }

    fn x_shape(&self) -> [usize; 3] {
        [self.s.batch, self.s.t, self.s.c_in]
    }

    fn weight_shape(&self) -> [usize; 3] {
        [self.s.c_out, self.s.c_in, self.s.k]
    }

    fn out_shape(&self) -> [usize; 3] {
        [self.s.batch, self.s.t_out(), self.s.c_out]
    }

    fn name(&self) -> String {
        format!(
            "x {:?} weight {:?} stride {} padding {}",
            self.x_shape(),
            self.weight_shape(),
            self.s.stride,
            self.s.padding
        )
    }
}

/// Whisper's two stem convolutions (k3 p1, strides 1 and 2) on odd lengths, plus other kernel
/// sizes and paddings; enough taps and frames in the last one for the matmul's tiled kernels.
fn cases() -> Vec<Case> {
    vec![
        Case::new([2, 13, 5], [7, 3], 1, 1, 1),
        Case::new([2, 13, 7], [7, 3], 2, 1, 2),
        Case::new([1, 10, 3], [5, 3], 2, 1, 3),
        Case::new([3, 9, 4], [2, 1], 1, 0, 4),
        Case::new([1, 11, 6], [3, 4], 2, 0, 5),
        Case::new([2, 8, 2], [1, 2], 1, 1, 6),
        Case::new([2, 37, 35], [33, 3], 2, 1, 7),
    ]
}

#[test]
fn conv1d_forward_matches_reference_on_odd_shapes() {
    for c in cases() {
        for with_bias in [true, false] {
            let bias = tensor(&c.bias, &[c.s.c_out]);
            let out = ops::conv1d(
                &tensor(&c.x, &c.x_shape()),
                &tensor(&c.weight, &c.weight_shape()),
                with_bias.then_some(&bias),
                c.cfg(),
            )
            .unwrap();
            assert_eq!(out.shape(), c.out_shape(), "{}", c.name());
            let bias64 = f64s(&c.bias);
            let want = reference::conv1d(
                &f64s(&c.x),
                &f64s(&c.weight),
                with_bias.then_some(&bias64[..]),
                &c.s,
            );
            let what = format!("conv1d forward {} bias {with_bias}", c.name());
            assert_close(&what, &out.to_vec().unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn conv1d_backward_matches_reference_gradients() {
    for (i, c) in cases().into_iter().enumerate() {
        let x = leaf(&c.x, &c.x_shape());
        let weight = leaf(&c.weight, &c.weight_shape());
        let bias = leaf(&c.bias, &[c.s.c_out]);
        let out_shape = c.out_shape();
        let dout = values(out_shape.iter().product(), 100 + i as u64);
        ops::conv1d(&x, &weight, Some(&bias), c.cfg())
            .unwrap()
            .backward_with(tensor(&dout, &out_shape))
            .unwrap();
        let (dx, dw, db) =
            reference::conv1d_backward(&f64s(&c.x), &f64s(&c.weight), &f64s(&dout), &c.s);
        let what = c.name();
        assert_close(&format!("conv1d dx {what}"), &grad_of(&x), &dx, 1e-5);
        assert_close(
            &format!("conv1d dweight {what}"),
            &grad_of(&weight),
            &dw,
            1e-5,
        );
        assert_close(&format!("conv1d dbias {what}"), &grad_of(&bias), &db, 1e-5);
    }
}

#[test]
fn conv1d_backward_matches_finite_differences() {
    let c = Case::new([2, 9, 3], [4, 3], 2, 1, 9);
    let (x, weight, bias) = (
        leaf(&c.x, &c.x_shape()),
        leaf(&c.weight, &c.weight_shape()),
        leaf(&c.bias, &[c.s.c_out]),
    );
    let out_shape = c.out_shape();
    let dout = values(out_shape.iter().product(), 10);
    ops::conv1d(&x, &weight, Some(&bias), c.cfg())
        .unwrap()
        .backward_with(tensor(&dout, &out_shape))
        .unwrap();
    let (xf, wf, bf, df) = (f64s(&c.x), f64s(&c.weight), f64s(&c.bias), f64s(&dout));
    let s = c.s;
    let fd = |what, grad: &[f32], at: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>| {
        assert_matches_finite_differences(what, grad, at, &df, f, 1e-4)
    };
    fd("conv1d dx fd", &grad_of(&x), &xf, &|x| {
        reference::conv1d(x, &wf, Some(&bf), &s)
    });
    fd("conv1d dweight fd", &grad_of(&weight), &wf, &|w| {
        reference::conv1d(&xf, w, Some(&bf), &s)
    });
    fd("conv1d dbias fd", &grad_of(&bias), &bf, &|b| {
        reference::conv1d(&xf, &wf, Some(b), &s)
    });
}

#[test]
fn conv1d_output_length_follows_the_pytorch_formula() {
    let whisper_stem = Conv1dConfig {
        stride: 2,
        padding: 1,
    };
    assert_eq!(whisper_stem.output_len(3000, 3), 1500);
    assert_eq!(whisper_stem.output_len(7, 3), 4);
    let plain = Conv1dConfig {
        stride: 1,
        padding: 0,
    };
    assert_eq!(plain.output_len(3, 4), 0);
}

#[test]
fn conv1d_rejects_bad_shapes_and_dtypes() {
    let cfg = Conv1dConfig {
        stride: 1,
        padding: 1,
    };
    let x = tensor(&values(2 * 6 * 3, 1), &[2, 6, 3]);
    let weight = tensor(&values(4 * 3 * 3, 2), &[4, 3, 3]);
    assert!(ops::conv1d(&x, &weight, None, cfg).is_ok());
    let err = |r: wgformer::Result<Tensor>| r.unwrap_err().to_string();

    let wrong_c_in = tensor(&values(4 * 2 * 3, 3), &[4, 2, 3]);
    let msg = err(ops::conv1d(&x, &wrong_c_in, None, cfg));
    assert!(msg.contains("C_in = 3"), "names the expected C_in: {msg}");
    let short_bias = tensor(&values(3, 4), &[3]);
    let msg = err(ops::conv1d(&x, &weight, Some(&short_bias), cfg));
    assert!(msg.contains("bias"), "names the bias: {msg}");
    let flat = tensor(&values(36, 5), &[2, 18]);
    assert!(ops::conv1d(&flat, &weight, None, cfg).is_err());
    let too_long = tensor(&values(4 * 3 * 9, 6), &[4, 3, 9]);
    let msg = err(ops::conv1d(&x, &too_long, None, cfg));
    assert!(
        msg.contains("does not fit"),
        "says the kernel does not fit: {msg}"
    );
    let zero_stride = Conv1dConfig {
        stride: 0,
        padding: 0,
    };
    assert!(ops::conv1d(&x, &weight, None, zero_stride).is_err());
    let ids = Tensor::from_u32(&gpu(), &[0; 36], &[2, 6, 3]).unwrap();
    assert!(ops::conv1d(&ids, &weight, None, cfg).is_err());
}
