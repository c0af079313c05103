//! Fused log-softmax + NLL cross-entropy (`shaders/cross_entropy.wgsl`), with PyTorch's
//! `ignore_index` and `label_smoothing`. Everything stays on the GPU: the count of rows that
//! take part in the mean is computed there, and the backward reads the incoming gradient
//! there, so a training step reads nothing back.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("cross_entropy.wgsl");
/// Invocations per row in `row_loss_forward` (one workgroup per row); a power of two.
const ROW_WG: u32 = 64;
/// Invocations of the single `finish` workgroup, and per workgroup in `backward`.
const WG: u32 = 256;

/// `struct Params` of cross_entropy.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    vocab: u32,
    ignore_index: u32,
    label_smoothing: f32,
}

/// Buffers: row_loss, lse, logits, targets.
fn row_loss_kernel(wg: u32) -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "row_loss_forward")
        .define("WG", wg)
        .write(1)
        .write(2)
        .read(3)
        .read(4)
}

/// Buffers: loss, count, row_loss, targets.
fn finish_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "finish")
        .define("WG", WG)
        .write(5)
        .write(6)
        .read(7)
        .read(4)
}

/// Buffers: dlogits, logits, targets, lse, count, dloss.
fn backward_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "backward")
        .define("WG", WG)
        .write(8)
        .read(3)
        .read(4)
        .read(9)
        .read(10)
        .read(11)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![
        row_loss_kernel(ROW_WG),
        row_loss_kernel(super::ROW_WG_CPU),
        finish_kernel(),
        backward_kernel(),
    ]
}

/// Mean cross-entropy of `logits` ([N, V], f32) against `targets` ([N] u32 class ids), as a
/// one-element tensor of shape [].
///
/// Row loss with label smoothing `ls`: `(1 - ls) * -logp[t] + ls * mean_j(-logp[j])`. The
/// mean is over the rows that count; a row whose target is `ignore_index` does not count, and
/// the loss is 0 (not NaN) when no row counts.
///
/// Targets must be in `0..V` or equal `ignore_index`. They live on the GPU and are not read
/// back, so this cannot be checked here: a target >= V that is not `ignore_index` is treated
/// as ignored by the kernels (never read out of bounds) and silently drops out of the mean.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: u32,
    label_smoothing: f32,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    if logits.dtype() != DType::F32 || logits.dims() != 2 || logits.shape()[1] == 0 {
        return Err(Error::shape(
            OP,
            format!("logits must be f32 [N, V] with V > 0, got {logits:?}"),
        ));
    }
    let (rows, vocab) = (logits.shape()[0], logits.shape()[1]);
    if targets.dtype() != DType::U32 {
        return Err(Error::shape(
            OP,
            format!("targets must be u32 class ids, got {targets:?}"),
        ));
    }
    if targets.numel() != rows {
        return Err(Error::shape(
            OP,
            format!(
                "targets must be [{rows}] (one per row of logits {:?}), got {:?}",
                logits.shape(),
                targets.shape()
            ),
        ));
    }
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::shape(
            OP,
            format!("label_smoothing {label_smoothing} is not in [0, 1]"),
        ));
    }

    let gpu = logits.gpu();
    let row_loss = Tensor::empty(gpu, &[rows])?;
    // Per row (max, log-sum-exp minus max): see the shader for why two parts.
    let lse = Tensor::empty(gpu, &[rows, 2])?;
    let loss = Tensor::empty(gpu, &[])?;
    let count = Tensor::empty(gpu, &[1])?;
    let params = Params {
        rows: rows as u32,
        vocab: vocab as u32,
        ignore_index,
        label_smoothing,
    };
    gpu.dispatch(
        &row_loss_kernel(super::row_workgroup(gpu, ROW_WG)),
        &params,
        &[
            row_loss.storage(),
            lse.storage(),
            logits.storage(),
            targets.storage(),
        ],
        grid(rows as u32),
    )?;
    gpu.dispatch(
        &finish_kernel(),
        &params,
        &[
            loss.storage(),
            count.storage(),
            row_loss.storage(),
            targets.storage(),
        ],
        [1, 1, 1],
    )?;

    let (logits2, targets2) = (logits.clone(), targets.clone());
    Ok(record(loss, &[logits], move |dloss| {
        if dloss.numel() != 1 || dloss.dtype() != DType::F32 {
            return Err(Error::shape(
                "cross_entropy backward",
                format!("the loss gradient must be one f32 value, got {dloss:?}"),
            ));
        }
        let dlogits = Tensor::empty(dloss.gpu(), &[rows, vocab])?;
        let buffers = [
            dlogits.storage(),
            logits2.storage(),
            targets2.storage(),
            lse.storage(),
            count.storage(),
            dloss.storage(),
        ];
        dloss.gpu().dispatch(
            &backward_kernel(),
            &params,
            &buffers,
            groups_for(rows * vocab, WG),
        )?;
        Ok(vec![Some(dlogits)])
    }))
}
