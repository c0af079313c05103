//! The SGD-with-momentum update (`shaders/sgd.wgsl`), in place, like `adamw_update`.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("sgd.wgsl");
const WG: u32 = 256;

/// `struct Params` of sgd.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

fn kernel() -> Kernel {
    Kernel::new(&[SHADER], "sgd")
        .define("WG", WG)
        .write(1)
        .read(2)
        .write(3)
        .read(4)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![kernel()]
}

/// p -= lr * (momentum * buf + grad * clip + weight_decay * p), updating `buf` too.
/// `clip` is the [norm, coefficient, loss] tensor of `grad_norm_and_clip` (None: no clipping;
/// a coefficient of 0 skips the step).
pub fn sgd_update(
    param: &Tensor,
    grad: &Tensor,
    buf: &Tensor,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    clip: Option<&Tensor>,
) -> Result<()> {
    let n = param.numel();
    for (what, t) in [("param", param), ("grad", grad), ("momentum buffer", buf)] {
        if t.dtype() != DType::F32 || t.numel() != n {
            return Err(Error::shape(
                "sgd_update",
                format!("{what} must be f32 with {n} values, got {t:?}"),
            ));
        }
    }
    let ones;
    let clip = match clip {
        Some(c) => c,
        None => {
            ones = Tensor::ones(param.gpu(), &[2])?;
            &ones
        }
    };
    let params = Params {
        n: n as u32,
        lr,
        momentum,
        weight_decay,
    };
    let bufs = [
        param.storage(),
        grad.storage(),
        buf.storage(),
        clip.storage(),
    ];
    param
        .gpu()
        .dispatch(&kernel(), &params, &bufs, groups_for(n, WG))
}
