//! Which kernel computes a product, by the device's `KernelPolicy`: the variant it forces,
//! else the one the tuning cache holds for the product's shape class, else the built-in rule
//! for the adapter (`default_variant`). The variants themselves are named by
//! `MatmulVariant` (in `gpu::policy`, so that a device can hold the choice).

use super::gemm::{gemm, round_up, Gemm, COOP_TILE, PACK_ROWS, RB_WG, REGISTER_TILE, WG};
use crate::gpu::{Gpu, MatmulPrecision, MatmulVariant};
use crate::tensor::Tensor;

/// Whether `gpu` can run the subgroup kernel: it broadcasts from 8 lanes.
fn subgroup_kernel_fits(gpu: &Gpu) -> bool {
    gpu.has_subgroups_of(8)
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
/// - Half precision (`MatmulPrecision::Half`) on an adapter with tensor cores: the
///   cooperative-matrix kernel for every product the tiled kernels would take.
fn default_variant(gpu: &Gpu, g: &Gemm) -> MatmulVariant {
    let half = gpu.matmul_precision() == MatmulPrecision::Half;
    let (fast, (m_tile, n_tile)) = if half && coop_matrix_fits(gpu) {
        (MatmulVariant::CoopMatrix, (COOP_TILE, COOP_TILE))
    } else if !gpu.is_cpu() {
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

/// The tuning cache's variant for `g`'s shape class (sizes rounded up to powers of two,
/// transposes and batching kept), timed now if the policy asks for trials, else
/// `default_variant`.
fn tuned_variant(gpu: &Gpu, g: &Gemm) -> MatmulVariant {
    let fallback = default_variant(gpu, g);
    // The trials time f32 kernels; in half precision the built-in rule chooses.
    if gpu.matmul_precision() == MatmulPrecision::Half {
        return fallback;
    }
    // Small products take about as long as a submit: their timings are noise, so trials
    // would pick at random (measured: generation 30% slower). They keep the built-in rule.
    if g.batch * g.m * g.n * g.k < TUNE_MIN_WORK {
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

/// The cooperative-matrix kernel runs where the device has 16x16 f16 cooperative matrices
/// and every subgroup has the 32 lanes its tile split assumes (NVIDIA).
fn coop_matrix_fits(gpu: &Gpu) -> bool {
    let info = &gpu.inner().info;
    gpu.has_coop_matrix()
        && gpu.has_subgroups()
        && info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
}

/// Multiply-adds below which a product is not worth timing (~4 ms of naive work on lavapipe).
const TUNE_MIN_WORK: usize = 1 << 22;

/// The variant that runs `g`: `asked` (a caller's explicit choice), else the one the policy
/// forces, else the tuned or built-in choice; then the nearest variant that can run `g` on
/// this adapter.
pub(super) fn resolve(gpu: &Gpu, g: &Gemm, asked: Option<MatmulVariant>) -> MatmulVariant {
    let mut v = match asked.or(gpu.policy().matmul) {
        Some(v) => v,
        None => tuned_variant(gpu, g),
    };
    if v == MatmulVariant::CoopMatrix && !coop_matrix_fits(gpu) {
        v = MatmulVariant::RegisterBlocked;
    }
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
