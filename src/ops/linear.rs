//! A Linear layer as one op: y = x W^T + b, W stored [out, in] (PyTorch's layout). The
//! forward is one matmul whose epilogue adds the bias (`shaders/matmul/common.wgsl`, `has_bias`),
//! so the bias costs no extra pass over y; the backward is the matmul's (dx, dW) plus
//! db = dy summed over every row. `linear_add` also adds a residual in the same epilogue.

use super::matmul::{gemm_bias, grad_a, grad_b, plan};
use super::sum_leading;
use crate::error::{Error, Result};
use crate::tape::{record, SavedTensor};
use crate::tensor::{DType, Tensor};

/// x: [..., in], weight: [out, in], bias: [out] -> [..., out].
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear_with("linear", x, weight, bias, None)
}

/// `residual + linear(x, weight, bias)`, the residual added in the matmul's epilogue: a
/// transformer branch's last Linear and the residual connection around it in one pass over
/// the output. `residual` has the output's shape; its gradient is the output's.
pub fn linear_add(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: &Tensor,
) -> Result<Tensor> {
    linear_with("linear_add", x, weight, bias, Some(residual))
}

fn linear_with(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let (g, out_shape) = plan(op, x, weight, false, true)?;
    let n = weight.shape()[0];
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [n] {
            return Err(Error::shape(
                op,
                format!(
                    "bias must be f32 [{n}] for a weight {:?}, got {b:?}",
                    weight.shape()
                ),
            ));
        }
    }
    if let Some(r) = residual {
        if r.dtype() != DType::F32 || r.shape() != out_shape {
            return Err(Error::shape(
                op,
                format!("the residual must be f32 {out_shape:?} like the output, got {r:?}"),
            ));
        }
    }
    let out = gemm_bias(x, weight, bias, residual, g, None)?.reshape(&out_shape)?;
    // dW reads x (kept as f16 in mixed precision); dx reads only W, a parameter.
    let kept_x = SavedTensor::input_if(weight.is_requires_grad(), x)?;
    let (x_shape, x_needs_grad) = (x.shape().to_vec(), x.is_requires_grad());
    let (w2, has_bias) = (weight.clone(), bias.is_some());
    let inputs: Vec<&Tensor> = [Some(x), Some(weight), bias, residual]
        .into_iter()
        .flatten()
        .collect();
    let has_residual = residual.is_some();
    Ok(record(out, &inputs, move |dy| {
        let dx = match x_needs_grad {
            true => Some(grad_a(&x_shape, &w2, dy, g)?),
            false => None,
        };
        let dw = match &kept_x {
            Some(x) => Some(grad_b(&x.get()?, w2.shape(), dy, g)?),
            None => None,
        };
        let mut grads = vec![dx, dw];
        if has_bias {
            grads.push(Some(sum_leading(dy, n)?));
        }
        if has_residual {
            grads.push(Some(dy.clone()));
        }
        Ok(grads)
    }))
}
