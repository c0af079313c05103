//! Scaled dot-product attention (`shaders/attention.wgsl`), with causal and key-length masks.
//!
//! - [`attention`]: the fused, FlashAttention-style kernel. The forward streams K/V tiles
//!   through workgroup memory with an online softmax and saves one logsumexp per query; the
//!   backward recomputes the probabilities from it. Neither ever writes the Tq x Tk scores to
//!   global memory. Compiled for the head dims in [`ATTENTION_HEAD_DIMS`].
//! - [`attention_unfused`]: `matmul_nt`, a masked softmax kernel, `matmul`, each with its own
//!   backward on the tape. Any head dim; materialises [B, H, Tq, Tk] twice. The baseline of the
//!   benchmark, and the way to get the attention weights.
//!
//! Both compute what `reference::attention::attention` computes (see there for the masks).

use super::{groups_for, matmul, matmul_nt};
use crate::error::{Error, Result};
use crate::gpu::{grid, Kernel, Storage};
use crate::tape::record;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

const SRC: &str = include_str!("../../shaders/attention.wgsl");
const FILE: &str = "attention.wgsl";

/// Head dims the fused kernel is compiled for (one variant each).
pub const ATTENTION_HEAD_DIMS: [usize; 4] = [16, 32, 64, 128];
/// Invocations per workgroup of the one-row-per-invocation kernels (delta, masked softmax).
const WG: u32 = 64;
/// Invocations per workgroup of the CPU-shaped kernels, and rows each invocation owns.
const ROWS_WG: u32 = 8;
const ROWS_PER_INVOCATION: usize = 8;

/// The kernels that can compute the fused attention. Both give the same result (up to f32
/// rounding); they differ in speed per adapter (benches/attention.rs measures them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttentionKernel {
    /// GPU style: a workgroup per block of rows, one row per invocation, the other side
    /// streamed through workgroup memory.
    Tiled,
    /// CPU style (lavapipe): 8 rows per invocation against blocks of 8, no workgroup memory
    /// and no barriers, scores as 4x4 matrix products in registers.
    Rows,
    /// `Rows` with the streamed side shared through the subgroup: the 8 lanes of a workgroup
    /// own 64 rows of one head and each loads one row of every block. Needs subgroups of at
    /// least 8 lanes ([`AttentionKernel::available`]).
    RowsSubgroup,
}

impl AttentionKernel {
    pub const ALL: [AttentionKernel; 3] = [
        AttentionKernel::Tiled,
        AttentionKernel::Rows,
        AttentionKernel::RowsSubgroup,
    ];

    /// Whether this adapter can run the variant for head dim `d`. `RowsSubgroup` needs
    /// subgroups of at least 8 lanes, and stops at D = 64: lavapipe's compiler takes ~18 s for
    /// its kernels at D = 32 and ~70 s at D = 64 (once per machine: Mesa caches the result on
    /// disk), about 4x per doubling, so D = 128 is left to `Rows`.
    pub fn available(self, gpu: &crate::gpu::Gpu, d: usize) -> bool {
        self != AttentionKernel::RowsSubgroup
            || (d <= 64 && gpu.has_subgroups() && gpu.inner().info.subgroup_min_size >= 8)
    }

    /// The kernel that measured fastest on this kind of adapter for head dim `d` and `tq`
    /// queries: `Tiled` on GPUs; on CPU adapters `RowsSubgroup` from 64 queries on (its 8
    /// lanes own 64 rows: with fewer, lanes idle, and one decoding query ran 1.5-1.8x slower
    /// than `Rows`) where it is available, else `Rows`.
    pub fn for_adapter(gpu: &crate::gpu::Gpu, d: usize, tq: usize) -> AttentionKernel {
        if gpu.inner().info.device_type != wgpu::DeviceType::Cpu {
            AttentionKernel::Tiled
        } else if tq >= 64 && AttentionKernel::RowsSubgroup.available(gpu, d) {
            AttentionKernel::RowsSubgroup
        } else {
            AttentionKernel::Rows
        }
    }

    /// Entry point of a pass in this variant.
    fn entry(self, tiled: &'static str, rows: &'static str, sg: &'static str) -> &'static str {
        match self {
            AttentionKernel::Tiled => tiled,
            AttentionKernel::Rows => rows,
            AttentionKernel::RowsSubgroup => sg,
        }
    }
}

/// Which keys each query may attend to.
#[derive(Clone, Debug, Default)]
pub struct AttentionMask {
    /// Key j is masked for query i when j > i + (Tk - Tq): aligned to the bottom-right corner,
    /// so the last query sees every key (incremental decoding with Tq = 1 sees them all).
    pub causal: bool,
    /// [B] u32: batch item b has `key_lens[b]` valid keys; the rest are padding.
    pub key_lens: Option<Tensor>,
}

impl AttentionMask {
    /// Every query sees every key.
    pub fn none() -> AttentionMask {
        AttentionMask::default()
    }

    /// The causal mask alone.
    pub fn causal() -> AttentionMask {
        AttentionMask {
            causal: true,
            key_lens: None,
        }
    }

    /// This mask with key padding from `lens` ([B] u32) added.
    pub fn with_key_lens(self, lens: Tensor) -> AttentionMask {
        AttentionMask {
            key_lens: Some(lens),
            ..self
        }
    }
}

/// Rows of one block of the fused kernels (see the tiling comment in attention.wgsl): two
/// staged tiles of BLOCK x D floats fit in 16 KiB of workgroup memory.
fn block_rows(d: usize) -> u32 {
    (2048 / d).min(64) as u32
}

/// Entry `entry` compiled for head dim `d`. The whole file is compiled for every entry, so each
/// needs all three constants.
fn kernel(entry: &'static str, d: usize) -> Kernel {
    // The subgroup kernels (entries `*_sg`) are compiled without the portable row fetch, the
    // others from the part before the subgroup section, so that they build on adapters
    // without subgroups.
    let subgroups = entry.ends_with("_sg");
    let source = match subgroups {
        true => subgroup_source(),
        false => &SRC[..section(SUBGROUP_SECTION)],
    };
    let k = Kernel::new(FILE, source, entry)
        .define("D", d as u32)
        .define("BLOCK", block_rows(d))
        .define("WG", WG)
        .define("ROWS_WG", ROWS_WG);
    if subgroups {
        k.with_subgroups()
    } else {
        k
    }
}

const PORTABLE_SECTION: &str = "// PORTABLE ROW FETCH";
const SUBGROUP_SECTION: &str = "// SUBGROUP KERNELS";

fn section(marker: &str) -> usize {
    SRC.find(marker).expect("attention.wgsl marks its sections")
}

/// The subgroup kernels' source: the file without its portable row fetch, which the subgroup
/// section replaces (the row-block kernel bodies call whichever fetch they are compiled with).
fn subgroup_source() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{}{}",
            &SRC[..section(PORTABLE_SECTION)],
            &SRC[section(SUBGROUP_SECTION)..]
        )
    })
}

fn forward_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    kernel(
        variant.entry("forward", "forward_rows", "forward_rows_sg"),
        d,
    )
    .write(1)
    .write(2)
    .read(3)
    .read(4)
    .read(5)
    .read(6)
}

fn delta_kernel(d: usize) -> Kernel {
    kernel("backward_delta", d).write(7).read(8).read(9)
}

fn dkdv_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    kernel(
        variant.entry(
            "backward_dkdv",
            "backward_dkdv_rows",
            "backward_dkdv_rows_sg",
        ),
        d,
    )
    .write(13)
    .write(14)
    .read(3)
    .read(4)
    .read(5)
    .read(6)
    .read(9)
    .read(10)
    .read(11)
}

fn dq_kernel(d: usize, variant: AttentionKernel) -> Kernel {
    kernel(
        variant.entry("backward_dq", "backward_dq_rows", "backward_dq_rows_sg"),
        d,
    )
    .write(12)
    .read(3)
    .read(4)
    .read(5)
    .read(6)
    .read(9)
    .read(10)
    .read(11)
}

/// The masked softmax does not depend on D; it is compiled once, with the smallest D's constants.
fn masked_softmax_kernel() -> Kernel {
    kernel("masked_softmax", ATTENTION_HEAD_DIMS[0])
        .write(15)
        .read(16)
        .read(6)
}

fn masked_softmax_backward_kernel() -> Kernel {
    kernel("masked_softmax_backward", ATTENTION_HEAD_DIMS[0])
        .write(17)
        .read(18)
        .read(19)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let mut k: Vec<Kernel> = ATTENTION_HEAD_DIMS
        .iter()
        .flat_map(|&d| {
            AttentionKernel::ALL
                .into_iter()
                .flat_map(move |v| [forward_kernel(d, v), dkdv_kernel(d, v), dq_kernel(d, v)])
        })
        .collect();
    k.extend(ATTENTION_HEAD_DIMS.iter().map(|&d| delta_kernel(d)));
    k.extend([masked_softmax_kernel(), masked_softmax_backward_kernel()]);
    k
}

/// `struct Params` of attention.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    heads: u32,
    tq: u32,
    tk: u32,
    /// 1: the bottom-right aligned causal mask.
    causal: u32,
    /// 1: `key_lens` holds each batch item's valid key count (else it is not read).
    has_lens: u32,
    /// 1 / sqrt(D).
    scale: f32,
}

/// The checked sizes of one attention call: q [b, h, tq, d], k and v [b, h, tk, d].
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Dims {
    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    fn params(&self, mask: &AttentionMask) -> Params {
        Params {
            batch: self.b as u32,
            heads: self.h as u32,
            tq: self.tq as u32,
            tk: self.tk as u32,
            causal: mask.causal as u32,
            has_lens: mask.key_lens.is_some() as u32,
            scale: self.scale(),
        }
    }

    /// Workgroups of `variant` over `rows` rows per (b, h): a block of rows per workgroup
    /// (`Tiled`) or per invocation (`Rows`).
    fn blocks(&self, rows: usize, variant: AttentionKernel) -> [u32; 3] {
        match variant {
            AttentionKernel::Tiled => {
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

/// Check shapes, dtypes and the mask. `fused` also requires a compiled head dim.
fn check(
    op: &'static str,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    fused: bool,
) -> Result<Dims> {
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        if t.dtype() != DType::F32 || t.dims() != 4 {
            return Err(Error::shape(
                op,
                format!("{name} must be f32 [B, H, T, D], got {t:?}"),
            ));
        }
    }
    let (sq, sk) = (q.shape(), k.shape());
    let dims = Dims {
        b: sq[0],
        h: sq[1],
        tq: sq[2],
        tk: sk[2],
        d: sq[3],
    };
    if sk[..2] != sq[..2] || sk[3] != dims.d {
        return Err(Error::shape(
            op,
            format!("k {sk:?} must be [B, H, Tk, D] with B, H, D of q {sq:?} ([B, H, Tq, D])"),
        ));
    }
    if v.shape() != sk {
        return Err(Error::shape(
            op,
            format!("v {:?} must have the shape of k {sk:?}", v.shape()),
        ));
    }
    if sq.contains(&0) || dims.tk == 0 {
        return Err(Error::shape(op, format!("empty dims: q {sq:?}, k {sk:?}")));
    }
    if fused && !ATTENTION_HEAD_DIMS.contains(&dims.d) {
        return Err(Error::shape(
            op,
            format!(
                "head dim D = {} is not compiled; the fused kernel supports D in {ATTENTION_HEAD_DIMS:?} \
                 (attention_unfused takes any D)",
                dims.d
            ),
        ));
    }
    if let Some(lens) = &mask.key_lens {
        if lens.dtype() != DType::U32 || lens.shape() != [dims.b] {
            return Err(Error::shape(
                op,
                format!("key_lens must be u32 [B] = [{}], got {lens:?}", dims.b),
            ));
        }
    }
    Ok(dims)
}

/// The buffer bound as `key_lens`. Without key lengths the kernels never read it (`has_lens`
/// is 0), so any read-only buffer of the call stands in and nothing is uploaded.
fn lens_storage<'a>(mask: &'a AttentionMask, stand_in: &'a Tensor) -> &'a Storage {
    mask.key_lens.as_ref().unwrap_or(stand_in).storage()
}

/// Fused attention: softmax(q k^T / sqrt(D), masked) v.
///
/// q: [B, H, Tq, D], k and v: [B, H, Tk, D] -> [B, H, Tq, D]; D in [`ATTENTION_HEAD_DIMS`].
/// A query that sees no key (every key masked) gets a zero output and zero gradients.
/// Gradients to q, k and v are recorded on the tape.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttentionMask) -> Result<Tensor> {
    // Shapes are checked by attention_with; here a malformed q just picks some variant.
    let dim = |i: usize| q.shape().get(i).copied().unwrap_or(0);
    let (tq, d) = (dim(2), dim(3));
    attention_with(q, k, v, mask, AttentionKernel::for_adapter(q.gpu(), d, tq))
}

/// [`attention`] through a chosen kernel variant (for tests and benchmarks).
pub fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    variant: AttentionKernel,
) -> Result<Tensor> {
    let dims = check("attention", q, k, v, mask, true)?;
    let gpu = q.gpu();
    let out = Tensor::empty(gpu, q.shape())?;
    let lse = Tensor::empty(gpu, &[dims.b, dims.h, dims.tq])?;
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
    let saved = Saved {
        dims,
        variant,
        mask: mask.clone(),
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        // A second node over the output's storage, not `out` itself: `out` owning a closure
        // that owns `out` would be a reference cycle.
        o: Tensor::from_storage(Arc::clone(&out.0.storage), out.shape().to_vec(), DType::F32),
        lse,
    };
    Ok(record(out, &[q, k, v], move |d_o| saved.backward(d_o)))
}

/// What the fused backward needs from the forward.
struct Saved {
    dims: Dims,
    variant: AttentionKernel,
    mask: AttentionMask,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    /// [B, H, Tq] logsumexp of each query's visible scores (0 for a fully masked query).
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
            q,
            k,
            v,
            o,
            lse,
        } = self;
        if d_o.shape() != o.shape() || d_o.dtype() != DType::F32 {
            return Err(Error::shape(
                "attention backward",
                format!("gradient {d_o:?} does not match output {o:?}"),
            ));
        }
        let gpu = d_o.gpu();
        let params = dims.params(mask);
        let lens = lens_storage(mask, q);
        let delta = Tensor::empty(gpu, &[dims.b, dims.h, dims.tq])?;
        gpu.dispatch(
            &delta_kernel(dims.d),
            &params,
            &[delta.storage(), o.storage(), d_o.storage()],
            groups_for(delta.numel(), WG),
        )?;
        let saved_inputs = [
            q.storage(),
            k.storage(),
            v.storage(),
            lens,
            d_o.storage(),
            lse.storage(),
            delta.storage(),
        ];

        let (mut dk, mut dv) = (None, None);
        if k.is_requires_grad() || v.is_requires_grad() {
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
        if q.is_requires_grad() {
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

/// Unfused attention: scores = q k^T (`matmul_nt`), probs = masked softmax of scores / sqrt(D),
/// out = probs v (`matmul`). Same inputs and result as [`attention`], for any head dim.
///
/// Returns `(out [B, H, Tq, D], probs [B, H, Tq, Tk])`, the probabilities only when
/// `return_weights` (they stay alive, and on the tape, as long as the caller holds them).
pub fn attention_unfused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    return_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let dims = check("attention_unfused", q, k, v, mask, false)?;
    let scores = matmul_nt(q, k)?; // [B, H, Tq, Tk]
    let probs = masked_softmax(&scores, dims, mask)?; // [B, H, Tq, Tk]
    let out = matmul(&probs, v)?; // [B, H, Tq, D]
    Ok((out, return_weights.then_some(probs)))
}

/// Softmax of `scale * scores` over the keys each query sees; masked entries are 0.
fn masked_softmax(scores: &Tensor, dims: Dims, mask: &AttentionMask) -> Result<Tensor> {
    let gpu = scores.gpu();
    let probs = Tensor::empty(gpu, scores.shape())?;
    let params = dims.params(mask);
    let rows = dims.b * dims.h * dims.tq;
    gpu.dispatch(
        &masked_softmax_kernel(),
        &params,
        &[
            probs.storage(),
            scores.storage(),
            lens_storage(mask, scores),
        ],
        groups_for(rows, WG),
    )?;
    // The backward reads the output through a second node (see `attention`).
    let y = Tensor::from_storage(
        Arc::clone(&probs.0.storage),
        probs.shape().to_vec(),
        DType::F32,
    );
    Ok(record(probs, &[scores], move |dy| {
        if dy.shape() != y.shape() {
            return Err(Error::shape(
                "masked softmax backward",
                format!(
                    "gradient {:?} does not match output {:?}",
                    dy.shape(),
                    y.shape()
                ),
            ));
        }
        let dscores = Tensor::empty(dy.gpu(), y.shape())?;
        dy.gpu().dispatch(
            &masked_softmax_backward_kernel(),
            &params,
            &[dscores.storage(), y.storage(), dy.storage()],
            groups_for(rows, WG),
        )?;
        Ok(vec![Some(dscores)])
    }))
}
