//! The fused attention kernels: forward, then for the backward `backward_delta` and the dK/dV
//! and dQ passes, in one of three kernel families (`AttentionKernel`), each compiled per head
//! dim.

use super::{check, lens_storage, AttentionKernel, AttentionMask, Dims, COMMON, SPLIT_CHUNK, WG};
use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile};
use crate::ops::groups_for;
use crate::tape::{is_recording, record, SavedTensor};
use crate::tensor::{DType, Tensor};

use super::ATTENTION_HEAD_DIMS;

const TILED: ShaderFile = shader_file!("attention/tiled.wgsl");
const DELTA: ShaderFile = shader_file!("attention/delta.wgsl");
const ROWS: ShaderFile = shader_file!("attention/rows.wgsl");
const ROWS_FETCH_PORTABLE: ShaderFile = shader_file!("attention/rows_fetch_portable.wgsl");
const ROWS_FETCH_SUBGROUP: ShaderFile = shader_file!("attention/rows_fetch_subgroup.wgsl");
const SPLIT_KEYS: ShaderFile = shader_file!("attention/split_keys.wgsl");

/// Invocations per workgroup of the CPU-shaped kernels, and rows each invocation owns.
const ROWS_WG: u32 = 8;
const ROWS_PER_INVOCATION: usize = 8;

/// Rows of one block of the fused kernels (see the tiling comment in attention/tiled.wgsl): two
/// staged tiles of BLOCK x D floats fit in 16 KiB of workgroup memory.
fn block_rows(d: usize) -> u32 {
    (2048 / d).min(64) as u32
}

/// Invocations per workgroup of the `SplitKeys` kernels.
const SPLIT_WG: u32 = 32;

/// One pass of `variant` for head dim `d`: entry `tiled` of tiled.wgsl, or `rows` of
/// rows.wgsl with the portable row fetch, or `rows` + `_subgroup` with the subgroup one.
/// `SplitKeys` runs no pass of these families (its forward is `split_keys_kernels`, its
/// backward `backward_variant`'s), so `kernels` skips it; here it stands for `Tiled`.
fn pass_kernel(d: usize, variant: AttentionKernel, entries: [&'static str; 3]) -> Kernel {
    let dv = (d / 4) as u32;
    match variant {
        AttentionKernel::Tiled | AttentionKernel::SplitKeys => {
            Kernel::new(&[COMMON, TILED], entries[0])
                .define("DV", dv)
                .define("BLOCK", block_rows(d))
        }
        AttentionKernel::Rows => Kernel::new(&[COMMON, ROWS, ROWS_FETCH_PORTABLE], entries[1])
            .define("DV", dv)
            .define("ROWS_WG", ROWS_WG),
        AttentionKernel::RowsSubgroup => {
            Kernel::new(&[COMMON, ROWS, ROWS_FETCH_SUBGROUP], entries[2])
                .define("DV", dv)
                .define("ROWS_WG", ROWS_WG)
                .with_subgroups()
        }
    }
}

/// Buffers: o, lse, q, k, v, key_lens.
fn forward_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    let entries = ["forward", "forward_rows", "forward_rows_subgroup"];
    pass_kernel(d, variant, entries)
        .write(1)
        .write(2)
        .read(3)
        .read(4)
        .read(5)
        .read(6)
}

/// The two passes of `SplitKeys`. Buffers: the partials (output sums, then (m, l) pairs),
/// q, k, v, key_lens; then o, lse, the partials.
fn split_keys_kernels(d: usize) -> [Kernel; 2] {
    let kernel = |entry| {
        Kernel::new(&[COMMON, SPLIT_KEYS], entry)
            .define("DV", (d / 4) as u32)
            .define("CHUNK", SPLIT_CHUNK as u32)
            .define("WG", SPLIT_WG)
    };
    [
        kernel("split_keys_partial")
            .write(20)
            .write(21)
            .read(3)
            .read(4)
            .read(5)
            .read(6),
        kernel("split_keys_combine")
            .write(1)
            .write(2)
            .read(22)
            .read(23),
    ]
}

/// Buffers: lse / delta (delta is written), o, dO.
fn delta_kernel(d: usize) -> Kernel {
    Kernel::new(&[COMMON, DELTA], "backward_delta")
        .define("DV", (d / 4) as u32)
        .define("WG", WG)
        .write(7)
        .read(8)
        .read(9)
}

/// Buffers: dk, dv, then the backward's inputs q, k, v, key_lens, dO, lse / delta.
fn dkdv_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    let entries = [
        "backward_dkdv",
        "backward_dkdv_rows",
        "backward_dkdv_rows_subgroup",
    ];
    pass_kernel(d, variant, entries)
        .write(13)
        .write(14)
        .read(3)
        .read(4)
        .read(5)
        .read(6)
        .read(9)
        .read(10)
}

/// Buffers: dq, then the backward's inputs q, k, v, key_lens, dO, lse / delta.
fn dq_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    let entries = [
        "backward_dq",
        "backward_dq_rows",
        "backward_dq_rows_subgroup",
    ];
    pass_kernel(d, variant, entries)
        .write(12)
        .read(3)
        .read(4)
        .read(5)
        .read(6)
        .read(9)
        .read(10)
}

/// Whether the backward's widest kernel (dk, dv and six inputs: eight storage buffers, the
/// most WebGPU promises per shader stage) can be bound on `gpu`.
pub(super) fn backward_fits(gpu: &crate::gpu::Gpu) -> bool {
    let widest = dkdv_kernel(ATTENTION_HEAD_DIMS[0], AttentionKernel::Tiled);
    widest.bindings.len() <= gpu.max_storage_buffers()
}

pub(super) fn kernels() -> Vec<Kernel> {
    let mut k: Vec<Kernel> = ATTENTION_HEAD_DIMS
        .iter()
        .flat_map(|&d| {
            AttentionKernel::ALL
                .into_iter()
                .filter(|&v| v != AttentionKernel::SplitKeys)
                .flat_map(move |v| [forward_kernel(d, v), dkdv_kernel(d, v), dq_kernel(d, v)])
        })
        .collect();
    k.extend(ATTENTION_HEAD_DIMS.iter().map(|&d| delta_kernel(d)));
    k.extend(
        ATTENTION_HEAD_DIMS
            .iter()
            .flat_map(|&d| split_keys_kernels(d)),
    );
    k
}

impl AttentionKernel {
    /// The variant whose backward passes run after this forward: `SplitKeys` leaves lse as
    /// the others do, so any fused backward fits; it takes the adapter's row kernel.
    fn backward_variant(self, gpu: &crate::gpu::Gpu) -> AttentionKernel {
        match self {
            AttentionKernel::SplitKeys if gpu.is_cpu() => AttentionKernel::Rows,
            AttentionKernel::SplitKeys => AttentionKernel::Tiled,
            other => other,
        }
    }
}

impl Dims {
    /// Workgroups of `variant` over `rows` rows per (b, h): a block of rows per workgroup
    /// (`Tiled`) or per invocation (`Rows`).
    fn blocks(&self, rows: usize, variant: AttentionKernel) -> [u32; 3] {
        match variant {
            AttentionKernel::Tiled | AttentionKernel::SplitKeys => {
                let per_head = rows.div_ceil(block_rows(self.d) as usize);
                grid((self.b * self.h * per_head) as u32)
            }
            AttentionKernel::Rows => {
                let per_head = rows.div_ceil(ROWS_PER_INVOCATION);
                groups_for(self.b * self.h * per_head, ROWS_WG)
            }
            AttentionKernel::RowsSubgroup => {
                let per_head = rows.div_ceil(ROWS_PER_INVOCATION * ROWS_WG as usize);
                grid((self.b * self.h * per_head) as u32)
            }
        }
    }
}

/// Fused attention: softmax(q k^T / sqrt(D), masked) v.
///
/// q: [B, H, Tq, D], k and v: [B, H, Tk, D] -> [B, H, Tq, D]; D in [`ATTENTION_HEAD_DIMS`].
/// A query that sees no key (every key masked) gets a zero output and zero gradients.
/// Gradients to q, k and v are recorded on the tape.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttentionMask) -> Result<Tensor> {
    with_adapter_kernel("attention", [q, k, v], mask, false)
}

/// [`attention`] with the heads laid out token-major: q [B, Tq, H, D], k and v [B, Tk, H, D]
/// -> [B, Tq, H, D], so that a projection's output [B, T, H * D] is attended to as it is and
/// the output goes to the next projection as it is, with no permute either way. Same kernels
/// (`token_major` in their params).
pub fn attention_token_major(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
) -> Result<Tensor> {
    with_adapter_kernel("attention_token_major", [q, k, v], mask, true)
}

/// The fused attention through the kernel this adapter runs best for the shape.
fn with_adapter_kernel(
    op: &'static str,
    qkv: [&Tensor; 3],
    mask: &AttentionMask,
    token_major: bool,
) -> Result<Tensor> {
    let dims = check(op, qkv, mask, true, token_major)?;
    let variant = AttentionKernel::for_adapter(qkv[0].gpu(), dims.d, dims.tq, dims.tk);
    fused(dims, qkv, mask, variant)
}

/// [`attention`] through a chosen kernel variant (for tests and benchmarks); `token_major` as
/// in [`attention_token_major`].
pub fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    variant: AttentionKernel,
    token_major: bool,
) -> Result<Tensor> {
    let dims = check("attention", [q, k, v], mask, true, token_major)?;
    fused(dims, [q, k, v], mask, variant)
}

fn fused(
    dims: Dims,
    [q, k, v]: [&Tensor; 3],
    mask: &AttentionMask,
    variant: AttentionKernel,
) -> Result<Tensor> {
    let gpu = q.gpu();
    let out = Tensor::empty(gpu, q.shape())?;
    // lse, then room for the backward's delta (common.wgsl).
    let lse = Tensor::empty(gpu, &[2, dims.b, dims.h, dims.tq])?;
    if variant == AttentionKernel::SplitKeys {
        split_keys_forward(&dims, mask, [q, k, v], &out, &lse)?;
    } else {
        gpu.dispatch(
            &forward_kernel(dims.d, variant),
            &dims.params(mask),
            &[
                out.storage(),
                lse.storage(),
                q.storage(),
                k.storage(),
                v.storage(),
                lens_storage(mask, q),
            ],
            dims.blocks(dims.tq, variant),
        )?;
    }
    let needs_grad = [q, k, v].map(Tensor::is_requires_grad);
    if !is_recording() || !needs_grad.contains(&true) {
        return Ok(out);
    }
    let saved = Saved {
        dims,
        variant: variant.backward_variant(gpu),
        mask: mask.clone(),
        needs_grad,
        q: SavedTensor::input(q)?,
        k: SavedTensor::input(k)?,
        v: SavedTensor::input(v)?,
        o: SavedTensor::output(&out)?,
        lse,
    };
    Ok(record(out, &[q, k, v], move |d_o| saved.backward(d_o)))
}

/// The `SplitKeys` forward: partial sums per (query row, chunk of keys), then their
/// combination into `out` and `lse`.
fn split_keys_forward(
    dims: &Dims,
    mask: &AttentionMask,
    [q, k, v]: [&Tensor; 3],
    out: &Tensor,
    lse: &Tensor,
) -> Result<()> {
    let gpu = q.gpu();
    let rows = dims.b * dims.h * dims.tq;
    let pairs = rows * dims.tk.div_ceil(SPLIT_CHUNK);
    let sums = Tensor::empty(gpu, &[pairs, dims.d])?;
    let stats = Tensor::empty(gpu, &[pairs, 2])?;
    let params = dims.params(mask);
    let [partial, combine] = split_keys_kernels(dims.d);
    gpu.dispatch(
        &partial,
        &params,
        &[
            sums.storage(),
            stats.storage(),
            q.storage(),
            k.storage(),
            v.storage(),
            lens_storage(mask, q),
        ],
        groups_for(pairs, SPLIT_WG),
    )?;
    gpu.dispatch(
        &combine,
        &params,
        &[
            out.storage(),
            lse.storage(),
            sums.storage(),
            stats.storage(),
        ],
        groups_for(rows, SPLIT_WG),
    )
}

/// What the fused backward needs from the forward.
struct Saved {
    dims: Dims,
    variant: AttentionKernel,
    mask: AttentionMask,
    /// Whether q, k and v need gradients.
    needs_grad: [bool; 3],
    q: SavedTensor,
    k: SavedTensor,
    v: SavedTensor,
    o: SavedTensor,
    /// [2, B, H, Tq]: the logsumexp of each query's visible scores (0 for a fully masked
    /// query), then the backward's delta.
    lse: Tensor,
}

impl Saved {
    /// [dq, dk, dv] from dO: delta = rowsum(dO * O), then one dispatch for dK and dV (a
    /// workgroup per key block) and one for dQ (a workgroup per query block); each is skipped
    /// when no input it produces needs a gradient.
    fn backward(&self, d_o: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let Saved {
            dims,
            variant,
            mask,
            needs_grad: [q_needs, k_needs, v_needs],
            q,
            k,
            v,
            o,
            lse,
        } = self;
        let [q, k, v, o] = [q, k, v, o].map(SavedTensor::get);
        let (q, k, v, o) = (q?, k?, v?, o?);
        if d_o.shape() != o.shape() || d_o.dtype() != DType::F32 {
            return Err(Error::shape(
                "attention backward",
                format!("gradient {d_o:?} does not match output {o:?}"),
            ));
        }
        let gpu = d_o.gpu();
        let params = dims.params(mask);
        let lens = lens_storage(mask, &q);
        gpu.dispatch(
            &delta_kernel(dims.d),
            &params,
            &[lse.storage(), o.storage(), d_o.storage()],
            groups_for(dims.b * dims.h * dims.tq, WG),
        )?;
        let saved_inputs = [
            q.storage(),
            k.storage(),
            v.storage(),
            lens,
            d_o.storage(),
            lse.storage(),
        ];

        let (mut dk, mut dv) = (None, None);
        if *k_needs || *v_needs {
            let (gk, gv) = (
                Tensor::empty(gpu, k.shape())?,
                Tensor::empty(gpu, v.shape())?,
            );
            let mut bufs = vec![gk.storage(), gv.storage()];
            bufs.extend(saved_inputs);
            let groups = dims.blocks(dims.tk, *variant);
            gpu.dispatch(&dkdv_kernel(dims.d, *variant), &params, &bufs, groups)?;
            (dk, dv) = (Some(gk), Some(gv));
        }
        let mut dq = None;
        if *q_needs {
            let gq = Tensor::empty(gpu, q.shape())?;
            let mut bufs = vec![gq.storage()];
            bufs.extend(saved_inputs);
            let groups = dims.blocks(dims.tq, *variant);
            gpu.dispatch(&dq_kernel(dims.d, *variant), &params, &bufs, groups)?;
            dq = Some(gq);
        }
        Ok(vec![dq, dk, dv])
    }
}
