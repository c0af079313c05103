//! The global L2 norm of all gradients and the clipping coefficient, computed on the GPU
//! (`shaders/grad_norm.wgsl`) so a training step needs no readback to clip. Not differentiable:
//! it is bookkeeping for the optimizer.

use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::tensor::Tensor;

const SHADER: ShaderFile = shader_file!("grad_norm.wgsl");
const WG: u32 = 256;

/// Gradient tensors one `sum_squares` dispatch reads (`TENSORS` in grad_norm.wgsl): with the
/// partials, the 8 storage buffers every WebGPU adapter offers per shader.
const TENSORS: usize = 7;
/// Elements per workgroup of `sum_squares` (`CHUNK`).
const CHUNK: usize = 64 * WG as usize;

/// `struct Params` of grad_norm.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// `sum_squares`: elements of each bound tensor.
    n: [u32; 8],
    /// `sum_squares`: first chunk of each tensor; entry TENSORS = the dispatch's chunks.
    first_chunk: [u32; 8],
    /// `sum_squares`: the slot of the partials its first chunk writes.
    first_slot: u32,
    /// `finish`: number of partials.
    partials_len: u32,
    /// `finish`: the clipping threshold (<= 0: no clipping).
    max_norm: f32,
    /// `finish`: 1 / the loss scale the gradients were computed with.
    unscale: f32,
}

fn sum_squares_kernel() -> Kernel {
    let mut k = Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "sum_squares")
        .define("WG", WG)
        .define("CHUNK", CHUNK as u32)
        .write(1);
    for binding in 2..2 + TENSORS as u32 {
        k = k.read(binding);
    }
    k
}

fn finish_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "finish")
        .define("WG", WG)
        .define("CHUNK", CHUNK as u32)
        .write(1)
        .write(9)
        .read(10)
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
    // Every tensor's chunks get consecutive slots of the partials, in order.
    let chunks: Vec<usize> = grads.iter().map(|g| g.numel().div_ceil(CHUNK)).collect();
    let total: usize = chunks.iter().sum();
    let partials = Tensor::empty(gpu, &[total.max(1)])?;
    if total == 0 {
        crate::ops::fill(&partials, 0.0)?;
    }
    let out = Tensor::empty(gpu, &[3])?;
    let mut first_slot = 0;
    for (group, counts) in grads.chunks(TENSORS).zip(chunks.chunks(TENSORS)) {
        let mut params = Params {
            n: [0; 8],
            first_chunk: [0; 8],
            first_slot: first_slot as u32,
            partials_len: 0,
            max_norm: 0.0,
            unscale: 1.0,
        };
        let mut next = 0;
        for t in 0..TENSORS {
            params.first_chunk[t] = next as u32;
            if let (Some(g), Some(&c)) = (group.get(t), counts.get(t)) {
                params.n[t] = g.numel() as u32;
                next += c;
            }
        }
        params.first_chunk[TENSORS] = next as u32;
        // Unused bindings hold the group's first tensor, never read.
        let mut bufs = vec![partials.storage()];
        bufs.extend((0..TENSORS).map(|t| group.get(t).unwrap_or(&group[0]).storage()));
        gpu.dispatch(&sum_squares_kernel(), &params, &bufs, grid(next as u32))?;
        first_slot += next;
    }
    let params = Params {
        n: [0; 8],
        first_chunk: [0; 8],
        first_slot: 0,
        partials_len: total as u32,
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
