//! Batched matrix multiply with transpose flags and a shared right operand, its backward, and
//! the kernel variants that compute it (`shaders/matmul/`).
//!
//! Shapes: `a` is `[..batch, M, K]` (`[..batch, K, M]` when `trans_a`), `b` is `[K, N]` shared by
//! every batch (a weight) or `[..batch, K, N]` (`[N, K]` / `[..batch, N, K]` when `trans_b`); the
//! result is `[..batch, M, N]`. Backward: dA = dC @ op(B)^T and dB = op(A)^T @ dC, each laid
//! out like its input, written with the transpose flags instead of explicit transposes.
//!
//! - `gemm.rs`: one product planned and launched (packing, split K, the kernels' bindings);
//! - `variant.rs`: which kernel computes it (per adapter, tuned, or forced).

mod gemm;
mod variant;

use crate::gpu::MatmulVariant;
pub(crate) use gemm::{gemm_epilogue, kernels, plan, Epilogue, Gemm};

use crate::error::Result;
use crate::tape::{record, SavedTensor};
use crate::tensor::Tensor;
use gemm::gemm;

/// `a @ b`: a is [..batch, M, K], b is [K, N] (shared) or [..batch, K, N]. Output [..batch, M, N].
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    forward("matmul", a, b, false, false)
}

/// `a @ b^T`: b stored as [N, K] (a PyTorch Linear weight) or [..batch, N, K].
pub fn matmul_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    forward("matmul_nt", a, b, false, true)
}

/// `op(a) @ op(b)`, where `trans_a` means a is stored [..batch, K, M] and `trans_b` means b is
/// stored [N, K] / [..batch, N, K].
pub fn matmul_ex(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    forward("matmul_ex", a, b, trans_a, trans_b)
}

/// The forward with an explicit kernel variant, no gradient recorded (tests and benchmarks).
pub fn matmul_variant(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    v: MatmulVariant,
) -> Result<Tensor> {
    let (g, out_shape) = plan("matmul_variant", a, b, trans_a, trans_b)?;
    gemm(a, b, g, Some(v))?.reshape(&out_shape)
}

fn forward(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    let (g, out_shape) = plan(op, a, b, trans_a, trans_b)?;
    let out = gemm(a, b, g, None)?.reshape(&out_shape)?;
    // dA reads B and dB reads A: each operand is kept for the other's gradient only.
    let kept_b = SavedTensor::input_if(a.is_requires_grad(), b)?;
    let kept_a = SavedTensor::input_if(b.is_requires_grad(), a)?;
    let (a_shape, b_shape) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(record(out, &[a, b], move |dc| {
        let da = match &kept_b {
            Some(b) => Some(grad_a(&a_shape, &b.get()?, dc, g, None)?),
            None => None,
        };
        let db = match &kept_a {
            Some(a) => Some(grad_b(&a.get()?, &b_shape, dc, g)?),
            None => None,
        };
        Ok(vec![da, db])
    }))
}

/// dA in the layout of A: dC @ op(B)^T, or its transpose op(B) @ dC^T when A is stored [K, M].
/// `plus` (shaped like A: a gradient A gathered from its other uses) is added in the epilogue.
pub(crate) fn grad_a(
    a_shape: &[usize],
    b: &Tensor,
    dc: &Tensor,
    g: Gemm,
    plus: Option<&Tensor>,
) -> Result<Tensor> {
    let epilogue = Epilogue {
        residual: plus,
        ..Epilogue::default()
    };
    let Gemm {
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        b_batched,
        ..
    } = g;
    let da = if trans_a {
        // [K, M] = op(B) [K, N] @ dC^T [N, M]; dC is [M, N] stored, read transposed.
        let g = Gemm {
            batch,
            m: k,
            k: n,
            n: m,
            trans_a: trans_b,
            trans_b: true,
            a_batched: b_batched,
            b_batched: true,
        };
        gemm_epilogue(b, dc, epilogue, g, None)?
    } else {
        // [M, K] = dC [M, N] @ op(B)^T [N, K]; op(B)^T is B read with the opposite flag.
        let g = Gemm {
            batch,
            m,
            k: n,
            n: k,
            trans_a: false,
            trans_b: !trans_b,
            a_batched: true,
            b_batched,
        };
        gemm_epilogue(dc, b, epilogue, g, None)?
    };
    da.reshape(a_shape)
}

/// dB in the layout of B: op(A)^T @ dC, or its transpose dC^T @ op(A) when B is stored [N, K];
/// summed over the batch when B is shared.
pub(crate) fn grad_b(a: &Tensor, b_shape: &[usize], dc: &Tensor, g: Gemm) -> Result<Tensor> {
    let Gemm {
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        b_batched,
        ..
    } = g;
    // A shared B sees every batch; when A is row-major the batch folds into the reduced dim:
    // A is then one [batch * M, K] matrix and dC one [batch * M, N].
    let fold = !b_batched && !trans_a;
    let (batch, m) = if fold { (1, batch * m) } else { (batch, m) };
    let db = if trans_b {
        // [N, K] = dC^T [N, M] @ op(A) [M, K].
        let g = Gemm {
            batch,
            m: n,
            k: m,
            n: k,
            trans_a: true,
            trans_b: trans_a,
            a_batched: true,
            b_batched: true,
        };
        gemm(dc, a, g, None)?
    } else {
        // [K, N] = op(A)^T [K, M] @ dC [M, N].
        let g = Gemm {
            batch,
            m: k,
            k: m,
            n,
            trans_a: !trans_a,
            trans_b: false,
            a_batched: true,
            b_batched: true,
        };
        gemm(a, dc, g, None)?
    };
    if !b_batched && batch > 1 {
        // A stored [K, M] per batch cannot fold: sum the per-batch gradients.
        let per_batch = db.reshape(&[batch, b_shape.iter().product()])?;
        return crate::ops::sum_axis(&per_batch, 0)?.reshape(b_shape);
    }
    db.reshape(b_shape)
}
