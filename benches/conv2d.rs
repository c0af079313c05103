//! conv2d forward + backward at the speech embedding's shapes: log-mel [B=16, 1, T=300, 80]
//! through two 3x3 convs (1 -> 32 and 32 -> 32 channels, stride 2 in time, padding 1), so
//! H = 300 -> 150 -> 75 and W = 80 throughout.
//!
//! Each timing records the forward and the backward of both convs (no ReLU between: this
//! times the op alone) and then waits once with `gpu.synchronize()`, as a training step
//! would. Printed per matmul kernel the product runs on: the adapter's default and, for
//! scale, the naive one. `WGFORMER_BENCH_QUICK=1` takes 2 timed runs instead of 5.

use std::time::Instant;
use wgformer::ops::{self, Conv2dConfig, KernelPolicy, MatmulVariant};
use wgformer::{Gpu, Tensor};

const B: usize = 16;
const T: usize = 300;
const MELS: usize = 80;
const C: usize = 32;

/// One forward + backward of both convs, recorded, then waited for.
fn step(gpu: &Gpu, x: &Tensor, layers: &[(Tensor, Tensor); 2], dout: &Tensor) {
    let cfg = Conv2dConfig {
        stride: [2, 1],
        padding: [1, 1],
    };
    let h1 = ops::conv2d(x, &layers[0].0, Some(&layers[0].1), cfg).unwrap();
    let h2 = ops::conv2d(&h1, &layers[1].0, Some(&layers[1].1), cfg).unwrap();
    h2.backward_with(dout.clone()).unwrap();
    gpu.synchronize().unwrap();
    for (w, b) in layers {
        w.zero_grad();
        b.zero_grad();
    }
}

fn main() {
    let gpu = Gpu::shared().expect("no GPU adapter");
    let runs = if std::env::var_os("WGFORMER_BENCH_QUICK").is_some() {
        2
    } else {
        5
    };
    let x = Tensor::randn(&gpu, &[B, 1, T, MELS], 1.0, 1)
        .unwrap()
        .requires_grad();
    let layer = |c_in: usize, seed: u64| {
        (
            Tensor::randn(&gpu, &[C, c_in, 3, 3], 0.1, seed)
                .unwrap()
                .requires_grad(),
            Tensor::zeros(&gpu, &[C]).unwrap().requires_grad(),
        )
    };
    let layers = [layer(1, 2), layer(C, 3)];
    let dout = Tensor::randn(&gpu, &[B, C, T / 4, MELS], 1.0, 4).unwrap();

    let default_policy = gpu.policy();
    println!("adapter: {}", gpu.adapter_name());
    println!("conv2d x2, B={B} T={T} W={MELS} C=1->{C}->{C}, forward + backward:");
    for (name, variant) in [
        ("default matmul", None),
        ("naive matmul", Some(MatmulVariant::Naive)),
    ] {
        gpu.set_policy(KernelPolicy {
            matmul: variant,
            ..default_policy.clone()
        });
        step(&gpu, &x, &layers, &dout); // compile pipelines, fill the buffer pool
        let before = gpu.counters();
        let start = Instant::now();
        for _ in 0..runs {
            step(&gpu, &x, &layers, &dout);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
        let dispatches = (gpu.counters() - before).dispatches / runs as u64;
        println!("  {name:>15}: {ms:8.1} ms per step, {dispatches} dispatches");
    }
    gpu.set_policy(default_policy);
}
