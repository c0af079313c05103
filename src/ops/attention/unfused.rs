//! The unfused attention path: two matmuls around a masked softmax kernel
//! (`shaders/attention/masked_softmax.wgsl`), each step with its own backward on the tape.

use super::{check, lens_storage, AttentionMask, Dims, COMMON, WG};
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::ops::{groups_for, matmul, matmul_nt};
use crate::tape::{is_recording, record, SavedTensor};
use crate::tensor::Tensor;

const MASKED_SOFTMAX: ShaderFile = shader_file!("attention/masked_softmax.wgsl");

/// Buffers: probs, scores, key_lens.
fn masked_softmax_kernel() -> Kernel {
    Kernel::new(&[COMMON, MASKED_SOFTMAX], "masked_softmax")
        .define("WG", WG)
        .write(15)
        .read(16)
        .read(6)
}

/// Buffers: dscores, probs, dprobs.
fn masked_softmax_backward_kernel() -> Kernel {
    Kernel::new(&[COMMON, MASKED_SOFTMAX], "masked_softmax_backward")
        .define("WG", WG)
        .write(17)
        .read(18)
        .read(19)
}

pub(super) fn kernels() -> Vec<Kernel> {
    vec![masked_softmax_kernel(), masked_softmax_backward_kernel()]
}

/// Unfused attention: scores = q k^T (`matmul_nt`), probs = masked softmax of scores / sqrt(D),
/// out = probs v (`matmul`). Same inputs and result as [`attention`], for any head dim.
///
/// Returns `(out [B, H, Tq, D], probs [B, H, Tq, Tk])`, the probabilities only when
/// `return_weights` (they stay alive, and on the tape, as long as the caller holds them).
pub fn attention_unfused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    return_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let dims = check("attention_unfused", [q, k, v], mask, false, false)?;
    let scores = matmul_nt(q, k)?; // [B, H, Tq, Tk]
    let probs = masked_softmax(&scores, dims, mask)?; // [B, H, Tq, Tk]
    let out = matmul(&probs, v)?; // [B, H, Tq, D]
    Ok((out, return_weights.then_some(probs)))
}

/// Softmax of `scale * scores` over the keys each query sees; masked entries are 0.
fn masked_softmax(scores: &Tensor, dims: Dims, mask: &AttentionMask) -> Result<Tensor> {
    let gpu = scores.gpu();
    let probs = Tensor::empty(gpu, scores.shape())?;
    let params = dims.params(mask);
    let rows = dims.b * dims.h * dims.tq;
    gpu.dispatch(
        &masked_softmax_kernel(),
        &params,
        &[
            probs.storage(),
            scores.storage(),
            lens_storage(mask, scores),
        ],
        groups_for(rows, WG),
    )?;
    if !is_recording() || !scores.is_requires_grad() {
        return Ok(probs);
    }
    let kept_probs = SavedTensor::output(&probs)?;
    Ok(record(probs, &[scores], move |dy| {
        let y = kept_probs.get()?;
        if dy.shape() != y.shape() {
            return Err(Error::shape(
                "masked softmax backward",
                format!(
                    "gradient {:?} does not match output {:?}",
                    dy.shape(),
                    y.shape()
                ),
            ));
        }
        let dscores = Tensor::empty(dy.gpu(), y.shape())?;
        dy.gpu().dispatch(
            &masked_softmax_backward_kernel(),
            &params,
            &[dscores.storage(), y.storage(), dy.storage()],
            groups_for(rows, WG),
        )?;
        Ok(vec![Some(dscores)])
    }))
}
