//! Batched matrix multiply (`shaders/matmul.wgsl`) with transpose flags and a shared right
//! operand, its backward, and the kernel variants that compute it.
//!
//! Shapes: `a` is `[..batch, M, K]` (`[..batch, K, M]` when `trans_a`), `b` is `[K, N]` shared by
//! every batch (a weight) or `[..batch, K, N]` (`[N, K]` / `[..batch, N, K]` when `trans_b`); the
//! result is `[..batch, M, N]`. Backward: dA = dC @ op(B)^T and dB = op(A)^T @ dC, each laid
//! out like its input, written with the transpose flags instead of explicit transposes.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{grid, Gpu, Kernel, Storage};
use crate::tape::record;
use crate::tensor::{DType, Tensor};
use std::sync::{Mutex, OnceLock};

const SRC: &str = include_str!("../../shaders/matmul.wgsl");
const FILE: &str = "matmul.wgsl";

/// The kernels that can compute a matmul. All give the same result (up to f32 rounding);
/// they differ in speed on different adapters (benches/matmul.rs measures them). Every one
/// handles every transpose combination, batches, a shared B and any shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// One output per invocation, operands read where they are.
    Naive,
    /// 16x16 tiles staged through workgroup memory, operands read where they are.
    Tiled,
    /// GPU style (the GPU default): operands packed first, 128x128 tiles staged through
    /// workgroup memory, 8x8 outputs per invocation; K split into slices summed afterwards
    /// where there are few output tiles.
    RegisterBlocked,
    /// CPU style (lavapipe): operands packed first, no workgroup memory and no barriers,
    /// 32 rows x 8 columns per invocation in registers.
    RowBlock,
    /// RowBlock with the rows of A shared across a subgroup by `subgroupBroadcast`. Needs
    /// subgroups of at least 8 lanes; elsewhere it runs as RowBlock.
    RowBlockSubgroup,
    /// One output per invocation as a vec4 dot product of contiguous rows: row-major A
    /// against a transposed B (a Linear layer's [out, in] weight) with K a multiple of 4.
    /// For skinny products (one token at a time); elsewhere it runs as Naive.
    Dot4,
    /// Dot4 with the row of A shared across a subgroup by `subgroupBroadcast`. Needs N and
    /// the workgroup to be whole subgroups of at least 8 lanes; elsewhere it runs as Dot4.
    Dot4Subgroup,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 7] = [
        MatmulVariant::Naive,
        MatmulVariant::Dot4,
        MatmulVariant::Dot4Subgroup,
        MatmulVariant::Tiled,
        MatmulVariant::RegisterBlocked,
        MatmulVariant::RowBlock,
        MatmulVariant::RowBlockSubgroup,
    ];

    /// The name used by `WGFORMER_MATMUL`.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::RegisterBlocked => "register",
            MatmulVariant::RowBlock => "rowblock",
            MatmulVariant::RowBlockSubgroup => "rowblock_subgroup",
            MatmulVariant::Dot4 => "dot4",
            MatmulVariant::Dot4Subgroup => "dot4_subgroup",
        }
    }

    pub fn from_name(name: &str) -> Option<MatmulVariant> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// The process-wide override; starts as `WGFORMER_MATMUL` (read once).
fn override_slot() -> &'static Mutex<Option<MatmulVariant>> {
    static SLOT: OnceLock<Mutex<Option<MatmulVariant>>> = OnceLock::new();
    SLOT.get_or_init(|| {
        let from_env = std::env::var("WGFORMER_MATMUL").ok().and_then(|name| {
            let v = MatmulVariant::from_name(name.trim());
            if v.is_none() {
                log::warn!("WGFORMER_MATMUL={name:?} is not a matmul variant; using the default");
            }
            v
        });
        Mutex::new(from_env)
    })
}

/// Force every matmul in this process onto one variant (`None`: choose per adapter and shape).
pub fn set_matmul_variant(v: Option<MatmulVariant>) {
    *override_slot().lock().unwrap_or_else(|p| p.into_inner()) = v;
}

fn current_override() -> Option<MatmulVariant> {
    *override_slot().lock().unwrap_or_else(|p| p.into_inner())
}

/// One batched product: C[bi] = op(A[bi]) @ op(B[bi]), C is [batch, m, n].
/// An operand that is not `batched` is one matrix shared by every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gemm {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    a_batched: bool,
    b_batched: bool,
}

impl Gemm {
    /// The same product with the batch folded into M where the layout allows it: a batch of
    /// row-major A against one shared B is a single taller product.
    fn folded(self) -> Gemm {
        if self.batch > 1 && self.a_batched && !self.b_batched && !self.trans_a {
            return Gemm {
                batch: 1,
                m: self.batch * self.m,
                ..self
            };
        }
        self
    }

    fn a_stride(&self) -> u32 {
        if self.a_batched {
            (self.m * self.k) as u32
        } else {
            0
        }
    }

    fn b_stride(&self) -> u32 {
        if self.b_batched {
            (self.k * self.n) as u32
        } else {
            0
        }
    }
}

/// `struct Params` of matmul.wgsl, field for field (see there for what each means).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    a_stride: u32,
    b_stride: u32,
    trans_a: u32,
    trans_b: u32,
    m_pad: u32,
    k_pad: u32,
    n_pad: u32,
    a_direct: u32,
    has_bias: u32,
    b_direct: u32,
    k_split: u32,
    k_slice: u32,
}

/// Invocations per workgroup of the naive and packing kernels.
const WG: u32 = 64;
/// Invocations per workgroup of the row-block kernels.
const RB_WG: u32 = 16;
/// Tiles of the packed operands (see the layout comment in matmul.wgsl).
const PACK_ROWS: usize = 32;
const PANEL_COLS: usize = 32;
const REGISTER_TILE: usize = 128;
const REGISTER_K: usize = 8;
/// The register-blocked kernel splits K when it has fewer output tiles than this (a GPU has
/// ~100 multiprocessors to fill; the H200 has 132), into slices of at least SPLIT_MIN_K.
const SPLIT_TILES: usize = 128;
const SPLIT_MIN_K: usize = 256;

/// (slices, k per slice) of a register-blocked product with `tiles` output tiles and padded
/// inner size `k_pad`: one slice when there are tiles enough or K is short.
fn k_split(tiles: usize, k_pad: usize) -> (usize, usize) {
    let slices = (SPLIT_TILES / tiles.max(1)).min(k_pad / SPLIT_MIN_K);
    if slices < 2 {
        return (1, k_pad);
    }
    let slice = round_up(k_pad.div_ceil(slices), REGISTER_K);
    (k_pad.div_ceil(slice), slice)
}

/// The file up to its subgroup kernels: what every kernel but the subgroup one compiles, so
/// that they build on adapters without subgroups.
fn portable_source() -> &'static str {
    &SRC[..section(SUBGROUP_SECTION)]
}

/// The subgroup kernel's source: the file without its portable row fetch (which the subgroup
/// section replaces).
fn subgroup_source() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{}{}",
            &SRC[..section(PORTABLE_SECTION)],
            &SRC[section(SUBGROUP_SECTION)..]
        )
    })
}

const PORTABLE_SECTION: &str = "// PORTABLE ROW FETCH";
const SUBGROUP_SECTION: &str = "// SUBGROUP KERNELS";

fn section(marker: &str) -> usize {
    SRC.find(marker).expect("matmul.wgsl marks its sections")
}

fn kernel(entry: &'static str) -> Kernel {
    let subgroups = entry.ends_with("_subgroup");
    let source = if subgroups {
        subgroup_source()
    } else {
        portable_source()
    };
    let k = Kernel::new(FILE, source, entry)
        .define("WG", WG)
        .define("RB_WG", RB_WG)
        .define("B_STORED_T", 0);
    if subgroups {
        k.with_subgroups()
    } else {
        k
    }
}

/// The kernel that computes the product, with its storage bindings.
fn compute_kernel(v: MatmulVariant) -> Kernel {
    match v {
        MatmulVariant::Naive => kernel("naive").write(1).read(2).read(3).read(9),
        MatmulVariant::Dot4 => kernel("dot4").write(1).read(7).read(8).read(9),
        MatmulVariant::Dot4Subgroup => kernel("dot4_subgroup").write(1).read(7).read(8).read(9),
        MatmulVariant::Tiled => kernel("tiled").write(1).read(2).read(3).read(9),
        MatmulVariant::RegisterBlocked => {
            kernel("register_blocked").write(1).read(5).read(6).read(9)
        }
        MatmulVariant::RowBlock => kernel("rowblock").write(1).read(5).read(6).read(9),
        MatmulVariant::RowBlockSubgroup => {
            kernel("rowblock_subgroup").write(1).read(5).read(6).read(9)
        }
    }
}

/// `v`'s row-block kernel reading a transposed B in place (see `b_at_quad` in matmul.wgsl).
fn stored_t_kernel(v: MatmulVariant) -> Kernel {
    let mut k = compute_kernel(v);
    k.defines.retain(|(name, _)| *name != "B_STORED_T");
    k.define("B_STORED_T", 1)
}

/// Packing kernels bind their source twice: as scalars and as vec4.
fn pack_a_kernel() -> Kernel {
    kernel("pack_a").write(4).read(2).read(7)
}

fn pack_b_kernel() -> Kernel {
    kernel("pack_b").write(4).read(3).read(8)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let mut k: Vec<Kernel> = MatmulVariant::ALL.into_iter().map(compute_kernel).collect();
    k.extend([MatmulVariant::RowBlock, MatmulVariant::RowBlockSubgroup].map(stored_t_kernel));
    k.extend([pack_a_kernel(), pack_b_kernel()]);
    k
}

/// Whether `gpu` can run the subgroup kernel: it broadcasts from 8 lanes.
fn subgroup_kernel_fits(gpu: &Gpu) -> bool {
    gpu.has_subgroups() && gpu.inner().info.subgroup_min_size >= 8
}

/// Below this many multiply-adds the packing dispatches cost more than they save.
const SMALL_WORK: usize = 32 * 32 * 32;
/// Use a tiled variant only if at least this share of its padded tiles is real output: the
/// fast kernels beat naive by ~15-30x on lavapipe and ~2-5x on a GPU, so a quarter still wins.
const MIN_USEFUL: f64 = 0.25;

/// The variant used when nobody asked for one, from measurements (see benches/matmul.rs):
/// - CPU adapter (lavapipe): the row-block kernel, with subgroups where they fit.
/// - GPU: the 128x128 register-blocked kernel, which splits K where it has few output tiles.
///   On an NVIDIA H200 through Vulkan it ran 2048^3 at 29 TFLOP/s (44% of the datasheet's
///   fp32 peak) against 13 for the row-block kernel and 3.3 for the 16x16 tiled one, and led
///   on every transformer shape of the bench.
/// - Naive where the chosen kernel would mostly compute padding (skinny products, e.g. one
///   token at a time) or the product is too small to pay for the extra dispatches; Dot4
///   instead where its layout fits (a Linear layer's weight), with subgroups where they fit:
///   1.6-1.9x Dot4 on lavapipe's one-token products (benches/matmul.rs, `lm_head`).
fn default_variant(gpu: &Gpu, g: &Gemm) -> MatmulVariant {
    let cpu = gpu.inner().info.device_type == wgpu::DeviceType::Cpu;
    let (fast, (m_tile, n_tile)) = if !cpu {
        (
            MatmulVariant::RegisterBlocked,
            (REGISTER_TILE, REGISTER_TILE),
        )
    } else if subgroup_kernel_fits(gpu) {
        // A row-block workgroup covers 32 rows x 2 * RB_WG column quads.
        (
            MatmulVariant::RowBlockSubgroup,
            (PACK_ROWS, 8 * RB_WG as usize),
        )
    } else {
        (MatmulVariant::RowBlock, (PACK_ROWS, 8 * RB_WG as usize))
    };
    let useful = (g.m * g.n) as f64 / (round_up(g.m, m_tile) * round_up(g.n, n_tile)) as f64;
    if g.batch * g.m * g.n * g.k < SMALL_WORK || useful < MIN_USEFUL {
        if dot4_subgroup_fits(gpu, g) {
            MatmulVariant::Dot4Subgroup
        } else if dot4_fits(g) {
            MatmulVariant::Dot4
        } else {
            MatmulVariant::Naive
        }
    } else {
        fast
    }
}

/// `default_variant`, or with autotuning on the fastest variant measured for `g`'s shape
/// class (sizes rounded up to powers of two, transposes and batching kept).
fn tuned_variant(gpu: &Gpu, g: &Gemm) -> MatmulVariant {
    let fallback = default_variant(gpu, g);
    // Small products take about as long as a submit: their timings are noise, so trials
    // would pick at random (measured: generation 30% slower). They keep the built-in rule.
    if !super::autotune_enabled() || g.batch * g.m * g.n * g.k < TUNE_MIN_WORK {
        return fallback;
    }
    let p2 = |x: usize| x.next_power_of_two();
    let class = format!(
        "{}x{}x{}x{} t{}{} b{}{}",
        p2(g.batch),
        p2(g.m),
        p2(g.k),
        p2(g.n),
        u8::from(g.trans_a),
        u8::from(g.trans_b),
        u8::from(g.a_batched),
        u8::from(g.b_batched)
    );
    // The naive kernels run at ~1 GFLOP/s on lavapipe: time them only where they can win.
    let naive_ok = g.batch * g.m * g.n * g.k <= 1 << 24;
    let candidates: Vec<(MatmulVariant, &'static str)> = MatmulVariant::ALL
        .into_iter()
        .filter(|&v| {
            let one_per_lane = matches!(
                v,
                MatmulVariant::Naive | MatmulVariant::Dot4 | MatmulVariant::Dot4Subgroup
            );
            !one_per_lane || naive_ok
        })
        .filter(|&v| v != MatmulVariant::Dot4 || dot4_fits(g))
        .filter(|&v| v != MatmulVariant::Dot4Subgroup || dot4_subgroup_fits(gpu, g))
        .filter(|&v| v != MatmulVariant::RowBlockSubgroup || subgroup_kernel_fits(gpu))
        .map(|v| (v, v.name()))
        .collect();
    let g = *g;
    let scratch = |rows: usize| Tensor::zeros(gpu, &[rows]);
    super::autotune::choose(gpu, "matmul", &class, &candidates, fallback, |v| {
        let a = scratch(if g.a_batched { g.batch } else { 1 } * g.m * g.k)?;
        let b = scratch(if g.b_batched { g.batch } else { 1 } * g.k * g.n)?;
        gemm(&a, &b, g, Some(v)).map(|_| ())
    })
}

/// Dot4 reads both operands as vec4 rows: A row-major, B transposed, K a multiple of 4.
fn dot4_fits(g: &Gemm) -> bool {
    !g.trans_a && g.trans_b && g.k.is_multiple_of(4)
}

/// Dot4Subgroup also needs every subgroup inside one row of C (N and the workgroup whole
/// subgroups) and subgroups of at least 8 lanes (it broadcasts from 8).
fn dot4_subgroup_fits(gpu: &Gpu, g: &Gemm) -> bool {
    let info = &gpu.inner().info;
    let widest = info.subgroup_max_size as usize;
    dot4_fits(g)
        && subgroup_kernel_fits(gpu)
        && widest > 0
        && g.n.is_multiple_of(widest)
        && (WG as usize).is_multiple_of(widest)
}

/// The row-block kernels read B in place (no packing pass) up to this many rows of A, where a
/// pass over B costs about as much as the product itself. On lavapipe the speech
/// convolution's forward product (32 x 288 x 60,160) ran 1.5x faster (38 vs 58 ms), and its
/// weight gradient (B = the im2col matrix read transposed) took an ASR step 2.46 -> 2.34 s; for
/// products with hundreds of rows (the transformer's weight gradients, the convolution's
/// input gradient with 288) the side-by-side timings were within this VM's noise either way,
/// so they keep the packed panels.
const B_DIRECT_MAX_M: usize = 64;

/// Multiply-adds below which a product is not worth timing (~4 ms of naive work on lavapipe).
const TUNE_MIN_WORK: usize = 1 << 22;

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Run `g` on the storage of `a` and `b` with variant `v` (or the default); returns C as
/// [batch * m * n] values.
fn gemm(a: &Tensor, b: &Tensor, g: Gemm, v: Option<MatmulVariant>) -> Result<Tensor> {
    gemm_bias(a, b, None, g, v)
}

/// `gemm` plus `bias` ([N]) added to every row of C in the kernels' epilogue.
pub(super) fn gemm_bias(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    g: Gemm,
    v: Option<MatmulVariant>,
) -> Result<Tensor> {
    let g = g.folded();
    let gpu = a.gpu();
    let out = Tensor::empty(gpu, &[g.batch * g.m * g.n])?;
    if out.numel() == 0 {
        return Ok(out);
    }
    if g.k == 0 {
        super::fill(&out, 0.0)?;
        return match bias {
            Some(bias) => {
                super::add(&out.reshape(&[g.batch * g.m, g.n])?, bias)?.reshape(&[out.numel()])
            }
            None => Ok(out),
        };
    }
    let mut v = match v.or_else(current_override) {
        Some(v) => v,
        None => tuned_variant(gpu, &g),
    };
    if v == MatmulVariant::RowBlockSubgroup && !subgroup_kernel_fits(gpu) {
        v = MatmulVariant::RowBlock;
    }
    if v == MatmulVariant::Dot4Subgroup && !dot4_subgroup_fits(gpu, &g) {
        v = MatmulVariant::Dot4;
    }
    if v == MatmulVariant::Dot4 && !dot4_fits(&g) {
        v = MatmulVariant::Naive;
    }
    let (m_tile, k_tile, n_tile) = match v {
        MatmulVariant::RegisterBlocked => (REGISTER_TILE, REGISTER_K, REGISTER_TILE),
        _ => (PACK_ROWS, 4, PANEL_COLS),
    };
    let (m_pad, k_pad, n_pad) = (
        round_up(g.m, m_tile),
        round_up(g.k, k_tile),
        round_up(g.n, n_tile),
    );
    // Row-major A needing no k padding (so its rows are whole vec4) is read in place.
    let a_direct = !g.trans_a && k_pad == g.k;
    // So is B (row-major or stored transposed) with rows of whole vec4 and whole column quads,
    // by the row-block kernels, where A has too few rows to repay packing B (see
    // `b_at_quad` in matmul.wgsl).
    let row_block = matches!(v, MatmulVariant::RowBlock | MatmulVariant::RowBlockSubgroup);
    let b_direct = row_block && k_pad == g.k && g.n.is_multiple_of(4) && g.m <= B_DIRECT_MAX_M;
    // A split K writes one product per slice, summed below; a bias would be added per slice.
    let tiles = g.batch * (m_pad / m_tile) * (n_pad / n_tile);
    let (slices, k_slice) = match v {
        MatmulVariant::RegisterBlocked if bias.is_none() => k_split(tiles, k_pad),
        _ => (1, k_pad),
    };
    let out = match slices {
        1 => out,
        _ => Tensor::empty(gpu, &[slices, g.batch * g.m * g.n])?,
    };
    let params = Params {
        batch: g.batch as u32,
        m: g.m as u32,
        k: g.k as u32,
        n: g.n as u32,
        a_stride: g.a_stride(),
        b_stride: g.b_stride(),
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        m_pad: m_pad as u32,
        k_pad: k_pad as u32,
        n_pad: n_pad as u32,
        a_direct: a_direct as u32,
        has_bias: bias.is_some() as u32,
        b_direct: b_direct as u32,
        k_split: slices as u32,
        k_slice: k_slice as u32,
    };
    // Without a bias the binding still needs a buffer: A's, never read.
    let bias = bias.unwrap_or(a).storage();
    let run =
        |k: Kernel, bufs: &[&Storage], groups: [u32; 3]| gpu.dispatch(&k, &params, bufs, groups);
    match v {
        MatmulVariant::Naive | MatmulVariant::Dot4 | MatmulVariant::Dot4Subgroup => run(
            compute_kernel(v),
            &[out.storage(), a.storage(), b.storage(), bias],
            groups_for(out.numel(), WG),
        )?,
        MatmulVariant::Tiled => {
            let tiles = g.batch * g.m.div_ceil(16) * g.n.div_ceil(16);
            run(
                compute_kernel(v),
                &[out.storage(), a.storage(), b.storage(), bias],
                grid(tiles as u32),
            )?
        }
        _ => {
            let batches = |batched: bool| if batched { g.batch } else { 1 };
            // Packing workgroups: 2 k-quads of 4 panels of B; 2 k-quads of 128 rows of A.
            let pb = if b_direct {
                None
            } else {
                let pb = gpu.alloc(batches(g.b_batched) * k_pad * n_pad)?;
                let b_groups = [
                    k_pad.div_ceil(8) as u32,
                    n_pad.div_ceil(4 * PANEL_COLS) as u32,
                    batches(g.b_batched) as u32,
                ];
                run(pack_b_kernel(), &[&pb, b.storage(), b.storage()], b_groups)?;
                Some(pb)
            };
            let pb = pb.as_ref().unwrap_or(b.storage());
            let pa = if a_direct {
                None
            } else {
                let pa = gpu.alloc(batches(g.a_batched) * m_pad * k_pad)?;
                let a_groups = [
                    k_pad.div_ceil(8) as u32,
                    m_pad.div_ceil(128) as u32,
                    batches(g.a_batched) as u32,
                ];
                run(pack_a_kernel(), &[&pa, a.storage(), a.storage()], a_groups)?;
                Some(pa)
            };
            let pa = pa.as_ref().unwrap_or(a.storage());
            let workgroups = match v {
                MatmulVariant::RegisterBlocked => slices * tiles,
                // Each invocation owns two column quads.
                _ => g.batch * (m_pad / PACK_ROWS) * (n_pad / 4).div_ceil(2 * RB_WG as usize),
            };
            let kernel = match b_direct && g.trans_b {
                true => stored_t_kernel(v),
                false => compute_kernel(v),
            };
            run(
                kernel,
                &[out.storage(), pa, pb, bias],
                grid(workgroups as u32),
            )?
        }
    }
    match slices {
        1 => Ok(out),
        _ => super::sum_axis(&out, 0),
    }
}

/// The checked shapes of one call: the product, the output shape.
pub(super) fn plan(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<(Gemm, Vec<usize>)> {
    for (name, t) in [("a", a), ("b", b)] {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(op, format!("{name} must be f32, got {t:?}")));
        }
        if t.dims() < 2 {
            return Err(Error::shape(
                op,
                format!("{name} must have at least 2 dims, got {:?}", t.shape()),
            ));
        }
    }
    let (sa, sb) = (a.shape(), b.shape());
    let batch_dims = &sa[..sa.len() - 2];
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let b_batched = sb.len() > 2;
    if b_batched && sb[..sb.len() - 2] != *batch_dims {
        return Err(Error::shape(
            op,
            format!(
                "b {sb:?} must be 2-D (shared) or have the batch dims {batch_dims:?} of a {sa:?}"
            ),
        ));
    }
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if kb != k {
        let a_form = if trans_a { "[.., K, M]" } else { "[.., M, K]" };
        let b_form = if trans_b { "[.., N, K]" } else { "[.., K, N]" };
        return Err(Error::shape(
            op,
            format!("inner dims differ: a {sa:?} is {a_form} with K = {k}, b {sb:?} is {b_form} with K = {kb}"),
        ));
    }
    let batch = batch_dims.iter().product();
    let g = Gemm {
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        a_batched: true,
        b_batched,
    };
    let mut out_shape = batch_dims.to_vec();
    out_shape.extend([m, n]);
    Ok((g, out_shape))
}

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
    let (a2, b2) = (a.clone(), b.clone());
    Ok(record(out, &[a, b], move |dc| {
        let da = if a2.is_requires_grad() {
            Some(grad_a(&a2, &b2, dc, g)?)
        } else {
            None
        };
        let db = if b2.is_requires_grad() {
            Some(grad_b(&a2, &b2, dc, g)?)
        } else {
            None
        };
        Ok(vec![da, db])
    }))
}

/// dA in the layout of A: dC @ op(B)^T, or its transpose op(B) @ dC^T when A is stored [K, M].
pub(super) fn grad_a(a: &Tensor, b: &Tensor, dc: &Tensor, g: Gemm) -> Result<Tensor> {
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
        gemm(b, dc, g, None)?
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
        gemm(dc, b, g, None)?
    };
    da.reshape(a.shape())
}

/// dB in the layout of B: op(A)^T @ dC, or its transpose dC^T @ op(A) when B is stored [N, K];
/// summed over the batch when B is shared.
pub(super) fn grad_b(a: &Tensor, b: &Tensor, dc: &Tensor, g: Gemm) -> Result<Tensor> {
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
        let per_batch = db.reshape(&[batch, b.numel()])?;
        return super::sum_axis(&per_batch, 0)?.reshape(b.shape());
    }
    db.reshape(b.shape())
}
