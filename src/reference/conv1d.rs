//! 1-D convolution over time, channels last (PyTorch's `conv1d` with input and output
//! transposed: x [batch, t, c_in] -> out [batch, t_out, c_out]), stride and zero padding.

/// Sizes of one convolution: x `[batch, t, c_in]`, weight `[c_out, c_in, k]`.
#[derive(Clone, Copy, Debug)]
pub struct Conv1dShape {
    pub batch: usize,
    pub t: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv1dShape {
    /// `(t + 2 p - k) / s + 1`.
    pub fn t_out(&self) -> usize {
        (self.t + 2 * self.padding - self.k) / self.stride + 1
    }

    /// Calls `f(x index, weight index, out index)` for every product of the convolution that
    /// does not fall in the padding: forward and backward walk the same triples.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let t_out = self.t_out();
        for b in 0..self.batch {
            for t in 0..t_out {
                for co in 0..self.c_out {
                    let o = (b * t_out + t) * self.c_out + co;
                    for ci in 0..self.c_in {
                        for k in 0..self.k {
                            let Some(src) = (t * self.stride + k).checked_sub(self.padding) else {
                                continue;
                            };
                            if src >= self.t {
                                continue;
                            }
                            let xi = (b * self.t + src) * self.c_in + ci;
                            let wi = (co * self.c_in + ci) * self.k + k;
                            f(xi, wi, o);
                        }
                    }
                }
            }
        }
    }
}

/// `out[b, t, co] = bias[co] + sum_{ci, k} weight[co, ci, k] * x[b, t*s + k - p, ci]`, x outside
/// the signal being 0. Returns out `[batch, t_out, c_out]`.
pub fn conv1d(x: &[f64], weight: &[f64], bias: Option<&[f64]>, s: &Conv1dShape) -> Vec<f64> {
    assert_eq!(x.len(), s.batch * s.t * s.c_in, "conv1d: x size");
    assert_eq!(weight.len(), s.c_out * s.c_in * s.k, "conv1d: weight size");
    let mut out = vec![0.0; s.batch * s.t_out() * s.c_out];
    if let Some(bias) = bias {
        assert_eq!(bias.len(), s.c_out, "conv1d: bias size");
        for (o, v) in out.iter_mut().enumerate() {
            *v = bias[o % s.c_out];
        }
    }
    s.for_each_tap(|xi, wi, o| out[o] += weight[wi] * x[xi]);
    out
}

/// Gradients of [`conv1d`] given `dout` (`[batch, t_out, c_out]`): each product
/// `weight[wi] * x[xi]` added into `out[o]` sends `dout[o] * x[xi]` to `weight[wi]` and
/// `dout[o] * weight[wi]` to `x[xi]`; `dbias[co]` sums `dout` over batch and time.
///
/// Returns `(dx, dweight, dbias)`.
pub fn conv1d_backward(
    x: &[f64],
    weight: &[f64],
    dout: &[f64],
    s: &Conv1dShape,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    assert_eq!(
        dout.len(),
        s.batch * s.t_out() * s.c_out,
        "conv1d_backward: dout size"
    );
    let mut dx = vec![0.0; x.len()];
    let mut dweight = vec![0.0; weight.len()];
    let mut dbias = vec![0.0; s.c_out];
    s.for_each_tap(|xi, wi, o| {
        dx[xi] += dout[o] * weight[wi];
        dweight[wi] += dout[o] * x[xi];
    });
    for (o, d) in dout.iter().enumerate() {
        dbias[o % s.c_out] += d;
    }
    (dx, dweight, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::finite_diff::{assert_close, dot, numerical_grad, test_values};

    #[test]
    fn padded_strided_kernel_of_ones_counts_the_frames_inside_the_signal() {
        // One channel of five ones, kernel [1, 1, 1], padding 1, stride 2: windows at
        // frames -1..=1, 1..=3, 3..=5 hold 2, 3 and 2 real frames.
        let s = Conv1dShape {
            batch: 1,
            t: 5,
            c_in: 1,
            c_out: 1,
            k: 3,
            stride: 2,
            padding: 1,
        };
        assert_eq!(s.t_out(), 3);
        assert_close(
            &conv1d(&[1.0; 5], &[1.0; 3], None, &s),
            &[2.0, 3.0, 2.0],
            1e-12,
        );
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = Conv1dShape {
            batch: 2,
            t: 7,
            c_in: 3,
            c_out: 4,
            k: 3,
            stride: 2,
            padding: 1,
        };
        let x = test_values(s.batch * s.t * s.c_in, 1);
        let w = test_values(s.c_out * s.c_in * s.k, 2);
        let b = test_values(s.c_out, 3);
        let dout = test_values(s.batch * s.t_out() * s.c_out, 4);
        let (dx, dw, db) = conv1d_backward(&x, &w, &dout, &s);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&dout, &conv1d(x, w, Some(b), &s));
        assert_close(&dx, &numerical_grad(|x| loss(x, &w, &b), &x, 1e-5), 1e-7);
        assert_close(&dw, &numerical_grad(|w| loss(&x, w, &b), &w, 1e-5), 1e-7);
        assert_close(&db, &numerical_grad(|b| loss(&x, &w, b), &b, 1e-5), 1e-7);
    }
}
