//! f32 tensors to IEEE halves and back (`shaders/half_copy.wgsl`): two halves per 4-byte word,
//! so a `DType::F16` tensor takes half the bytes. No backward: mixed-precision training uses
//! it to keep what a backward needs (`tape::SavedTensor`), off the tape.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("half_copy.wgsl");
const WG: u32 = 256;

/// `struct Params` of half_copy.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

fn to_half_kernel() -> Kernel {
    Kernel::new(&[SHADER], "to_half")
        .define("WG", WG)
        .write(1)
        .read(2)
}

fn from_half_kernel() -> Kernel {
    Kernel::new(&[SHADER], "from_half")
        .define("WG", WG)
        .write(3)
        .read(4)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![to_half_kernel(), from_half_kernel()]
}

/// x rounded to f16 (values past +-65504 clamped to it), packed two per word: an F16 tensor
/// of x's shape.
pub fn to_half(x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        return Err(Error::shape(
            "to_half",
            format!("needs an f32 tensor, got {x:?}"),
        ));
    }
    let out = Tensor::empty_of(x.gpu(), x.shape(), DType::F16)?;
    launch(to_half_kernel(), &out, x)?;
    Ok(out)
}

/// The f32 values of an F16 tensor (exact: every half is an f32).
pub fn from_half(h: &Tensor) -> Result<Tensor> {
    if h.dtype() != DType::F16 {
        return Err(Error::shape(
            "from_half",
            format!("needs an f16 tensor, got {h:?}"),
        ));
    }
    let out = Tensor::empty(h.gpu(), h.shape())?;
    launch(from_half_kernel(), &out, h)?;
    Ok(out)
}

/// One invocation per word of the F16 side.
fn launch(kernel: Kernel, out: &Tensor, input: &Tensor) -> Result<()> {
    let n = out.numel();
    let params = Params {
        n: n as u32,
        _pad: [0; 3],
    };
    out.gpu().dispatch(
        &kernel,
        &params,
        &[out.storage(), input.storage()],
        groups_for(n.div_ceil(2), WG),
    )
}
