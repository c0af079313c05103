//! A Linear layer as one op: y = x W^T + b, W stored [out, in] (PyTorch's layout). The
//! forward is one matmul whose epilogue adds the bias (`shaders/matmul/common.wgsl`, `has_bias`),
//! so the bias costs no extra pass over y; the backward is the matmul's (dx, dW) plus
//! db = dy summed over every row. `linear_add` also adds a residual in the same epilogue, and
//! `linear_act` applies an activation there (keeping the values before it for the backward).

use super::elementwise::activation_backward;
use super::matmul::{gemm_epilogue, grad_a, grad_b, plan, Epilogue};
use super::{sum_leading, Activation};
use crate::error::{Error, Result};
use crate::tape::{record_accumulating, SavedTensor};
use crate::tensor::{DType, Tensor};

/// x: [..., in], weight: [out, in], bias: [out] -> [..., out].
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear_with("linear", x, weight, bias, None, None)
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
    linear_with("linear_add", x, weight, bias, None, Some(residual))
}

/// `act(linear(x, weight, bias))`, the activation applied in the matmul's epilogue: a
/// feed-forward block's first Linear and its GELU in one pass (on GPUs; CPU adapters run the
/// two passes, see `KernelPolicy::fuse_activation`). The values before the
/// activation are kept for the backward (as f16 in mixed precision), which is
/// `act'(pre) * dy` (one elementwise pass) followed by the Linear's.
pub fn linear_act(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
) -> Result<Tensor> {
    if !x.gpu().fuses_activation() {
        return act.apply(&linear(x, weight, bias)?);
    }
    linear_with("linear_act", x, weight, bias, Some(act), None)
}

fn linear_with(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    act: Option<Activation>,
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
    let pre = match act {
        Some(_) => Some(Tensor::empty(x.gpu(), &out_shape)?),
        None => None,
    };
    let epilogue = Epilogue {
        bias,
        activation: act.zip(pre.as_ref()),
        residual,
    };
    let out = gemm_epilogue(x, weight, epilogue, g, None)?.reshape(&out_shape)?;
    let inputs: Vec<&Tensor> = [Some(x), Some(weight), bias, residual]
        .into_iter()
        .flatten()
        .collect();
    if !inputs.iter().any(|t| t.is_requires_grad()) || !crate::tape::is_recording() {
        return Ok(out);
    }
    // dW reads x (kept as f16 in mixed precision); dx reads only W, a parameter.
    let kept_x = SavedTensor::input_if(weight.is_requires_grad(), x)?;
    let kept_pre = match (act, &pre) {
        (Some(act), Some(pre)) => Some((act, SavedTensor::output(pre)?)),
        _ => None,
    };
    let (x_shape, x_needs_grad) = (x.shape().to_vec(), x.is_requires_grad());
    let (w2, has_bias, has_residual) = (weight.clone(), bias.is_some(), residual.is_some());
    // x's gradient takes in what x gathered from its other uses (the q, k and v projections
    // of one input, the branches around a residual) in the dx product's epilogue.
    Ok(record_accumulating(out, &inputs, move |d_out, gathered| {
        // Through the activation first: dy is the gradient of the matmul's output.
        let d_pre = match &kept_pre {
            Some((act, pre)) => Some(activation_backward(*act, &pre.get()?, d_out)?),
            None => None,
        };
        let dy = d_pre.as_ref().unwrap_or(d_out);
        let dx = match x_needs_grad {
            true => {
                let plus = gathered[0].take_if(|t| t.shape() == x_shape.as_slice());
                Some(grad_a(&x_shape, &w2, dy, g, plus.as_ref())?)
            }
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
            // Added after the activation: its gradient is the output's.
            grads.push(Some(d_out.clone()));
        }
        Ok(grads)
    }))
}
