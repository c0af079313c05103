//! 2-D convolution (`shaders/conv2d.wgsl`) as im2col + matmul, each step recorded on the tape:
//!
//! ```text
//! x [B, C_in, H, W] --im2col--> cols [K, N]            K = C_in * KH * KW, N = B * OH * OW
//! weight [C_out, K] @ cols [K, N] --ops::matmul--> y [C_out, N]
//! y [C_out, B, OH * OW] --channels_first (+ bias)--> out [B, C_out, OH, OW]
//! ```
//! So the backward is col2im (the gather that inverts im2col), matmul's own backward, and the
//! channel swap run the other way plus a bias sum: every gradient is a gather or a fixed-order
//! sum, never a float atomic. cols is [K, N] rather than [N, K] so that C_out lands on the
//! product's M (whole 32-row tiles) and the many pixels on N: on lavapipe the three products of
//! the 32 -> 32 speech conv took 1.1-1.7x longer with cols [N, K] and y = cols @ weight^T. A forward is 3-5 dispatches (im2col, the matmul's packing where it
//! packs and product, channels_first); the whole product runs on the fastest matmul kernel of
//! the adapter, which reads cols in place when C_out is small (`b_direct` in matmul/rowblock.wgsl).
//! The price is memory: cols and its gradient hold K x N floats each (110 MB apiece for the
//! speech embedding's 32 -> 32 conv at B = 16, 75 x 80 outputs).

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("conv2d.wgsl");
/// Invocations per workgroup; each invocation fills one row of the output image.
const WG: u32 = 64;

/// `struct Params` of conv2d.wgsl, field for field: the geometry, strides (sh, sw) and
/// paddings (ph, pw) as [time, frequency].
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    has_bias: u32,
}

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

/// Buffers: out, y, bias.
fn channels_first_kernel() -> Kernel {
    kernel("channels_first").write(5).read(6).read(7)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![im2col_kernel(), col2im_kernel(), channels_first_kernel()]
}

/// Stride and zero padding of a convolution, each as [time (H), frequency (W)].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Conv2dConfig {
    /// Output [H', W'] for an input of `in_hw` and a kernel of `kernel_hw`:
    /// `floor((n + 2 p - k) / s) + 1` per dim. 0 where the kernel does not fit even once.
    pub fn output_size(&self, in_hw: [usize; 2], kernel_hw: [usize; 2]) -> [usize; 2] {
        std::array::from_fn(|i| {
            let padded = in_hw[i] + 2 * self.padding[i];
            if self.stride[i] == 0 || kernel_hw[i] > padded {
                0
            } else {
                (padded - kernel_hw[i]) / self.stride[i] + 1
            }
        })
    }
}

/// The sizes of one convolution, in the order of the shader's `Params`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    cfg: Conv2dConfig,
}

impl Geometry {
    /// K: the rows of cols, the columns of the weight matrix.
    fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// N: the output pixels of the whole batch.
    fn pixels(&self) -> usize {
        self.batch * self.oh * self.ow
    }

    fn params(&self, has_bias: bool) -> Params {
        let (s, p) = (self.cfg.stride, self.cfg.padding);
        Params {
            batch: self.batch as u32,
            c_in: self.c_in as u32,
            h: self.h as u32,
            w: self.w as u32,
            c_out: self.c_out as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            oh: self.oh as u32,
            ow: self.ow as u32,
            sh: s[0] as u32,
            sw: s[1] as u32,
            ph: p[0] as u32,
            pw: p[1] as u32,
            has_bias: has_bias as u32,
        }
    }
}

fn check(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Geometry> {
    const OP: &str = "conv2d";
    let named = [("x", Some(x)), ("weight", Some(weight)), ("bias", bias)];
    for (name, t) in named.iter().filter_map(|(n, t)| t.map(|t| (n, t))) {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(OP, format!("{name} must be f32, got {t:?}")));
        }
    }
    let (&[batch, c_in, h, w], &[c_out, wc_in, kh, kw]) = (x.shape(), weight.shape()) else {
        return Err(Error::shape(
            OP,
            format!(
                "x must be [B, C_in, H, W] and weight [C_out, C_in, KH, KW], got x {:?}, weight {:?}",
                x.shape(),
                weight.shape()
            ),
        ));
    };
    if wc_in != c_in || c_out == 0 || kh == 0 || kw == 0 {
        return Err(Error::shape(
            OP,
            format!(
                "weight {:?} must be [C_out > 0, C_in = {c_in} (from x {:?}), KH > 0, KW > 0]",
                weight.shape(),
                x.shape()
            ),
        ));
    }
    if let Some(b) = bias {
        if b.shape() != [c_out] {
            return Err(Error::shape(
                OP,
                format!(
                    "bias must be [{c_out}] (C_out of weight), got {:?}",
                    b.shape()
                ),
            ));
        }
    }
    if cfg.stride.contains(&0) {
        return Err(Error::shape(
            OP,
            format!("stride must be >= 1, got {:?}", cfg.stride),
        ));
    }
    let [oh, ow] = cfg.output_size([h, w], [kh, kw]);
    if oh == 0 || ow == 0 {
        return Err(Error::shape(
            OP,
            format!(
                "kernel [{kh}, {kw}] does not fit the input [{h}, {w}] with padding {:?}",
                cfg.padding
            ),
        ));
    }
    Ok(Geometry {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        oh,
        ow,
        cfg,
    })
}

/// Convolution of `x` ([B, C_in, H, W]) with `weight` ([C_out, C_in, KH, KW], any kernel size)
/// plus an optional `bias` ([C_out]), zero padding: out [B, C_out, H', W'] with
/// `[H', W'] = cfg.output_size([H, W], [KH, KW])` and
/// `out[b, co, i, j] = bias[co] + sum_{ci, u, v} weight[co, ci, u, v] * x[b, ci, i*sh + u - ph, j*sw + v - pw]`
/// (a cross-correlation, as PyTorch's `conv2d`). Gradients reach x, weight and bias.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let g = check(x, weight, bias, cfg)?;
    // The unfolded input (and the product) must fit one binding: above that, the batch is
    // convolved in chunks of images and the outputs concatenated (gradients flow through).
    let per_image = (g.taps().max(g.c_out) * g.oh * g.ow * 4) as f64;
    // The buffer pool rounds sizes up by at most 25%.
    let fit = (x.gpu().max_binding_bytes() as f64 / 1.25 / per_image) as usize;
    if fit < g.batch {
        return conv2d_in_chunks(x, weight, bias, cfg, fit.max(1));
    }
    let cols = im2col(x, g)?;
    // [C_out, K] @ [K, N] -> [C_out, N]
    let y = super::matmul(&weight.reshape(&[g.c_out, g.taps()])?, &cols)?;
    channels_first(&y, bias, g)
}

/// `conv2d` over `images` images of the batch at a time, outputs concatenated: what `conv2d`
/// does when one image's unfolded input times the batch would exceed a binding.
pub fn conv2d_in_chunks(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    images: usize,
) -> Result<Tensor> {
    let g = check(x, weight, bias, cfg)?;
    if images == 0 {
        return Err(Error::shape(
            "conv2d_in_chunks",
            "images per chunk must be at least 1",
        ));
    }
    let parts = (0..g.batch)
        .step_by(images)
        .map(|start| {
            let part = super::slice(x, 0, start, images.min(g.batch - start))?;
            conv2d(&part, weight, bias, cfg)
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Tensor> = parts.iter().collect();
    super::concat(&refs, 0)
}

/// x [B, C_in, H, W] -> cols [K, N]; backward: col2im.
fn im2col(x: &Tensor, g: Geometry) -> Result<Tensor> {
    let gpu = x.gpu();
    let params = g.params(false);
    let cols = Tensor::empty(gpu, &[g.taps(), g.pixels()])?;
    gpu.dispatch(
        &im2col_kernel(),
        &params,
        &[cols.storage(), x.storage()],
        groups_for(cols.numel() / g.ow, WG),
    )?;
    let x_shape = x.shape().to_vec();
    Ok(record(cols, &[x], move |dcols| {
        let dx = Tensor::empty(dcols.gpu(), &x_shape)?;
        dcols.gpu().dispatch(
            &col2im_kernel(),
            &params,
            &[dx.storage(), dcols.storage()],
            groups_for(dx.numel() / g.w, WG),
        )?;
        Ok(vec![Some(dx)])
    }))
}

/// y [C_out, B, OH * OW] (+ bias) -> out [B, C_out, OH, OW]; backward: the same swap of the
/// two outer dims the other way, and for the bias the sum over B and the pixels.
fn channels_first(y: &Tensor, bias: Option<&Tensor>, g: Geometry) -> Result<Tensor> {
    let out = swap_outer(y, bias, g)?;
    let inputs: Vec<&Tensor> = std::iter::once(y).chain(bias).collect();
    let want_bias = bias.is_some_and(Tensor::is_requires_grad);
    let out_shape = out.shape().to_vec();
    Ok(record(out, &inputs, move |dout| {
        if dout.shape() != out_shape {
            return Err(Error::shape(
                "conv2d backward",
                format!("gradient {dout:?} does not match the output {out_shape:?}"),
            ));
        }
        // dout [B, C_out, S] is what channels_first reads as y when B and C_out trade places.
        let transposed = Geometry {
            batch: g.c_out,
            c_out: g.batch,
            ..g
        };
        let dy = swap_outer(dout, None, transposed)?.reshape(&[g.c_out, g.pixels()])?;
        let dbias = if want_bias {
            Some(super::sum_axis(&dy, 1)?)
        } else {
            None
        };
        Ok(vec![Some(dy), dbias])
    }))
}

/// The `channels_first` kernel: [C_out, B, OH, OW] (+ bias[C_out]) -> [B, C_out, OH, OW].
fn swap_outer(y: &Tensor, bias: Option<&Tensor>, g: Geometry) -> Result<Tensor> {
    let gpu = y.gpu();
    let out = Tensor::empty(gpu, &[g.batch, g.c_out, g.oh, g.ow])?;
    // Without a bias the kernel reads none; y stands in for the binding.
    let bias_storage = bias.map_or(y.storage(), Tensor::storage);
    gpu.dispatch(
        &channels_first_kernel(),
        &g.params(bias.is_some()),
        &[out.storage(), y.storage(), bias_storage],
        groups_for(out.numel() / g.ow, WG),
    )?;
    Ok(out)
}
