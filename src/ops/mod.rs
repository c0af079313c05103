//! Ops: the operations a model is built from, and the optimizer updates, run on the GPU.
//! A file per op family pairs its kernels in `shaders/` (same stem) with their launch, the
//! forward and, for differentiable ops, the backward recorded on the tape, side by side; the
//! same op in plain Rust is in `reference/` (same stem, same names). Exceptions: `linear.rs`
//! is a matmul with a fused bias and has no kernel of its own; `adamw.rs`, `sgd.rs` and
//! `grad_norm.rs` update or measure parameters off the tape, and `half_copy.rs` stores what
//! backwards keep in mixed precision, so these have no backward;
//! `autotune.rs` keeps the kernel choices measured on this machine.
//!
//! `tensor`, `tape` and `ops` are one autograd core and call each other: a tensor fills itself
//! with `ops::fill`, the tape sums gradients with `ops::add`, and every op records its backward
//! on the tape. `all_kernels` lists every compiled kernel variant, so a test can validate each
//! with naga and check that every shader file is used.

mod adamw;
mod attention;
mod autotune;
mod conv1d;
mod conv2d;
mod cross_entropy;
mod ctc;
mod elementwise;
mod embedding;
mod grad_norm;
mod half_copy;
mod layer_norm;
mod layout;
mod linear;
mod matmul;
mod matmul_half;
mod reduce;
mod sgd;
mod softmax;

pub use adamw::{adamw_update, adamw_update_group, AdamWParams, AdamWSlot};
pub use attention::{
    attention, attention_auto, attention_auto_token_major, attention_token_major,
    attention_unfused, attention_with, AttentionKernel, AttentionMask, ATTENTION_HEAD_DIMS,
};
pub use autotune::reset_autotune_memory;
pub use conv1d::{conv1d, Conv1dConfig};
pub use conv2d::{conv2d, conv2d_in_chunks, Conv2dConfig};
pub use cross_entropy::cross_entropy;
pub use ctc::ctc_loss;
pub use elementwise::{add, dropout, fill, gelu, gelu_tanh, mul, relu, scale, Activation};
pub use embedding::{embedding, gather_rows};
pub use grad_norm::grad_norm_and_clip;
pub use half_copy::{from_half, to_half};
pub use layer_norm::layer_norm;
pub use layout::{concat, gather_concat, permute, slice, transpose};
pub use linear::{linear, linear_act, linear_add};
pub use matmul::{matmul, matmul_ex, matmul_nt, matmul_variant};
pub use matmul_half::{matmul_half, matmul_half_with, HalfMatrix};
pub use reduce::{broadcast_axis, mean_axis, sum_axis, sum_leading};
pub use sgd::sgd_update;
pub use softmax::softmax;

// The names of the kernel choices, which a device's `KernelPolicy` holds.
pub use crate::gpu::{
    AttentionPath, KernelPolicy, MatmulPacking, MatmulPrecision, MatmulVariant, RowWidth, Tuning,
};

use crate::gpu::{grid, shader_file, Kernel, ShaderFile};

/// Every kernel variant the crate can launch.
pub fn all_kernels() -> Vec<Kernel> {
    let mut k = Vec::new();
    k.extend(adamw::kernels());
    k.extend(attention::kernels());
    k.extend(conv1d::kernels());
    k.extend(conv2d::kernels());
    k.extend(cross_entropy::kernels());
    k.extend(ctc::kernels());
    k.extend(elementwise::kernels());
    k.extend(embedding::kernels());
    k.extend(matmul_half::kernels());
    k.extend(grad_norm::kernels());
    k.extend(half_copy::kernels());
    k.extend(layer_norm::kernels());
    k.extend(layout::kernels());
    k.extend(matmul::kernels());
    k.extend(reduce::kernels());
    k.extend(sgd::kernels());
    k.extend(softmax::kernels());
    k
}

/// Workgroup-wide sum / max helpers shared by the row kernels (compiled before their file).
pub(crate) const WORKGROUP_REDUCE: ShaderFile = shader_file!("workgroup_reduce.wgsl");

/// Invocations per row for the row kernels (layer norm, cross-entropy's row loss): a GPU
/// wants a wide workgroup per row; on a CPU adapter (lavapipe) barriers cost a context switch
/// per SIMD chunk, so one 8-lane chunk per row was 3.4x faster for layer norm (BENCHMARKS.md).
/// The policy's `row_width` overrides the choice (the memory-bound benchmark times both).
pub(crate) fn row_workgroup(gpu: &crate::gpu::Gpu, gpu_width: u32) -> u32 {
    match row_width(gpu) {
        RowWidth::Narrow => ROW_WG_CPU,
        RowWidth::Wide => gpu_width,
    }
}

/// The row kernels' shape on `gpu`: the policy's, else narrow on CPU adapters, wide on GPUs.
/// Sums over an axis follow it too (`reduce.rs`).
pub(crate) fn row_width(gpu: &crate::gpu::Gpu) -> RowWidth {
    gpu.forced_row_width().unwrap_or(match gpu.is_cpu() {
        true => RowWidth::Narrow,
        false => RowWidth::Wide,
    })
}

pub(crate) const ROW_WG_CPU: u32 = 8;

/// Workgroups for `n` invocations, `wg` per workgroup, on a 2-D grid.
pub(crate) fn groups_for(n: usize, wg: u32) -> [u32; 3] {
    grid((n as u32).div_ceil(wg))
}
