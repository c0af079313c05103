//! Sum / mean over one axis (`shaders/reduce.wgsl`). Backward: broadcast the gradient back
//! along the reduced axis (scaled by 1/len for the mean).

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, RowWidth, ShaderFile};
use crate::tape::record;
use crate::tensor::Tensor;

const SHADER: ShaderFile = shader_file!("reduce.wgsl");
const WG: u32 = 256;
/// Below this many outputs, a long reduction is split into chunks of rows summed in parallel
/// first (see reduce.wgsl); the partial sums then number about this many.
const PARALLEL_OUTPUTS: usize = 1 << 16;
/// Shortest chunk worth a partial sum.
const MIN_CHUNK: usize = 32;

/// `struct Params` of reduce.wgsl, field for field: x seen as [outer, len, inner].
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    outer: u32,
    len: u32,
    inner: u32,
    /// Factor applied to every output (1 / len for a mean).
    alpha: f32,
    /// Rows of `len` summed per output (`len` in one pass, fewer for partial sums).
    chunk: u32,
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(&[SHADER], entry)
        .define("WG", WG)
        .write(1)
        .read(2)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![
        kernel("sum_axis"),
        kernel("sum_axis_columns"),
        kernel("broadcast_axis"),
    ]
}

/// Outputs per workgroup of `sum_axis_columns` (`COLS` in reduce.wgsl).
const COLS: usize = 8;

/// View `shape` as [outer, len, inner] around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

fn launch(
    entry: &'static str,
    out: &Tensor,
    x: &Tensor,
    dims: (usize, usize, usize),
    alpha: f32,
    chunk: usize,
) -> Result<()> {
    let (outer, len, inner) = dims;
    let params = Params {
        outer: outer as u32,
        len: len as u32,
        inner: inner as u32,
        alpha,
        chunk: chunk.max(1) as u32,
    };
    out.gpu().dispatch(
        &kernel(entry),
        &params,
        &[out.storage(), x.storage()],
        groups_for(out.numel(), WG),
    )
}

/// Rows per partial sum for a reduction of `dims`: all of them (one pass) when there are
/// outputs enough to fill the device, else chunks that give about PARALLEL_OUTPUTS partials.
fn chunk_rows((outer, len, inner): (usize, usize, usize)) -> usize {
    let outputs = (outer * inner).max(1);
    let chunks = (PARALLEL_OUTPUTS / outputs).min(len / MIN_CHUNK);
    if chunks < 2 {
        len
    } else {
        len.div_ceil(chunks)
    }
}

fn reduce(x: &Tensor, axis: usize, mean: bool) -> Result<Tensor> {
    if axis >= x.dims() {
        return Err(Error::shape(
            "sum_axis",
            format!("axis {axis} out of range for {:?}", x.shape()),
        ));
    }
    let dims = split(x.shape(), axis);
    let alpha = if mean {
        1.0 / dims.1.max(1) as f32
    } else {
        1.0
    };
    let mut out_shape = x.shape().to_vec();
    out_shape.remove(axis);
    let out = Tensor::empty(x.gpu(), &out_shape)?;
    let (outer, len, inner) = dims;
    let chunk = chunk_rows(dims);
    let wide = super::row_width(x.gpu()) == RowWidth::Wide;
    if chunk < len && inner >= COLS && wide {
        // Few outputs over many rows, in one launch: a workgroup per COLS outputs. Not on CPU
        // adapters, where its barriers cost more than the second launch (BENCHMARKS.md).
        let params = Params {
            outer: outer as u32,
            len: len as u32,
            inner: inner as u32,
            alpha,
            chunk: len as u32,
        };
        let workgroups = outer * inner.div_ceil(COLS);
        x.gpu().dispatch(
            &kernel("sum_axis_columns"),
            &params,
            &[out.storage(), x.storage()],
            crate::gpu::grid(workgroups as u32),
        )?;
    } else if chunk < len {
        let chunks = len.div_ceil(chunk);
        let partial = Tensor::empty(x.gpu(), &[outer, chunks, inner])?;
        launch("sum_axis", &partial, x, dims, 1.0, chunk)?;
        launch(
            "sum_axis",
            &out,
            &partial,
            (outer, chunks, inner),
            alpha,
            chunks,
        )?;
    } else {
        launch("sum_axis", &out, x, dims, alpha, len)?;
    }
    let in_shape = x.shape().to_vec();
    Ok(record(out, &[x], move |g| {
        Ok(vec![Some(broadcast_axis(g, &in_shape, axis, alpha)?)])
    }))
}

/// Sum over `axis` (removed from the shape).
pub fn sum_axis(x: &Tensor, axis: usize) -> Result<Tensor> {
    reduce(x, axis, false)
}

/// Mean over `axis` (removed from the shape).
pub fn mean_axis(x: &Tensor, axis: usize) -> Result<Tensor> {
    reduce(x, axis, true)
}

/// Sum `x` over its leading rows, seen as [numel / m, m] -> [m] (the gradient of a bias).
pub fn sum_leading(x: &Tensor, m: usize) -> Result<Tensor> {
    if m == 0 || !x.numel().is_multiple_of(m) {
        return Err(Error::shape(
            "sum_leading",
            format!("{:?} is not rows of {m}", x.shape()),
        ));
    }
    sum_axis(&x.reshape(&[x.numel() / m, m])?, 0)
}

/// Repeat `g` (shape = `shape` without `axis`) along `axis`, times `alpha`.
pub fn broadcast_axis(g: &Tensor, shape: &[usize], axis: usize, alpha: f32) -> Result<Tensor> {
    let dims = split(shape, axis);
    if g.numel() != dims.0 * dims.2 {
        return Err(Error::shape(
            "broadcast_axis",
            format!(
                "{:?} does not match {shape:?} without axis {axis}",
                g.shape()
            ),
        ));
    }
    let out = Tensor::empty(g.gpu(), shape)?;
    launch("broadcast_axis", &out, g, dims, alpha, dims.1)?;
    Ok(record(out, &[g], move |gg| {
        let s = sum_axis(gg, axis)?;
        Ok(vec![Some(if alpha == 1.0 {
            s
        } else {
            super::scale(&s, alpha)?
        })])
    }))
}
