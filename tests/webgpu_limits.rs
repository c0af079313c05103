//! WebGPU's default limits, the least a browser may offer: 8 storage buffers per shader stage,
//! 16 KiB of workgroup memory, 256 invocations per workgroup. Every kernel fits them (but the
//! grouped AdamW, launched only where the adapter binds more, one by one elsewhere), and a
//! device opened under tighter ones (`Gpu::with_limits`) still trains attention, taking the path
//! whose kernels fit, while a kernel past a limit is refused with the limit's name.
mod common;
use common::*;
use wgformer::gpu::{AttentionPath, Gpu};
use wgformer::ops::{self, AttentionMask};
use wgformer::reference;

/// Kernels the ops launch only where the adapter binds more storage buffers than WebGPU
/// promises, with a fallback elsewhere (tests/adamw.rs runs it under these limits).
const WIDE_BINDING: [&str; 1] = ["adamw_group"];

#[test]
fn every_kernel_fits_webgpu_default_limits() {
    let limits = wgpu::Limits::default();
    for k in ops::all_kernels() {
        let r = k.reflect().unwrap();
        assert!(
            r.workgroup_bytes <= limits.max_compute_workgroup_storage_size,
            "{}: {} bytes of workgroup memory",
            k.key(),
            r.workgroup_bytes
        );
        assert!(
            r.invocations <= limits.max_compute_invocations_per_workgroup,
            "{}: {} invocations",
            k.key(),
            r.invocations
        );
        assert!(
            WIDE_BINDING.contains(&k.entry)
                || k.bindings.len() <= limits.max_storage_buffers_per_shader_stage as usize,
            "{}: {} storage buffers",
            k.key(),
            k.bindings.len()
        );
    }
}

/// Seven storage buffers, one fewer than the fused dK/dV kernel binds.
#[test]
fn attention_trains_on_a_device_too_small_for_the_fused_backward_which_is_refused_by_name() {
    let gpu = Gpu::with_limits(wgpu::Limits {
        max_storage_buffers_per_shader_stage: 7,
        ..wgpu::Limits::default()
    })
    .unwrap();
    assert_eq!(gpu.max_storage_buffers(), 7);
    let mut policy = gpu.policy();
    policy.attention = AttentionPath::Fused;
    gpu.set_policy(policy);
    let (b, h, t, d) = (1, 2, 21, 16);
    let n = b * h * t * d;
    let (q, k, v, dout) = (values(n, 1), values(n, 2), values(n, 3), values(n, 4));
    let leaf = |x: &[f32]| {
        wgformer::Tensor::from_slice(&gpu, x, &[b, h, t, d])
            .unwrap()
            .requires_grad()
    };
    let (q64, k64, v64) = (f64s(&q), f64s(&k), f64s(&v));
    let (want, probs) =
        reference::attention::attention(&q64, &k64, &v64, b, h, t, t, d, true, None);
    let (dq, _, _) = reference::attention::attention_backward(
        &q64,
        &k64,
        &v64,
        &probs,
        &f64s(&dout),
        b,
        h,
        t,
        t,
        d,
    );
    let grad_out = || wgformer::Tensor::from_slice(&gpu, &dout, &[b, h, t, d]).unwrap();

    // Fused is asked for, but its backward cannot be bound: attention_auto goes unfused.
    let (tq, tk, tv) = (leaf(&q), leaf(&k), leaf(&v));
    let out = ops::attention_auto(&tq, &tk, &tv, &AttentionMask::causal()).unwrap();
    assert_close("attention", &out.to_vec().unwrap(), &want, 1e-4);
    out.backward_with(grad_out()).unwrap();
    assert_close("dq", &grad_of(&tq), &dq, 1e-4);

    // The fused kernel called directly: its forward fits, its backward is refused by name.
    let (tq, tk, tv) = (leaf(&q), leaf(&k), leaf(&v));
    let out = ops::attention(&tq, &tk, &tv, &AttentionMask::causal()).unwrap();
    assert_close("fused attention", &out.to_vec().unwrap(), &want, 1e-4);
    let e = out.backward_with(grad_out()).unwrap_err().to_string();
    assert!(
        e.contains("max_storage_buffers_per_shader_stage") && e.contains("backward_dkdv"),
        "{e}"
    );
}
