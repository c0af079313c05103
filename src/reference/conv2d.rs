//! 2-D convolution (cross-correlation, as PyTorch's `conv2d`) with stride and zero padding.

/// Sizes of one convolution: x `[batch, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// stride and padding as `[along h, along w]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Conv2dShape {
    /// `[oh, ow]`, each `(n + 2 p - k) / s + 1`.
    pub fn output_hw(&self) -> [usize; 2] {
        [
            (self.h + 2 * self.padding[0] - self.kh) / self.stride[0] + 1,
            (self.w + 2 * self.padding[1] - self.kw) / self.stride[1] + 1,
        ]
    }

    /// Calls `f(x index, weight index, out index)` for every product of the convolution that
    /// does not fall in the padding: forward and backward walk the same triples.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let [oh, ow] = self.output_hw();
        for b in 0..self.batch {
            for co in 0..self.c_out {
                for i in 0..oh {
                    for j in 0..ow {
                        let o = ((b * self.c_out + co) * oh + i) * ow + j;
                        for ci in 0..self.c_in {
                            for u in 0..self.kh {
                                for v in 0..self.kw {
                                    // Input row / column, shifted by the padding.
                                    let r = (i * self.stride[0] + u).checked_sub(self.padding[0]);
                                    let c = (j * self.stride[1] + v).checked_sub(self.padding[1]);
                                    let (Some(r), Some(c)) = (r, c) else { continue };
                                    if r >= self.h || c >= self.w {
                                        continue;
                                    }
                                    let xi = ((b * self.c_in + ci) * self.h + r) * self.w + c;
                                    let wi = ((co * self.c_in + ci) * self.kh + u) * self.kw + v;
                                    f(xi, wi, o);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out[b, co, i, j] = bias[co] + sum_{ci, u, v} weight[co, ci, u, v] * x[b, ci, i*sh + u - ph, j*sw + v - pw]`,
/// x outside the image being 0. Returns out `[batch, c_out, oh, ow]`.
pub fn conv2d(x: &[f64], weight: &[f64], bias: Option<&[f64]>, s: &Conv2dShape) -> Vec<f64> {
    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w, "conv2d: x size");
    assert_eq!(
        weight.len(),
        s.c_out * s.c_in * s.kh * s.kw,
        "conv2d: weight size"
    );
    let [oh, ow] = s.output_hw();
    let mut out = vec![0.0; s.batch * s.c_out * oh * ow];
    if let Some(bias) = bias {
        assert_eq!(bias.len(), s.c_out, "conv2d: bias size");
        for (o, v) in out.iter_mut().enumerate() {
            *v = bias[(o / (oh * ow)) % s.c_out];
        }
    }
    s.for_each_tap(|xi, wi, o| out[o] += weight[wi] * x[xi]);
    out
}

/// Gradients of [`conv2d`] given `dout` (`[batch, c_out, oh, ow]`): each product
/// `weight[wi] * x[xi]` added into `out[o]` sends `dout[o] * x[xi]` to `weight[wi]` and
/// `dout[o] * weight[wi]` to `x[xi]`; `dbias[co]` sums `dout` over batch and pixels.
///
/// Returns `(dx, dweight, dbias)`.
pub fn conv2d_backward(
    x: &[f64],
    weight: &[f64],
    dout: &[f64],
    s: &Conv2dShape,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [oh, ow] = s.output_hw();
    assert_eq!(
        dout.len(),
        s.batch * s.c_out * oh * ow,
        "conv2d_backward: dout size"
    );
    let mut dx = vec![0.0; x.len()];
    let mut dweight = vec![0.0; weight.len()];
    let mut dbias = vec![0.0; s.c_out];
    s.for_each_tap(|xi, wi, o| {
        dx[xi] += dout[o] * weight[wi];
        dweight[wi] += dout[o] * x[xi];
    });
    for (o, d) in dout.iter().enumerate() {
        dbias[(o / (oh * ow)) % s.c_out] += d;
    }
    (dx, dweight, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn one_by_one_kernel_mixes_channels_per_pixel() {
        // weight [2, 3, 1, 1]: out[b, co, p] = sum_ci w[co, ci] x[b, ci, p] + bias[co].
        let s = Conv2dShape {
            batch: 1,
            c_in: 3,
            h: 1,
            w: 2,
            c_out: 2,
            kh: 1,
            kw: 1,
            stride: [1, 1],
            padding: [0, 0],
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // channels (1, 2), (3, 4), (5, 6)
        let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
        let out = conv2d(&x, &w, Some(&[10.0, 0.0]), &s);
        assert_close(&out, &[10.0 - 4.0, 10.0 - 4.0, 4.5, 6.0], 1e-12);
    }

    #[test]
    fn padded_strided_3x3_sums_the_window_inside_the_image() {
        // All-ones 3x3 kernel over a 3x4 image of ones, padding 1, stride (2, 1): each output
        // counts the window's pixels inside the image.
        let s = Conv2dShape {
            batch: 1,
            c_in: 1,
            h: 3,
            w: 4,
            c_out: 1,
            kh: 3,
            kw: 3,
            stride: [2, 1],
            padding: [1, 1],
        };
        assert_eq!(s.output_hw(), [2, 4]);
        let out = conv2d(&[1.0; 12], &[1.0; 9], None, &s);
        assert_close(&out, &[4.0, 6.0, 6.0, 4.0, 4.0, 6.0, 6.0, 4.0], 1e-12);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = Conv2dShape {
            batch: 2,
            c_in: 2,
            h: 5,
            w: 4,
            c_out: 3,
            kh: 3,
            kw: 2,
            stride: [2, 1],
            padding: [1, 0],
        };
        let [oh, ow] = s.output_hw();
        let x = test_values(s.batch * s.c_in * s.h * s.w, 1);
        let w = test_values(s.c_out * s.c_in * s.kh * s.kw, 2);
        let b = test_values(s.c_out, 3);
        let dout = test_values(s.batch * s.c_out * oh * ow, 4);
        let (dx, dw, db) = conv2d_backward(&x, &w, &dout, &s);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&dout, &conv2d(x, w, Some(b), &s));
        assert_close(&dx, &numerical_grad(|x| loss(x, &w, &b), &x, 1e-5), 1e-7);
        assert_close(&dw, &numerical_grad(|w| loss(&x, w, &b), &w, 1e-5), 1e-7);
        assert_close(&db, &numerical_grad(|b| loss(&x, &w, b), &b, 1e-5), 1e-7);
    }
}
