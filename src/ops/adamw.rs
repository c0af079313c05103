//! The AdamW update (`shaders/adamw.wgsl`): one fused kernel that updates a parameter and its
//! two moment buffers in place. Not an op on the tape: it runs outside autograd, on leaves.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("adamw.wgsl");
const WG: u32 = 256;

/// AdamW hyper-parameters; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Plain Adam: weight decay as an L2 term in the gradient (torch.optim.Adam) instead of
    /// AdamW's decoupled decay of the weights.
    pub coupled_weight_decay: bool,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            coupled_weight_decay: false,
        }
    }
}

/// `struct Params` of adamw.wgsl, field for field: the step's scalars, folded on the CPU.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    l2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    inv_bc2: f32,
}

fn kernel() -> Kernel {
    Kernel::new(&[SHADER], "adamw")
        .define("WG", WG)
        .write(1)
        .read(2)
        .write(3)
        .write(4)
        .read(5)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![kernel()]
}

/// One AdamW step (1-based `step`) of `param` with gradient `grad`, updating `param`, `m` and
/// `v` in place on the GPU. Nothing is read back. `clip`, the [norm, coefficient, loss] tensor
/// from `ops::grad_norm_and_clip`, scales the gradient first (a coefficient of 0 skips the
/// step); `None` means no clipping.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    h: &AdamWParams,
    step: u32,
    clip: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "adamw_update";
    if step == 0 {
        return Err(Error::shape(OP, "step is 1-based; got 0"));
    }
    let n = param.numel();
    for (what, t) in [("param", param), ("grad", grad), ("m", m), ("v", v)] {
        if t.dtype() != DType::F32 || t.numel() != n {
            return Err(Error::shape(
                OP,
                format!("{what} must be f32 with {n} values like param {param:?}, got {t:?}"),
            ));
        }
    }
    // A buffer bound writable may not be bound a second time in the same dispatch.
    let bufs = [param.storage(), grad.storage(), m.storage(), v.storage()];
    for (i, a) in bufs.iter().enumerate() {
        if bufs[i + 1..].iter().any(|b| std::ptr::eq(*a, *b)) {
            return Err(Error::shape(
                OP,
                "param, grad, m and v must be four distinct buffers",
            ));
        }
    }
    let ones;
    let clip = match clip {
        Some(c) if c.numel() >= 2 && c.dtype() == DType::F32 => c,
        Some(c) => {
            return Err(Error::shape(
                OP,
                format!("clip must be the f32 [norm, coefficient, loss] tensor of grad_norm_and_clip, got {c:?}"),
            ))
        }
        None => {
            ones = Tensor::ones(param.gpu(), &[2])?;
            &ones
        }
    };
    let bufs = [
        param.storage(),
        grad.storage(),
        m.storage(),
        v.storage(),
        clip.storage(),
    ];
    // Step-dependent factors in f64 on the CPU (beta^t underflows gracefully there).
    let t = f64::from(step);
    let lr = f64::from(h.lr);
    let bc1 = 1.0 - f64::from(h.beta1).powf(t);
    let bc2 = 1.0 - f64::from(h.beta2).powf(t);
    let (decay, l2) = if h.coupled_weight_decay {
        (1.0, h.weight_decay)
    } else {
        (1.0 - lr * f64::from(h.weight_decay), 0.0)
    };
    let step_size = lr / bc1;
    let inv_bc2 = 1.0 / bc2.sqrt();
    let params = Params {
        n: n as u32,
        l2,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        decay: decay as f32,
        step_size: step_size as f32,
        inv_bc2: inv_bc2 as f32,
    };
    param
        .gpu()
        .dispatch(&kernel(), &params, &bufs, groups_for(n, WG))
}
