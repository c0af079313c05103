//! Embedding lookup (`shaders/embedding.wgsl`): gather rows of a [vocab, dim] table by id.
//! Backward: a deterministic scatter-add into the table's gradient, built from a stable
//! counting sort of the positions by id (no float atomics; see the shader's header).

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("embedding.wgsl");
const WG: u32 = 256;

/// `struct Params` of embedding.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Ids (positions).
    n: u32,
    /// Rows of the table.
    vocab: u32,
    /// Columns of the table.
    dim: u32,
}

fn gather_kernel() -> Kernel {
    Kernel::new(&[SHADER], "gather")
        .define("WG", WG)
        .write(1)
        .read(2)
        .read(3)
}

fn sort_kernel() -> Kernel {
    Kernel::new(&[SHADER], "sort_positions")
        .define("WG", WG)
        .read(3)
        .write(4)
        .write(5)
}

fn accumulate_kernel() -> Kernel {
    Kernel::new(&[SHADER], "accumulate")
        .define("WG", WG)
        .write(6)
        .read(7)
        .write(4)
        .write(5)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![gather_kernel(), sort_kernel(), accumulate_kernel()]
}

/// `table[ids]`: table [vocab, dim] f32, ids [...] u32 -> [..., dim]. An id >= vocab gives a
/// row of zeros (and no gradient) rather than reading outside the table.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if table.dtype() != DType::F32 || table.dims() != 2 {
        return Err(Error::shape(
            "embedding",
            format!("table must be [vocab, dim] f32, got {table:?}"),
        ));
    }
    if ids.dtype() != DType::U32 {
        return Err(Error::shape(
            "embedding",
            format!("ids must be u32, got {ids:?}"),
        ));
    }
    let (vocab, dim) = (table.shape()[0], table.shape()[1]);
    let mut out_shape = ids.shape().to_vec();
    out_shape.push(dim);
    let out = Tensor::empty(table.gpu(), &out_shape)?; // [..., dim]
    let params = Params {
        n: ids.numel() as u32,
        vocab: vocab as u32,
        dim: dim as u32,
    };
    let buffers = [out.storage(), table.storage(), ids.storage()];
    out.gpu().dispatch(
        &gather_kernel(),
        &params,
        &buffers,
        groups_for(out.numel(), WG),
    )?;
    let ids = ids.clone();
    Ok(record(out, &[table], move |g| {
        Ok(vec![Some(embedding_backward(g, &ids, vocab, dim)?)])
    }))
}

/// Rows `idx` ([n] u32) of `t` along its first axis: [B, ...] -> [n, ...], `t` viewed as an
/// embedding table of B rows (a cache re-ordered for beam search).
pub fn gather_rows(t: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let shape = t.shape().to_vec();
    let rest: usize = shape[1..].iter().product();
    let rows = embedding(&t.reshape(&[shape[0], rest])?, idx)?;
    let mut new_shape = shape;
    new_shape[0] = idx.numel();
    rows.reshape(&new_shape)
}

/// d table [vocab, dim] from d out [..., dim]: row v sums the gradient rows of every position
/// whose id is v, in position order.
pub(crate) fn embedding_backward(
    dout: &Tensor,
    ids: &Tensor,
    vocab: usize,
    dim: usize,
) -> Result<Tensor> {
    let gpu = dout.gpu();
    let n = ids.numel();
    let params = Params {
        n: n as u32,
        vocab: vocab as u32,
        dim: dim as u32,
    };
    // Scratch for the sort, read by `accumulate` later in the same batch: dropping them
    // returns them to the pool, whose later compute users run after these dispatches.
    let order = gpu.alloc(n)?; // [n] positions grouped by id
    let ends = gpu.alloc(vocab)?; // [vocab] end of each id's run in `order`
    gpu.dispatch(
        &sort_kernel(),
        &params,
        &[ids.storage(), &order, &ends],
        [1, 1, 1],
    )?;
    let dtable = Tensor::empty(gpu, &[vocab, dim])?;
    let buffers = [dtable.storage(), dout.storage(), &order, &ends];
    gpu.dispatch(
        &accumulate_kernel(),
        &params,
        &buffers,
        groups_for(vocab * dim, WG),
    )?;
    Ok(dtable)
}
