//! Scaled dot-product attention (`shaders/attention/`), with causal and key-length masks.
//!
//! - [`attention`] (`fused.rs`): the fused, FlashAttention-style kernels. The forward streams
//!   K/V rows with an online softmax and saves one logsumexp per query; the backward
//!   recomputes the probabilities from it. Neither ever writes the Tq x Tk scores to global
//!   memory. Compiled for the head dims in [`ATTENTION_HEAD_DIMS`], in the kernel families of
//!   [`AttentionKernel`].
//! - [`attention_unfused`] (`unfused.rs`): `matmul_nt`, a masked softmax kernel, `matmul`, each
//!   with its own backward on the tape. Any head dim; materialises [B, H, Tq, Tk] twice. The
//!   baseline of the benchmark, and the way to get the attention weights.
//!
//! Both compute what `reference::attention::attention` computes (see there for the masks).

mod fused;
mod unfused;

pub use fused::{attention, attention_token_major, attention_with};
pub use unfused::attention_unfused;

use crate::error::{Error, Result};
use crate::gpu::{shader_file, AttentionPath, Gpu, Kernel, ShaderFile, Storage};
use crate::tensor::{DType, Tensor};

/// Params, masks and the shared helpers of every attention kernel.
const COMMON: ShaderFile = shader_file!("attention/common.wgsl");

/// Head dims the fused kernel is compiled for (one variant each).
pub const ATTENTION_HEAD_DIMS: [usize; 4] = [16, 32, 64, 128];
/// Invocations per workgroup of the one-row-per-invocation kernels (delta, masked softmax).
const WG: u32 = 64;
/// Keys per chunk of the `SplitKeys` kernel.
const SPLIT_CHUNK: usize = 32;
/// Query rows per batch item of a decoding step: one per sequence, or the beams of one
/// utterance sharing its memory (`MultiHeadAttention::forward_cross_cached`) up to this many.
/// They take the fused kernels (`SplitKeys` against many keys) without tuning.
const DECODING_QUERIES: usize = 8;

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
    /// Forward only, for few queries against many keys (decoding): every (query, chunk of
    /// keys) is an invocation, the chunks combined in a second pass (attention/split_keys.wgsl).
    /// Its backward is the adapter's `Rows` or `Tiled` backward.
    SplitKeys,
}

impl AttentionKernel {
    pub const ALL: [AttentionKernel; 4] = [
        AttentionKernel::Tiled,
        AttentionKernel::Rows,
        AttentionKernel::RowsSubgroup,
        AttentionKernel::SplitKeys,
    ];

    /// Whether this adapter can run the variant for head dim `d`. `RowsSubgroup` needs
    /// subgroups of at least 8 lanes, and stops at D = 64: lavapipe's compiler takes ~18 s for
    /// its kernels at D = 32 and ~70 s at D = 64 (once per machine: Mesa caches the result on
    /// disk), about 4x per doubling, so D = 128 is left to `Rows`.
    pub fn available(self, gpu: &crate::gpu::Gpu, d: usize) -> bool {
        self != AttentionKernel::RowsSubgroup || (d <= 64 && gpu.has_subgroups_of(8))
    }

    /// The kernel that measured fastest on this kind of adapter for head dim `d`, `tq`
    /// queries and `tk` keys: `SplitKeys` for a decoding step's few queries against more
    /// than two of its chunks of keys (Whisper tiny.en's decoder on lavapipe, 4
    /// cross-attentions over 1,500 frames: 41-43 ms per token against 52-54 with `Rows`),
    /// and on CPU adapters against any number of keys: lavapipe compiles its two kernels in
    /// well under a second, `Rows`' forward in ~6.5 s (D = 64), which a one-shot call would
    /// wait for, and over a few keys either is quick; else `Tiled` on GPUs; on CPU adapters
    /// `RowsSubgroup` from 64 queries on (its 8 lanes own 64 rows: with fewer, lanes idle,
    /// and one decoding query ran 1.5-1.8x slower than `Rows`) where it is available, else
    /// `Rows`.
    pub fn for_adapter(gpu: &crate::gpu::Gpu, d: usize, tq: usize, tk: usize) -> AttentionKernel {
        if tq <= DECODING_QUERIES && (tk > 2 * SPLIT_CHUNK || gpu.is_cpu()) {
            AttentionKernel::SplitKeys
        } else if !gpu.is_cpu() {
            AttentionKernel::Tiled
        } else if tq >= 64 && AttentionKernel::RowsSubgroup.available(gpu, d) {
            AttentionKernel::RowsSubgroup
        } else {
            AttentionKernel::Rows
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

/// softmax(q k^T / sqrt(D), masked) v through the path the device's policy picks
/// (`KernelPolicy::attention`): [`attention`] (fused) or [`attention_unfused`]. `Auto` takes
/// the tuning cache's choice for the shape class where it has one (`examples/tune.rs` times
/// both paths, forward and backward), else the built-in rule, `default_path`. Unfused
/// whatever the policy: a head dim the fused kernels are not compiled for, and a product that
/// will be differentiated on a device that cannot bind the fused backward's eight storage
/// buffers.
pub fn attention_auto(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttentionMask) -> Result<Tensor> {
    // Shapes are checked by the path taken; here a malformed q just picks some path.
    let dim = |t: &Tensor, i: usize| t.shape().get(i).copied().unwrap_or(0);
    let q_dims = [dim(q, 0), dim(q, 1), dim(q, 2), dim(q, 3)];
    match choose_path(q_dims, dim(k, 2), [q, k, v], mask) {
        AttentionPath::Unfused => Ok(attention_unfused(q, k, v, mask, false)?.0),
        _ => attention(q, k, v, mask),
    }
}

/// [`attention_auto`] for heads laid out token-major: q [B, Tq, H, D], k and v [B, Tk, H, D]
/// (a projection's output [B, T, H * D] viewed per head) -> [B, Tq, H, D]. The fused kernels
/// read that layout as it is (`attention_token_major`); the unfused path permutes the heads
/// out and back.
pub fn attention_auto_token_major(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
) -> Result<Tensor> {
    let dim = |t: &Tensor, i: usize| t.shape().get(i).copied().unwrap_or(0);
    let q_dims = [dim(q, 0), dim(q, 2), dim(q, 1), dim(q, 3)];
    match choose_path(q_dims, dim(k, 1), [q, k, v], mask) {
        AttentionPath::Unfused => {
            let heads_out = |t: &Tensor| crate::ops::permute(t, &[0, 2, 1, 3]);
            let (qh, kh, vh) = (heads_out(q)?, heads_out(k)?, heads_out(v)?);
            let o = attention_unfused(&qh, &kh, &vh, mask, false)?.0;
            crate::ops::permute(&o, &[0, 2, 1, 3])
        }
        _ => attention_token_major(q, k, v, mask),
    }
}

/// The path for q of dims [B, H, Tq, D] against `tk` keys: the policy's, within what the
/// fused kernels can do.
fn choose_path(
    q_dims: [usize; 4],
    tk: usize,
    inputs: [&Tensor; 3],
    mask: &AttentionMask,
) -> AttentionPath {
    let gpu = inputs[0].gpu();
    let differentiated = inputs.iter().any(|t| t.is_requires_grad());
    match gpu.policy().attention {
        _ if !ATTENTION_HEAD_DIMS.contains(&q_dims[3]) => AttentionPath::Unfused,
        _ if differentiated && !fused::backward_fits(gpu) => AttentionPath::Unfused,
        AttentionPath::Auto => tuned_path(gpu, q_dims, tk, mask),
        forced => forced,
    }
}

/// The built-in choice between the fused kernels and the unfused path, from measurements:
/// - GPUs: fused (the tiled kernels; 0.93-1.36x unfused on an H200, and O(T) memory).
/// - CPU adapters (lavapipe), a decoding step's few queries (`DECODING_QUERIES`): fused, one
///   dispatch instead of three (184 vs 177 generated tokens/s with one query).
/// - CPU adapters, more queries: unfused. The fused kernel that wins there, `RowsSubgroup`
///   (1.07-2.2x unfused forward + backward, T = 64 to 1024), takes lavapipe 18 s (D = 32) to
///   70 s (D = 64) to compile, once per machine, which a first run should not wait for; the
///   tuning step compiles and times it, and its cache then picks it (BENCHMARKS.md).
fn default_path(gpu: &Gpu, tq: usize) -> AttentionPath {
    if !gpu.is_cpu() || tq <= DECODING_QUERIES {
        AttentionPath::Fused
    } else {
        AttentionPath::Unfused
    }
}

/// The tuning cache's path for the shape class of q [B, H, Tq, D] against `tk` keys (lengths
/// rounded up to powers of two, the mask's kind kept), timed now if the policy asks for
/// trials, else `default_path`.
fn tuned_path(gpu: &Gpu, shape: [usize; 4], tk: usize, mask: &AttentionMask) -> AttentionPath {
    let (tq, d) = (shape[2], shape[3]);
    let fallback = default_path(gpu, tq);
    if tq <= DECODING_QUERIES {
        return fallback;
    }
    let class = format!(
        "d{d} q{} k{} {}{}",
        tq.next_power_of_two(),
        tk.next_power_of_two(),
        if mask.causal { "causal" } else { "full" },
        if mask.key_lens.is_some() { " lens" } else { "" }
    );
    let candidates = [
        (AttentionPath::Fused, "fused"),
        (AttentionPath::Unfused, "unfused"),
    ];
    crate::ops::autotune::choose(gpu, "attention", &class, &candidates, fallback, |path| {
        // Forward and backward on scratch data of the call's shape: what a training step runs.
        let leaf = |s: &[usize]| Ok::<_, Error>(Tensor::zeros(gpu, s)?.requires_grad());
        let kv = [shape[0], shape[1], tk, d];
        let (q, k, v) = (leaf(&shape)?, leaf(&kv)?, leaf(&kv)?);
        let out = match path {
            AttentionPath::Unfused => attention_unfused(&q, &k, &v, mask, false)?.0,
            _ => attention(&q, &k, &v, mask)?,
        };
        out.backward_with(Tensor::ones(gpu, out.shape())?)
    })
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let mut k = fused::kernels();
    k.extend(unfused::kernels());
    k
}

/// `struct Params` of attention/common.wgsl, field for field.
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
    /// 1: q, k, v, o and their gradients are [B, T, H, D] (else [B, H, T, D]).
    token_major: u32,
}

/// The checked sizes of one attention call: q [b, h, tq, d], k and v [b, h, tk, d], or
/// [b, t, h, d] each when `token_major`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    token_major: bool,
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
            token_major: self.token_major as u32,
        }
    }
}

/// Check shapes, dtypes and the mask. `fused` also requires a compiled head dim;
/// `token_major`: the tensors are [B, T, H, D] rather than [B, H, T, D].
fn check(
    op: &'static str,
    [q, k, v]: [&Tensor; 3],
    mask: &AttentionMask,
    fused: bool,
    token_major: bool,
) -> Result<Dims> {
    let layout = match token_major {
        true => "[B, T, H, D]",
        false => "[B, H, T, D]",
    };
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        if t.dtype() != DType::F32 || t.dims() != 4 {
            return Err(Error::shape(
                op,
                format!("{name} must be f32 {layout}, got {t:?}"),
            ));
        }
    }
    let (sq, sk) = (q.shape(), k.shape());
    // The axes of H and T.
    let (h_axis, t_axis) = if token_major { (2, 1) } else { (1, 2) };
    let dims = Dims {
        b: sq[0],
        h: sq[h_axis],
        tq: sq[t_axis],
        tk: sk[t_axis],
        d: sq[3],
        token_major,
    };
    if sk[0] != dims.b || sk[h_axis] != dims.h || sk[3] != dims.d {
        return Err(Error::shape(
            op,
            format!("k {sk:?} must be {layout} with the B, H, D of q {sq:?}"),
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
