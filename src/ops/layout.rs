//! Data-movement ops (`shaders/layout.wgsl`): permute / transpose, concat and slice, each
//! producing a contiguous tensor. They move 32-bit words, so they work on f32 values and u32
//! ids alike. Backward: permute by the inverse permutation; concat slices the gradient back to
//! each part; slice places the gradient in a zero tensor of the input's shape.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Kernel, ShaderFile, Storage};
use crate::tape::record;
use crate::tensor::{numel, DType, Tensor};
use std::sync::Arc;

const SHADER: ShaderFile = shader_file!("layout.wgsl");
const WG: u32 = 256;
/// Axes the permute kernel indexes, after size-1 axes are dropped and adjacent ones merged.
const MAX_RANK: usize = 6;

/// `entry` moving `width` (1 or 4) elements per invocation (see `Word` in layout.wgsl).
fn kernel(entry: &'static str, width: usize) -> Kernel {
    let word = match width {
        4 => "vec4<u32>",
        _ => "u32",
    };
    let k = Kernel::new(&[SHADER], entry)
        .define("WG", WG)
        .define("WIDTH", width as u32)
        .alias("Word", word)
        .write(1)
        .read(2);
    match entry {
        "concat_pair" => k.read(3),
        "gather_concat" => k.read(3).read(4),
        _ => k,
    }
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let entries = [
        "permute",
        "slice_window",
        "concat_part",
        "concat_pair",
        "gather_concat",
        "slice_backward",
    ];
    [1, 4]
        .into_iter()
        .flat_map(|width| entries.map(|e| kernel(e, width)))
        .collect()
}

/// `struct Params` of layout.wgsl, field for field: `shape` is its s0 .. s5, `steps` its
/// t0 .. t5, `window` its last four fields.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements (of `Word`) written by the dispatch.
    n: u32,
    /// permute: the output shape, outermost first.
    shape: [u32; MAX_RANK],
    /// permute: the input stride of a step along each output axis.
    steps: [u32; MAX_RANK],
    window: Window,
    /// gather_concat: outer blocks (of the window view) per gathered row.
    group: u32,
}

/// A window along one axis: the big tensor is [outer, full, inner], the window
/// [outer, len, inner] starting at `start`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Window {
    full: u32,
    len: u32,
    inner: u32,
    start: u32,
}

impl Window {
    fn new(shape: &[usize], axis: usize, start: usize, len: usize) -> Window {
        Window {
            full: shape[axis] as u32,
            len: len as u32,
            inner: shape[axis + 1..].iter().product::<usize>() as u32,
            start: start as u32,
        }
    }
}

/// `entry` on (out, x), wide where the window's inner runs are whole vec4.
fn launch(entry: &'static str, out: &Tensor, x: &Tensor, p: &Params) -> Result<()> {
    let (p, width) = widened(p);
    dispatch(&kernel(entry, width), &[out.storage(), x.storage()], &p)
}

/// A window op's parameters counted in vec4 where every run along the inner axes is whole
/// vec4, with the width to launch.
fn widened(p: &Params) -> (Params, usize) {
    let w = p.window;
    if !w.inner.is_multiple_of(4) || !p.n.is_multiple_of(4) {
        return (*p, 1);
    }
    let p = Params {
        n: p.n / 4,
        window: Window {
            inner: w.inner / 4,
            ..w
        },
        ..*p
    };
    (p, 4)
}

fn dispatch(k: &Kernel, buffers: &[&Storage], p: &Params) -> Result<()> {
    buffers[0]
        .gpu()
        .dispatch(k, p, buffers, groups_for(p.n as usize, WG))
}

/// Uninitialised output of `dtype` (the kernels write every element).
fn output(like: &Tensor, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let storage = like.gpu().alloc(numel(shape))?;
    Ok(Tensor::from_storage(
        Arc::new(storage),
        shape.to_vec(),
        dtype,
    ))
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The fewest axes that describe the same gather: size-1 axes vanish, and an output axis
/// merges into the one before it when the input holds the two adjacent too.
fn collapse(shape: &[usize], steps: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut dims, mut st): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (&d, &s) in shape.iter().zip(steps) {
        if d == 1 {
            continue;
        }
        match (dims.last_mut(), st.last_mut()) {
            (Some(prev), Some(prev_step)) if *prev_step == s * d => {
                *prev *= d;
                *prev_step = s;
            }
            _ => {
                dims.push(d);
                st.push(s);
            }
        }
    }
    (dims, st)
}

/// Reorder the axes: output axis i is input axis `perm[i]`, so the output shape is
/// `[shape[perm[0]], shape[perm[1]], ...]`. Any rank whose permutation still needs more than
/// 6 axes after merging adjacent ones is an error.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let shape = x.shape();
    let mut seen = vec![false; shape.len()];
    let valid = perm.len() == shape.len()
        && perm
            .iter()
            .all(|&a| a < seen.len() && !std::mem::replace(&mut seen[a], true));
    if !valid {
        return Err(Error::shape(
            "permute",
            format!(
                "{perm:?} is not a permutation of the {} axes of {shape:?}",
                shape.len()
            ),
        ));
    }
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let in_strides = strides(shape);
    let steps: Vec<usize> = perm.iter().map(|&a| in_strides[a]).collect();
    let (dims, steps) = collapse(&out_shape, &steps);
    if dims.len() <= 1 {
        // The data is already in output order: a view, whose backward reshapes back.
        return x.reshape(&out_shape);
    }
    if dims.len() > MAX_RANK {
        return Err(Error::shape(
            "permute",
            format!(
                "{perm:?} of {shape:?} needs {} axes, the kernel indexes {MAX_RANK}",
                dims.len()
            ),
        ));
    }
    // Whole vec4 runs along an innermost axis that stays innermost: move vec4s.
    let by4 = steps[steps.len() - 1] == 1
        && dims[dims.len() - 1] % 4 == 0
        && steps[..steps.len() - 1].iter().all(|s| s % 4 == 0);
    let (dims, steps, width) = match by4 {
        true => {
            let mut dims = dims;
            *dims.last_mut().unwrap() /= 4;
            let mut steps: Vec<usize> = steps.iter().map(|s| s / 4).collect();
            *steps.last_mut().unwrap() = 1;
            (dims, steps, 4)
        }
        false => (dims, steps, 1),
    };
    let mut p = Params {
        n: (x.numel() / width) as u32,
        shape: [1; MAX_RANK],
        ..Params::default()
    };
    let pad = MAX_RANK - dims.len();
    for (i, (&d, &s)) in dims.iter().zip(&steps).enumerate() {
        p.shape[pad + i] = d as u32;
        p.steps[pad + i] = s as u32;
    }
    let out = output(x, &out_shape, x.dtype())?;
    dispatch(&kernel("permute", width), &[out.storage(), x.storage()], &p)?;
    let mut inverse = vec![0; perm.len()];
    for (i, &a) in perm.iter().enumerate() {
        inverse[a] = i;
    }
    Ok(record(out, &[x], move |g| {
        Ok(vec![Some(permute(g, &inverse)?)])
    }))
}

/// Swap two axes.
pub fn transpose(x: &Tensor, dim0: usize, dim1: usize) -> Result<Tensor> {
    if dim0 >= x.dims() || dim1 >= x.dims() {
        return Err(Error::shape(
            "transpose",
            format!("axes {dim0} and {dim1} out of range for {:?}", x.shape()),
        ));
    }
    let mut perm: Vec<usize> = (0..x.dims()).collect();
    perm.swap(dim0, dim1);
    permute(x, &perm)
}

/// Join `parts` along `axis`; every other axis must agree. One dispatch for two parts (the
/// common case: a cache growing by a step), else one per part.
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        return Err(Error::shape("concat", "no parts to join"));
    };
    if axis >= first.dims() {
        return Err(Error::shape(
            "concat",
            format!("axis {axis} out of range for {:?}", first.shape()),
        ));
    }
    for part in parts {
        let same_off_axis = part.dims() == first.dims()
            && (0..first.dims()).all(|a| a == axis || part.shape()[a] == first.shape()[a]);
        if !same_off_axis || part.dtype() != first.dtype() {
            return Err(Error::shape(
                "concat",
                format!("{part:?} does not match {first:?} off axis {axis}"),
            ));
        }
    }
    let mut out_shape = first.shape().to_vec();
    out_shape[axis] = parts.iter().map(|t| t.shape()[axis]).sum();
    let out = output(first, &out_shape, first.dtype())?;
    let mut windows = Vec::with_capacity(parts.len());
    let mut start = 0;
    for part in parts {
        let len = part.shape()[axis];
        let window = Window::new(&out_shape, axis, start, len);
        if parts.len() != 2 {
            let p = Params {
                n: part.numel() as u32,
                window,
                ..Params::default()
            };
            launch("concat_part", &out, part, &p)?;
        }
        windows.push((start, len, part.is_requires_grad()));
        start += len;
    }
    if let [x, y] = parts {
        let p = Params {
            n: out.numel() as u32,
            window: Window::new(&out_shape, axis, 0, x.shape()[axis]),
            ..Params::default()
        };
        let (p, width) = widened(&p);
        dispatch(
            &kernel("concat_pair", width),
            &[out.storage(), x.storage(), y.storage()],
            &p,
        )?;
    }
    Ok(record(out, parts, move |g| {
        windows
            .iter()
            .map(|&(start, len, wanted)| wanted.then(|| slice(g, axis, start, len)).transpose())
            .collect()
    }))
}

/// `concat([x's rows in the order `rows`, y], axis)` in one dispatch: row r of the result's
/// first part is row `rows[r]` of x (along axis 0; rows may repeat or be left out). A decoding
/// cache [B, H, T, Dh] after beam search re-ranked its sequences, growing by a step y
/// [B', H, 1, Dh] already in the new order, with `rows` of length B'. `axis` is not 0, and
/// every axis but 0 and `axis` agrees between x and y. Backward: y's gradient is its window;
/// x's row i sums the gradients of every output row that took it (the embedding's
/// scatter-add).
pub fn gather_concat(x: &Tensor, rows: &[u32], y: &Tensor, axis: usize) -> Result<Tensor> {
    let fits = axis > 0
        && axis < x.dims()
        && y.dims() == x.dims()
        && y.dtype() == x.dtype()
        && y.shape()[0] == rows.len()
        && (1..x.dims()).all(|a| a == axis || x.shape()[a] == y.shape()[a]);
    if !fits {
        return Err(Error::shape(
            "gather_concat",
            format!(
                "{} rows of {x:?} joined with {y:?} along axis {axis}: expected y's first axis \
                 to be the number of rows, the other axes but {axis} (> 0) to match",
                rows.len()
            ),
        ));
    }
    let rows_in = x.shape()[0];
    if let Some(bad) = rows.iter().find(|&&r| r as usize >= rows_in) {
        return Err(Error::shape(
            "gather_concat",
            format!("row {bad} of {x:?}, which has {rows_in}"),
        ));
    }
    let mut out_shape = y.shape().to_vec();
    out_shape[axis] += x.shape()[axis];
    let out = output(x, &out_shape, x.dtype())?;
    let idx = Tensor::from_u32(x.gpu(), rows, &[rows.len()])?;
    let p = Params {
        n: out.numel() as u32,
        window: Window::new(&out_shape, axis, 0, x.shape()[axis]),
        group: out_shape[1..axis].iter().product::<usize>() as u32,
        ..Params::default()
    };
    let (p, width) = widened(&p);
    dispatch(
        &kernel("gather_concat", width),
        &[out.storage(), x.storage(), y.storage(), idx.storage()],
        &p,
    )?;
    let (x_shape, x_len, y_len) = (x.shape().to_vec(), x.shape()[axis], y.shape()[axis]);
    let wanted = [x.is_requires_grad(), y.is_requires_grad()];
    Ok(record(out, &[x, y], move |g| {
        let dx = || -> Result<Tensor> {
            let gathered = slice(g, axis, 0, x_len)?;
            let per_row: usize = gathered.shape()[1..].iter().product();
            let d = gathered.reshape(&[idx.numel(), per_row])?;
            super::embedding::embedding_backward(&d, &idx, rows_in, per_row)?.reshape(&x_shape)
        };
        Ok(vec![
            wanted[0].then(dx).transpose()?,
            wanted[1]
                .then(|| slice(g, axis, x_len, y_len))
                .transpose()?,
        ])
    }))
}

/// Elements `start..start + len` along `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    if axis >= shape.len() {
        return Err(Error::shape(
            "slice",
            format!("axis {axis} out of range for {shape:?}"),
        ));
    }
    if start.checked_add(len).is_none_or(|end| end > shape[axis]) {
        return Err(Error::shape(
            "slice",
            format!("{start}..{start}+{len} exceeds axis {axis} of {shape:?}"),
        ));
    }
    let mut out_shape = shape.clone();
    out_shape[axis] = len;
    let window = Window::new(&shape, axis, start, len);
    let out = output(x, &out_shape, x.dtype())?;
    let p = Params {
        n: out.numel() as u32,
        window,
        ..Params::default()
    };
    launch("slice_window", &out, x, &p)?;
    Ok(record(out, &[x], move |g| {
        // d x = the gradient in the window, zero elsewhere: one dispatch writes all of it.
        let dx = output(g, &shape, g.dtype())?;
        let p = Params {
            n: dx.numel() as u32,
            window,
            ..Params::default()
        };
        launch("slice_backward", &dx, g, &p)?;
        Ok(vec![Some(dx)])
    }))
}
