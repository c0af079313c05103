//! CTC loss (`shaders/ctc.wgsl`): log-softmax, then the alpha and beta recursions of every
//! utterance in parallel (one workgroup each), then the fused gradient. Three dispatches, and
//! nothing is read back: lengths and labels stay on the GPU.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("ctc.wgsl");
/// Invocations per workgroup: per row in `log_softmax`, over the states in `alpha_beta`, per
/// element in `backward`. A power of two (tree reductions).
const WG: u32 = 128;

/// `struct Params` of ctc.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    time: u32,
    vocab: u32,
    max_target: u32,
    blank: u32,
    /// Lattice states per utterance: 2 * max_target + 1.
    states: u32,
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], entry).define("WG", WG)
}

/// Buffers: lp, logits.
fn log_softmax_kernel() -> Kernel {
    kernel("log_softmax").write(1).read(2)
}

/// Buffers: lattice, log_p, loss, links, lp, input_lengths, targets, target_lengths.
fn alpha_beta_kernel() -> Kernel {
    kernel("alpha_beta")
        .write(3)
        .write(4)
        .write(5)
        .write(6)
        .read(7)
        .read(8)
        .read(9)
        .read(10)
}

/// Buffers: dlogits, lp, lattice, log_p, links, input_lengths, target_lengths, dloss.
fn backward_kernel() -> Kernel {
    kernel("backward")
        .write(11)
        .read(7)
        .read(12)
        .read(13)
        .read(14)
        .read(8)
        .read(10)
        .read(15)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![log_softmax_kernel(), alpha_beta_kernel(), backward_kernel()]
}

const OP: &str = "ctc_loss";

fn check_u32(name: &str, t: &Tensor, shape: &[usize], form: &str) -> Result<()> {
    if t.dtype() != DType::U32 || t.shape() != shape {
        return Err(Error::shape(
            OP,
            format!("{name} must be u32 {form} = {shape:?}, got {t:?}"),
        ));
    }
    Ok(())
}

/// Per-utterance CTC negative log-likelihood, shape `[B]`.
///
/// `logits` `[B, T, V]` f32 (log-softmax is applied inside, over V); `input_lengths` `[B]` u32,
/// utterance b using frames `0..input_lengths[b]`; `targets` `[B, S]` u32 padded, utterance b's
/// labels being `targets[b, 0..target_lengths[b]]`; `target_lengths` `[B]` u32; `blank` the
/// blank class (< V). A target of length 0 is valid (the all-blank paths).
///
/// An utterance with no path — fewer frames than its labels plus the blanks its repeats need —
/// gets loss 0 and a zero gradient (PyTorch's `zero_infinity=True`). The lengths and labels
/// live on the GPU and are not read back, so their values are not checked here: a length past
/// T or S is clamped to it, and an utterance with a label >= V or equal to `blank` is treated
/// like an infeasible one (loss 0, zero gradient).
///
/// Backward (logits only): `dlogits[b, t, v] = dloss[b] * (softmax[b, t, v] - occupancy)`,
/// the occupancy being the posterior probability of emitting v at frame t; 0 on padded frames.
pub fn ctc_loss(
    logits: &Tensor,
    input_lengths: &Tensor,
    targets: &Tensor,
    target_lengths: &Tensor,
    blank: u32,
) -> Result<Tensor> {
    let &[batch, time, vocab] = logits.shape() else {
        return Err(Error::shape(
            OP,
            format!("logits must be f32 [B, T, V], got {logits:?}"),
        ));
    };
    if logits.dtype() != DType::F32 || vocab == 0 {
        return Err(Error::shape(
            OP,
            format!("logits must be f32 [B, T, V] with V > 0, got {logits:?}"),
        ));
    }
    if blank as usize >= vocab {
        return Err(Error::shape(
            OP,
            format!("blank {blank} is not a class of logits {logits:?} (V = {vocab})"),
        ));
    }
    check_u32("input_lengths", input_lengths, &[batch], "[B]")?;
    check_u32("target_lengths", target_lengths, &[batch], "[B]")?;
    let max_target = match targets.shape() {
        &[b, s] if b == batch && targets.dtype() == DType::U32 => s,
        _ => {
            return Err(Error::shape(
                OP,
                format!("targets must be u32 [B, S] with B = {batch}, got {targets:?}"),
            ))
        }
    };

    let gpu = logits.gpu();
    let states = 2 * max_target + 1;
    let params = Params {
        batch: batch as u32,
        time: time as u32,
        vocab: vocab as u32,
        max_target: max_target as u32,
        blank,
        states: states as u32,
    };
    let lp = Tensor::empty(gpu, &[batch, time, vocab])?;
    let lattice = Tensor::empty(gpu, &[2, batch, time, states])?;
    let log_p = Tensor::empty(gpu, &[batch])?;
    let loss = Tensor::empty(gpu, &[batch])?;
    // u32 head / next lists; only the kernels read them.
    let links = gpu.alloc(batch * (vocab + max_target))?;
    gpu.dispatch(
        &log_softmax_kernel(),
        &params,
        &[lp.storage(), logits.storage()],
        grid((batch * time) as u32),
    )?;
    gpu.dispatch(
        &alpha_beta_kernel(),
        &params,
        &[
            lattice.storage(),
            log_p.storage(),
            loss.storage(),
            &links,
            lp.storage(),
            input_lengths.storage(),
            targets.storage(),
            target_lengths.storage(),
        ],
        grid(2 * batch as u32),
    )?;

    let (input_lengths, target_lengths) = (input_lengths.clone(), target_lengths.clone());
    Ok(record(loss, &[logits], move |dloss| {
        if dloss.shape() != [batch] || dloss.dtype() != DType::F32 {
            return Err(Error::shape(
                "ctc_loss backward",
                format!("the loss gradient must be f32 [{batch}], got {dloss:?}"),
            ));
        }
        let gpu = dloss.gpu();
        let dlogits = Tensor::empty(gpu, &[batch, time, vocab])?;
        let buffers = [
            dlogits.storage(),
            lp.storage(),
            lattice.storage(),
            log_p.storage(),
            &links,
            input_lengths.storage(),
            target_lengths.storage(),
            dloss.storage(),
        ];
        gpu.dispatch(
            &backward_kernel(),
            &params,
            &buffers,
            groups_for(dlogits.numel(), WG),
        )?;
        Ok(vec![Some(dlogits)])
    }))
}
