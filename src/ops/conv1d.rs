//! 1-D convolution over time (`shaders/conv1d.wgsl`), channels last, as im2col + a Linear
//! product, each step recorded on the tape:
//!
//! ```text
//! x [B, T, C_in] --im2col--> cols [B * T_out, C_in * K]
//! cols @ weight[C_out, C_in * K]^T + bias --ops::linear--> out [B * T_out, C_out] = [B, T_out, C_out]
//! ```
//! The backward is linear's own (dcols, dweight, dbias) and col2im, the gather that inverts
//! im2col: every gradient is a gather or a fixed-order sum, never a float atomic.
//!
//! Why not `ops::conv2d` with a [1, K] kernel: conv2d is channels first ([B, C, H, W]) while a
//! transformer runs on [B, T, d]; a Whisper stem on conv2d would need a transpose in front of
//! each convolution and one behind, each with its backward, and its bias would be a separate
//! pass. Channels last, the product is a plain Linear layer whose bias rides in the matmul's
//! epilogue, and the output is already the encoder's [B, T, d].

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("conv1d.wgsl");
/// Invocations per workgroup.
const WG: u32 = 64;

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(&[SHADER], entry).define("WG", WG)
}

/// Buffers: cols, x.
fn im2col_kernel() -> Kernel {
    kernel("im2col").write(1).read(2)
}

/// Buffers: dx, dcols.
fn col2im_kernel() -> Kernel {
    kernel("col2im").write(3).read(4)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![im2col_kernel(), col2im_kernel()]
}

/// Stride and zero padding (on both ends) of a 1-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dConfig {
    pub stride: usize,
    pub padding: usize,
}

impl Conv1dConfig {
    /// Output length `floor((t + 2 p - k) / s) + 1` (PyTorch's), 0 where the kernel does not
    /// fit even once.
    pub fn output_len(&self, t: usize, k: usize) -> usize {
        let padded = t + 2 * self.padding;
        if self.stride == 0 || k > padded {
            0
        } else {
            (padded - k) / self.stride + 1
        }
    }
}

/// `struct Params` of conv1d.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    t_in: u32,
    c_in: u32,
    k: u32,
    t_out: u32,
    stride: u32,
    pad: u32,
}

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    t_in: usize,
    c_in: usize,
    k: usize,
    t_out: usize,
    stride: usize,
    pad: usize,
}

impl Geometry {
    fn params(&self) -> Params {
        Params {
            batch: self.batch as u32,
            t_in: self.t_in as u32,
            c_in: self.c_in as u32,
            k: self.k as u32,
            t_out: self.t_out as u32,
            stride: self.stride as u32,
            pad: self.pad as u32,
        }
    }
}

fn check(x: &Tensor, weight: &Tensor, cfg: Conv1dConfig) -> Result<Geometry> {
    const OP: &str = "conv1d";
    for (name, t) in [("x", x), ("weight", weight)] {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(OP, format!("{name} must be f32, got {t:?}")));
        }
    }
    let (&[batch, t_in, c_in], &[c_out, wc_in, k]) = (x.shape(), weight.shape()) else {
        return Err(Error::shape(
            OP,
            format!(
                "x must be [B, T, C_in] and weight [C_out, C_in, K], got x {:?}, weight {:?}",
                x.shape(),
                weight.shape()
            ),
        ));
    };
    if wc_in != c_in || c_out == 0 || k == 0 {
        return Err(Error::shape(
            OP,
            format!(
                "weight {:?} must be [C_out > 0, C_in = {c_in} (from x {:?}), K > 0]",
                weight.shape(),
                x.shape()
            ),
        ));
    }
    if cfg.stride == 0 {
        return Err(Error::shape(OP, "stride must be >= 1"));
    }
    let t_out = cfg.output_len(t_in, k);
    if t_out == 0 {
        return Err(Error::shape(
            OP,
            format!(
                "a kernel of {k} taps does not fit {t_in} frames with padding {}",
                cfg.padding
            ),
        ));
    }
    Ok(Geometry {
        batch,
        t_in,
        c_in,
        k,
        t_out,
        stride: cfg.stride,
        pad: cfg.padding,
    })
}

/// Convolution over time of `x` ([B, T, C_in]) with `weight` ([C_out, C_in, K], PyTorch's
/// `Conv1d` layout) plus an optional `bias` ([C_out]), zero padding: out [B, T_out, C_out] with
/// `T_out = cfg.output_len(T, K)` and
/// `out[b, t, co] = bias[co] + sum_{ci, k} weight[co, ci, k] * x[b, t * stride + k - pad, ci]`
/// (PyTorch's `conv1d` with input and output transposed to channels last). Gradients reach
/// x, weight and bias.
pub fn conv1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv1dConfig,
) -> Result<Tensor> {
    let g = check(x, weight, cfg)?;
    let c_out = weight.shape()[0];
    let cols = im2col(x, g)?; // [B * T_out, C_in * K]
    let w = weight.reshape(&[c_out, g.c_in * g.k])?;
    // [B * T_out, C_in * K] @ [C_out, C_in * K]^T + bias -> [B * T_out, C_out]
    super::linear(&cols, &w, bias)?.reshape(&[g.batch, g.t_out, c_out])
}

/// x [B, T, C_in] -> cols [B * T_out, C_in * K]; backward: col2im.
fn im2col(x: &Tensor, g: Geometry) -> Result<Tensor> {
    let gpu = x.gpu();
    let params = g.params();
    let cols = Tensor::empty(gpu, &[g.batch * g.t_out, g.c_in * g.k])?;
    gpu.dispatch(
        &im2col_kernel(),
        &params,
        &[cols.storage(), x.storage()],
        groups_for(g.batch * g.t_out * g.k, WG),
    )?;
    let x_shape = x.shape().to_vec();
    let cols_shape = cols.shape().to_vec();
    Ok(record(cols, &[x], move |dcols| {
        if dcols.shape() != cols_shape {
            return Err(Error::shape(
                "conv1d backward",
                format!("gradient {dcols:?} does not match the unfolded input {cols_shape:?}"),
            ));
        }
        let dx = Tensor::empty(dcols.gpu(), &x_shape)?;
        dcols.gpu().dispatch(
            &col2im_kernel(),
            &params,
            &[dx.storage(), dcols.storage()],
            groups_for(g.batch * g.t_in, WG),
        )?;
        Ok(vec![Some(dx)])
    }))
}
