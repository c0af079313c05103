//! LayerNorm over the last dim (`shaders/layer_norm.wgsl`). The forward saves each row's mean
//! and rstd; the backward computes dx per row, and dgamma / dbeta as per-block partial sums
//! over rows followed by one deterministic sum of both over the blocks (no float atomics).

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::tape::record_accumulating;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("layer_norm.wgsl");
/// Invocations per row in the row kernels (and per workgroup in `param_partials`); a power
/// of two for the tree reduction.
const WG: u32 = 64;
/// Rows each `param_partials` invocation sums for its column.
const ROWS_PER_BLOCK: u32 = 32;

/// `struct Params` of layer_norm.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    /// Row blocks of `param_partials`: ceil(rows / ROWS_PER_BLOCK).
    blocks: u32,
    /// 1: `backward_input` adds the gradient x gathered elsewhere.
    has_acc: u32,
}

/// `wg`: invocations per row (forward, backward_input) or per workgroup (param_partials).
fn kernel(entry: &'static str, wg: u32) -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], entry)
        .define("WG", wg)
        .define("ROWS_PER_BLOCK", ROWS_PER_BLOCK)
}

/// Buffers: y, mean, rstd, x, gamma, beta.
fn forward_kernel(wg: u32) -> Kernel {
    kernel("forward", wg)
        .write(1)
        .write(2)
        .write(3)
        .read(4)
        .read(5)
        .read(6)
}

/// Buffers: dx, x, gamma, dy, mean, rstd, the gradient x gathered elsewhere.
fn backward_input_kernel(wg: u32) -> Kernel {
    kernel("backward_input", wg)
        .write(7)
        .read(4)
        .read(5)
        .read(8)
        .read(9)
        .read(10)
        .read(17)
}

/// Buffers: dgamma_part, dbeta_part, x, dy, mean, rstd.
fn param_partials_kernel() -> Kernel {
    kernel("param_partials", WG)
        .write(11)
        .write(12)
        .read(4)
        .read(8)
        .read(9)
        .read(10)
}

/// Buffers: dgamma, dbeta, dgamma_part, dbeta_part.
fn param_finish_kernel() -> Kernel {
    kernel("param_finish", WG)
        .write(15)
        .write(16)
        .read(13)
        .read(14)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let mut k = vec![param_partials_kernel(), param_finish_kernel()];
    for wg in [WG, super::ROW_WG_CPU] {
        k.extend([forward_kernel(wg), backward_input_kernel(wg)]);
    }
    k
}

fn check(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<usize> {
    for (name, t) in [("x", x), ("gamma", gamma), ("beta", beta)] {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(
                "layer_norm",
                format!("{name} must be f32, got {t:?}"),
            ));
        }
    }
    let cols = match x.shape().last() {
        Some(&c) if c > 0 => c,
        _ => {
            return Err(Error::shape(
                "layer_norm",
                format!("x must be [..., C] with C > 0, got {:?}", x.shape()),
            ))
        }
    };
    for (name, t) in [("gamma", gamma), ("beta", beta)] {
        if t.shape() != [cols] {
            return Err(Error::shape(
                "layer_norm",
                format!(
                    "{name} must be [{cols}] (the last dim of x {:?}), got {:?}",
                    x.shape(),
                    t.shape()
                ),
            ));
        }
    }
    Ok(cols)
}

/// LayerNorm of `x` ([..., C]) over its last dim with per-channel `gamma` and `beta` ([C]):
/// `(x - mean) / sqrt(var + eps) * gamma + beta`, biased variance as in PyTorch.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
    let cols = check(x, gamma, beta)?;
    let rows = x.numel() / cols;
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape())?;
    let mean = Tensor::empty(gpu, &[rows])?;
    let rstd = Tensor::empty(gpu, &[rows])?;
    let blocks = rows.div_ceil(ROWS_PER_BLOCK as usize);
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        eps,
        blocks: blocks as u32,
        has_acc: 0,
    };
    let buffers = [
        y.storage(),
        mean.storage(),
        rstd.storage(),
        x.storage(),
        gamma.storage(),
        beta.storage(),
    ];
    let row_wg = super::row_workgroup(gpu, WG);
    gpu.dispatch(
        &forward_kernel(row_wg),
        &params,
        &buffers,
        grid(rows as u32),
    )?;

    let want_params = gamma.is_requires_grad() || beta.is_requires_grad();
    let (x2, gamma2) = (x.clone(), gamma.clone());
    // x's gradient takes in what x gathered elsewhere (the residual path) in the same pass.
    Ok(record_accumulating(
        y,
        &[x, gamma, beta],
        move |dy, gathered| {
            if dy.numel() != x2.numel() {
                return Err(Error::shape(
                    "layer_norm backward",
                    format!(
                        "gradient {:?} does not match output {:?}",
                        dy.shape(),
                        x2.shape()
                    ),
                ));
            }
            let gpu = dy.gpu();
            let dx = Tensor::empty(gpu, x2.shape())?;
            let acc = gathered[0].take_if(|t| t.shape() == x2.shape());
            let buffers = [
                dx.storage(),
                x2.storage(),
                gamma2.storage(),
                dy.storage(),
                mean.storage(),
                rstd.storage(),
                acc.as_ref().unwrap_or(dy).storage(),
            ];
            let params = Params {
                has_acc: acc.is_some() as u32,
                ..params
            };
            gpu.dispatch(
                &backward_input_kernel(row_wg),
                &params,
                &buffers,
                grid(rows as u32),
            )?;
            if !want_params {
                return Ok(vec![Some(dx), None, None]);
            }

            // [blocks, C] partial sums, then summed over blocks.
            let dgamma_part = Tensor::empty(gpu, &[blocks, cols])?;
            let dbeta_part = Tensor::empty(gpu, &[blocks, cols])?;
            let buffers = [
                dgamma_part.storage(),
                dbeta_part.storage(),
                x2.storage(),
                dy.storage(),
                mean.storage(),
                rstd.storage(),
            ];
            gpu.dispatch(
                &param_partials_kernel(),
                &params,
                &buffers,
                groups_for(blocks * cols, WG),
            )?;
            if blocks == 1 {
                let (dgamma, dbeta) = (dgamma_part.reshape(&[cols])?, dbeta_part.reshape(&[cols])?);
                return Ok(vec![Some(dx), Some(dgamma), Some(dbeta)]);
            }
            let (dgamma, dbeta) = (Tensor::empty(gpu, &[cols])?, Tensor::empty(gpu, &[cols])?);
            let buffers = [
                dgamma.storage(),
                dbeta.storage(),
                dgamma_part.storage(),
                dbeta_part.storage(),
            ];
            gpu.dispatch(
                &param_finish_kernel(),
                &params,
                &buffers,
                groups_for(cols, WG),
            )?;
            Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
        },
    ))
}
