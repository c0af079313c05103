//! Which kernel computes a product: a variant forced for the whole process
//! (`set_matmul_variant`, `WGFORMER_MATMUL`), the fastest measured for its shape class
//! (autotuning), or the built-in rule for the adapter (`default_variant`).

use super::gemm::{gemm, round_up, Gemm, PACK_ROWS, RB_WG, REGISTER_TILE, WG};
use crate::gpu::Gpu;
use crate::tensor::Tensor;
use std::sync::{Mutex, OnceLock};

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
    if !crate::ops::autotune_enabled() || g.batch * g.m * g.n * g.k < TUNE_MIN_WORK {
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
    crate::ops::autotune::choose(gpu, "matmul", &class, &candidates, fallback, |v| {
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

/// Multiply-adds below which a product is not worth timing (~4 ms of naive work on lavapipe).
const TUNE_MIN_WORK: usize = 1 << 22;

/// The variant that runs `g`: `asked` (a caller's explicit choice), else the forced one, else
/// the tuned or built-in choice; then the nearest variant that can run `g` on this adapter.
pub(super) fn resolve(gpu: &Gpu, g: &Gemm, asked: Option<MatmulVariant>) -> MatmulVariant {
    let mut v = match asked.or_else(current_override) {
        Some(v) => v,
        None => tuned_variant(gpu, g),
    };
    if v == MatmulVariant::RowBlockSubgroup && !subgroup_kernel_fits(gpu) {
        v = MatmulVariant::RowBlock;
    }
    if v == MatmulVariant::Dot4Subgroup && !dot4_subgroup_fits(gpu, g) {
        v = MatmulVariant::Dot4;
    }
    if v == MatmulVariant::Dot4 && !dot4_fits(g) {
        v = MatmulVariant::Naive;
    }
    v
}
