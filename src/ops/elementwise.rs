//! Elementwise ops (`shaders/elementwise.wgsl`): add / mul with a broadcast bias, scale, GELU
//! (exact and tanh), ReLU, dropout, fill.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tape::{record, SavedTensor};
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("elementwise.wgsl");
/// The activation functions, shared with the matmul epilogue.
pub(crate) const ACTIVATION: ShaderFile = shader_file!("activation.wgsl");
const WG: u32 = 256;

/// `struct Params` of elementwise.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements (of `Val`) of the output.
    n: u32,
    /// Elements of b, the broadcast period.
    m: u32,
    /// Fill value, scale factor or dropout probability.
    alpha: f32,
    /// Dropout seed.
    seed: u32,
}

/// `entry` with `inputs` input buffers, on `width` (1 or 4) values per invocation (`Val` in
/// elementwise.wgsl).
fn kernel(entry: &'static str, inputs: u32, width: usize) -> Kernel {
    let val = match width {
        4 => "vec4<f32>",
        _ => "f32",
    };
    let k = Kernel::new(&[ACTIVATION, SHADER], entry)
        .define("WG", WG)
        .define("WIDTH", width as u32)
        .alias("Val", val)
        .write(1);
    (0..inputs).fold(k, |k, i| k.read(2 + i))
}

const ENTRIES: [(&str, u32); 11] = [
    ("fill", 0),
    ("add", 2),
    ("mul", 2),
    ("scale", 1),
    ("gelu_forward", 1),
    ("gelu_backward", 2),
    ("gelu_tanh_forward", 1),
    ("gelu_tanh_backward", 2),
    ("relu_forward", 1),
    ("relu_backward", 2),
    ("dropout", 1),
];

pub(crate) fn kernels() -> Vec<Kernel> {
    let wide = ENTRIES.iter().filter(|(e, _)| *e != "dropout");
    ENTRIES
        .iter()
        .map(|&(e, i)| kernel(e, i, 1))
        .chain(wide.map(|&(e, i)| kernel(e, i, 4)))
        .collect()
}

/// Launch `entry` writing `out` from `inputs`.
fn launch(
    entry: &'static str,
    out: &Tensor,
    inputs: &[&Tensor],
    m: usize,
    alpha: f32,
    seed: u32,
) -> Result<()> {
    let n = out.numel();
    // vec4 where every input and the broadcast period are whole vec4 (unary ops pass m = 1).
    let broadcast = inputs.len() == 2;
    let wide = entry != "dropout" && n.is_multiple_of(4) && (!broadcast || m.is_multiple_of(4));
    let width = if wide { 4 } else { 1 };
    let k = kernel(entry, inputs.len() as u32, width);
    let mut bufs = vec![out.storage()];
    bufs.extend(inputs.iter().map(|t| t.storage()));
    let m = if broadcast { m / width } else { m };
    let params = Params {
        n: (n / width) as u32,
        m: m as u32,
        alpha,
        seed,
    };
    out.gpu()
        .dispatch(&k, &params, &bufs, groups_for(n / width, WG))
}

fn check_f32(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::shape(op, format!("expects f32, got {t:?}")));
    }
    Ok(())
}

/// Overwrite every element of `t` with `value` (no gradient).
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    launch("fill", t, &[], 1, value, 0)
}

/// `b` must equal `a` or be a suffix of its shape (a bias broadcast over the leading dims).
fn check_broadcast(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    check_f32(op, a)?;
    check_f32(op, b)?;
    let (sa, sb) = (a.shape(), b.shape());
    if sb.len() > sa.len() || sa[sa.len() - sb.len()..] != *sb || b.numel() == 0 {
        return Err(Error::shape(
            op,
            format!("cannot broadcast {sb:?} over {sa:?}"),
        ));
    }
    Ok(())
}

/// Gradient of a broadcast operand: sum the output gradient over the repeated leading dims.
fn unbroadcast(g: Tensor, like: &Tensor) -> Result<Tensor> {
    if g.numel() == like.numel() {
        return g.reshape(like.shape());
    }
    super::sum_leading(&g, like.numel())?.reshape(like.shape())
}

/// a + b, b broadcast over the leading dims of a.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_broadcast("add", a, b)?;
    let out = Tensor::empty(a.gpu(), a.shape())?;
    launch("add", &out, &[a, b], b.numel(), 0.0, 0)?;
    let b2 = b.clone();
    Ok(record(out, &[a, b], move |g| {
        // d(a + b)/da = 1, d(a + b)/db = 1 summed over the broadcast rows.
        Ok(vec![Some(g.clone()), Some(unbroadcast(g.clone(), &b2)?)])
    }))
}

/// a * b, b broadcast over the leading dims of a.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_broadcast("mul", a, b)?;
    let out = Tensor::empty(a.gpu(), a.shape())?;
    launch("mul", &out, &[a, b], b.numel(), 0.0, 0)?;
    let (a2, b2) = (a.clone(), b.clone());
    Ok(record(out, &[a, b], move |g| {
        // da = g * b (broadcast), db = sum over rows of g * a.
        let da = mul(g, &b2)?;
        let db = unbroadcast(mul(g, &a2)?, &b2)?;
        Ok(vec![Some(da), Some(db)])
    }))
}

/// a * s.
pub fn scale(a: &Tensor, s: f32) -> Result<Tensor> {
    check_f32("scale", a)?;
    let out = Tensor::empty(a.gpu(), a.shape())?;
    launch("scale", &out, &[a], 1, s, 0)?;
    Ok(record(out, &[a], move |g| Ok(vec![Some(scale(g, s)?)])))
}

/// Shared shape of an activation: forward kernel on x, backward kernel on (x, dy).
fn activation(x: &Tensor, act: Activation) -> Result<Tensor> {
    let (forward, _) = act.entries();
    check_f32(forward, x)?;
    let out = Tensor::empty(x.gpu(), x.shape())?;
    launch(forward, &out, &[x], 1, 0.0, 0)?;
    let kept_x = SavedTensor::input_if(x.is_requires_grad(), x)?;
    Ok(record(out, &[x], move |g| {
        let Some(x) = &kept_x else {
            return Ok(vec![None]);
        };
        Ok(vec![Some(activation_backward(act, &x.get()?, g)?)])
    }))
}

/// dy * act'(x): the backward of `act` at `x` (also `linear_act`'s).
pub(crate) fn activation_backward(act: Activation, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dx = Tensor::empty(dy.gpu(), dy.shape())?;
    launch(act.entries().1, &dx, &[x, dy], dy.numel(), 0.0, 0)?;
    Ok(dx)
}

/// GELU, exact: `x Phi(x)` with the normal CDF through erf (PyTorch's `nn.GELU()`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    activation(x, Activation::Gelu)
}

/// GELU, tanh approximation (GPT-2; PyTorch's `nn.GELU(approximate="tanh")`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    activation(x, Activation::GeluTanh)
}

/// The nonlinearity of a feed-forward block or convolutional stem, as configs name it
/// (`model.activation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU (`gelu`), PyTorch's `nn.GELU()`.
    #[default]
    Gelu,
    /// The tanh approximation (`gelu_tanh`), PyTorch's `nn.GELU(approximate="tanh")`.
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        activation(x, self)
    }

    /// The forward and backward entry points of elementwise.wgsl.
    fn entries(self) -> (&'static str, &'static str) {
        match self {
            Activation::Gelu => ("gelu_forward", "gelu_backward"),
            Activation::GeluTanh => ("gelu_tanh_forward", "gelu_tanh_backward"),
            Activation::Relu => ("relu_forward", "relu_backward"),
        }
    }

    /// Its `ACT_*` code in activation.wgsl (what the matmul epilogue applies).
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Gelu => 1,
            Activation::GeluTanh => 2,
            Activation::Relu => 3,
        }
    }
}

pub fn relu(x: &Tensor) -> Result<Tensor> {
    activation(x, Activation::Relu)
}

/// Inverted dropout with drop probability `p`; the mask is a pure function of (seed, index),
/// so the backward regenerates it. Pass a new seed every step.
pub fn dropout(x: &Tensor, p: f32, seed: u32) -> Result<Tensor> {
    check_f32("dropout", x)?;
    if !(0.0..1.0).contains(&p) {
        return Err(Error::shape(
            "dropout",
            format!("probability {p} is not in [0, 1)"),
        ));
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let out = Tensor::empty(x.gpu(), x.shape())?;
    launch("dropout", &out, &[x], 1, p, seed)?;
    Ok(record(out, &[x], move |g| {
        let dx = Tensor::empty(g.gpu(), g.shape())?;
        launch("dropout", &dx, &[g], 1, p, seed)?;
        Ok(vec![Some(dx)])
    }))
}
