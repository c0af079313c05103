//! Softmax over the last dim (`shaders/softmax.wgsl`). Backward from the saved output:
//! `dx = y * (dy - sum(dy * y))` per row.

use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

const SHADER: ShaderFile = shader_file!("softmax.wgsl");
/// Invocations per row (one workgroup per row); a power of two for the tree reduction.
const WG: u32 = 64;

/// `struct Params` of softmax.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
}

fn forward_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "forward")
        .define("WG", WG)
        .write(1)
        .read(2)
}

fn backward_kernel() -> Kernel {
    Kernel::new(&[super::WORKGROUP_REDUCE, SHADER], "backward")
        .define("WG", WG)
        .write(3)
        .read(4)
        .read(5)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![forward_kernel(), backward_kernel()]
}

/// Softmax of `x` ([..., C], f32) over its last dim; same shape out.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        return Err(Error::shape("softmax", format!("expects f32, got {x:?}")));
    }
    let cols = match x.shape().last() {
        Some(&c) if c > 0 => c,
        _ => {
            return Err(Error::shape(
                "softmax",
                format!("expects [..., C] with C > 0, got {:?}", x.shape()),
            ))
        }
    };
    let rows = x.numel() / cols;
    let gpu = x.gpu();
    let out = Tensor::empty(gpu, x.shape())?;
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
    };
    gpu.dispatch(
        &forward_kernel(),
        &params,
        &[out.storage(), x.storage()],
        grid(rows as u32),
    )?;

    // The backward needs y. A second node over the same storage, not `out` itself: `out`
    // owning a closure that owns `out` would be a reference cycle.
    let y = Tensor::from_storage(Arc::clone(&out.0.storage), out.shape().to_vec(), DType::F32);
    Ok(record(out, &[x], move |dy| {
        if dy.numel() != y.numel() {
            return Err(Error::shape(
                "softmax backward",
                format!(
                    "gradient {:?} does not match output {:?}",
                    dy.shape(),
                    y.shape()
                ),
            ));
        }
        let dx = Tensor::empty(dy.gpu(), y.shape())?;
        dy.gpu().dispatch(
            &backward_kernel(),
            &params,
            &[dx.storage(), y.storage(), dy.storage()],
            grid(rows as u32),
        )?;
        Ok(vec![Some(dx)])
    }))
}
