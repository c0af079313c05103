//! The global L2 norm of all gradients and the clipping coefficient, computed on the GPU
//! (`shaders/grad_norm.wgsl`) so a training step needs no readback to clip. Not differentiable:
//! it is bookkeeping for the optimizer.

use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tensor::Tensor;

const SHADER: ShaderFile = shader_file!("grad_norm.wgsl");
const WG: u32 = 256;

/// `struct Params` of grad_norm.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements of x (`sum_squares`) or number of partials (`finish`).
    n: u32,
    /// Where `sum_squares` writes its partial.
    slot: u32,
    /// `finish`: the clipping threshold (<= 0: no clipping).
    max_norm: f32,
    /// `finish`: 1 / the loss scale the gradients were computed with.
    unscale: f32,
}

fn sum_squares_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "sum_squares")
        .define("WG", WG)
        .write(1)
        .read(2)
}

fn finish_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "finish")
        .define("WG", WG)
        .write(1)
        .write(3)
        .read(4)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![sum_squares_kernel(), finish_kernel()]
}

/// `[norm, coefficient, loss]` as a [3] tensor: norm = sqrt(sum of every gradient element
/// squared), coefficient = min(1, max_norm / norm) (1 when `max_norm <= 0`: no clipping), and
/// `loss` copied from the optional [1] tensor (0 without one) so that one readback brings both.
/// A non-finite norm or loss makes the coefficient exactly 0: the optimizer skips the step.
///
/// `loss_scale`: the gradients are those of the loss multiplied by it (mixed precision's loss
/// scaling; 1 otherwise). The norm reported is the true one (divided by it) and the
/// coefficient divides by it too, so the optimizer's update sees the true, clipped gradient.
pub fn grad_norm_and_clip(
    grads: &[&Tensor],
    max_norm: f32,
    loss: Option<&Tensor>,
    loss_scale: f32,
) -> Result<Tensor> {
    let Some(first) = grads.first() else {
        return Err(Error::shape("grad_norm_and_clip", "no gradients"));
    };
    if !(loss_scale.is_finite() && loss_scale > 0.0) {
        return Err(Error::shape(
            "grad_norm_and_clip",
            format!("the loss scale must be finite and positive, got {loss_scale}"),
        ));
    }
    let gpu = first.gpu();
    let zero;
    let loss = match loss {
        Some(l) if l.numel() == 1 && l.dtype() == crate::tensor::DType::F32 => l,
        Some(l) => {
            return Err(Error::shape(
                "grad_norm_and_clip",
                format!("the loss must be one f32 value, got {l:?}"),
            ))
        }
        None => {
            zero = Tensor::zeros(gpu, &[1])?;
            &zero
        }
    };
    let partials = Tensor::empty(gpu, &[grads.len()])?;
    let out = Tensor::empty(gpu, &[3])?;
    for (slot, g) in grads.iter().enumerate() {
        let params = Params {
            n: g.numel() as u32,
            slot: slot as u32,
            max_norm: 0.0,
            unscale: 1.0,
        };
        gpu.dispatch(
            &sum_squares_kernel(),
            &params,
            &[partials.storage(), g.storage()],
            [1, 1, 1],
        )?;
    }
    let params = Params {
        n: grads.len() as u32,
        slot: 0,
        max_norm,
        unscale: 1.0 / loss_scale,
    };
    gpu.dispatch(
        &finish_kernel(),
        &params,
        &[partials.storage(), out.storage(), loss.storage()],
        [1, 1, 1],
    )?;
    Ok(out)
}
