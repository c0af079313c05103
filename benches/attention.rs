//! Fused vs unfused attention, forward alone and forward + backward, at B * H = 8 (B = 2,
//! H = 4), D = 64, T = Tq = Tk in 64..1024, with and without the causal mask.
//!
//! Time: each timing records N calls and then waits once with `gpu.synchronize()`, so
//! per-dispatch overhead is amortised as in a training step. The forward runs on inputs that
//! need no gradient (inference: nothing is kept for a backward); forward + backward runs on
//! leaves, seeded with a fixed output gradient.
//!
//! Peak extra GPU memory: the bytes of buffers the buffer pool had to create for ONE call, on a
//! fresh device where q, k, v (and the output gradient) already exist: `Gpu::pooled_bytes()`
//! after the call minus before. The pool reuses a released buffer for a later allocation of
//! the same size class, so this is the most the path holds at once (in pool size classes,
//! rounded up by at most 25%), including outputs, saved activations, gradients and matmul
//! packing buffers. Buffers are taken when work is recorded, so nothing needs to run for it.
//!
//! After the criterion output a table gives ms per call, the unfused/fused time ratio and the
//! extra MiB of each path. "fused" is `ops::attention`, i.e. the kernel variant chosen for the
//! adapter (printed). `WGFORMER_BENCH_QUICK=1` runs only T = 64 and 256;
//! `WGFORMER_BENCH_T=256,512` runs only the listed lengths.

use criterion::{Criterion, SamplingMode};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wgformer::ops::{self, AttentionMask};
use wgformer::{Gpu, Tensor};

const B: usize = 2;
const H: usize = 4;
const D: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Path {
    Fused,
    Unfused,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Pass {
    Forward,
    ForwardBackward,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Fused => "fused",
            Path::Unfused => "unfused",
        }
    }
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::ForwardBackward => "fwd+bwd",
        }
    }
}

/// q, k, v [B, H, T, D], the output gradient and the mask of one benchmark.
struct Problem {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    d_out: Tensor,
    mask: AttentionMask,
}

impl Problem {
    fn new(gpu: &Gpu, t: usize, causal: bool, pass: Pass) -> Problem {
        let shape = [B, H, t, D];
        let make = |seed| {
            let x = Tensor::randn(gpu, &shape, 1.0, seed).unwrap();
            if pass == Pass::ForwardBackward {
                x.requires_grad()
            } else {
                x
            }
        };
        Problem {
            q: make(1),
            k: make(2),
            v: make(3),
            d_out: Tensor::randn(gpu, &shape, 1.0, 4).unwrap(),
            mask: AttentionMask {
                causal,
                key_lens: None,
            },
        }
    }

    /// One call of `path` (records work; nothing waits). The gradients stay in q, k, v until
    /// the next call clears them.
    fn run(&self, path: Path, pass: Pass) {
        for x in [&self.q, &self.k, &self.v] {
            x.zero_grad();
        }
        let out = match path {
            Path::Fused => ops::attention(&self.q, &self.k, &self.v, &self.mask).unwrap(),
            Path::Unfused => {
                ops::attention_unfused(&self.q, &self.k, &self.v, &self.mask, false)
                    .unwrap()
                    .0
            }
        };
        if pass == Pass::ForwardBackward {
            out.backward_with(self.d_out.clone()).unwrap();
        }
    }
}

/// Bytes the pool creates for one call of `path` on a fresh device (see the module comment).
fn extra_bytes(t: usize, causal: bool, path: Path, pass: Pass) -> u64 {
    let gpu = Gpu::new().expect("no GPU adapter");
    let problem = Problem::new(&gpu, t, causal, pass);
    let before = gpu.pooled_bytes();
    problem.run(path, pass);
    gpu.pooled_bytes() - before
}

/// Time per call of `f`, from running it `iters` times and then waiting for the device.
fn time_batch(gpu: &Gpu, iters: u64, f: impl Fn()) -> Duration {
    gpu.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    gpu.synchronize().unwrap();
    start.elapsed()
}

type Key = (usize, bool, Path, Pass);

/// Accumulated (time, iterations) per benchmark, skipping each one's first batch (which
/// compiles pipelines).
#[derive(Default)]
struct Timings(HashMap<Key, (Duration, u64, bool)>);

impl Timings {
    fn add(&mut self, key: Key, t: Duration, iters: u64) {
        let e = self.0.entry(key).or_insert((Duration::ZERO, 0, false));
        if e.2 {
            e.0 += t;
            e.1 += iters;
        }
        e.2 = true;
    }

    fn ms_per_iter(&self, key: Key) -> Option<f64> {
        self.0
            .get(&key)
            .filter(|e| e.1 > 0)
            .map(|e| e.0.as_secs_f64() * 1e3 / e.1 as f64)
    }
}

const PATHS: [Path; 2] = [Path::Fused, Path::Unfused];
const PASSES: [Pass; 2] = [Pass::Forward, Pass::ForwardBackward];

fn main() {
    let gpu = Gpu::shared().expect("no GPU adapter");
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok_and(|v| v == "1");
    let listed: Option<Vec<usize>> = std::env::var("WGFORMER_BENCH_T")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect());
    let lengths: &[usize] = match (&listed, quick) {
        (Some(listed), _) => listed,
        (None, true) => &[64, 256],
        (None, false) => &[64, 128, 256, 512, 1024],
    };
    println!("adapter: {}", gpu.adapter_name());
    // Flat sampling with the minimum of 10 samples: the long cases take seconds per call.
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(if quick { 50 } else { 100 }))
        .measurement_time(Duration::from_millis(if quick { 300 } else { 1000 }))
        .configure_from_args();
    let timings = RefCell::new(Timings::default());

    for &t in lengths {
        for causal in [false, true] {
            for pass in PASSES {
                let problem = Problem::new(&gpu, t, causal, pass);
                let mask_name = if causal { "causal" } else { "full" };
                let mut group = criterion
                    .benchmark_group(format!("attention_{}_T{t}_{mask_name}", pass.name()));
                group.sampling_mode(SamplingMode::Flat);
                for path in PATHS {
                    group.bench_function(path.name(), |bench| {
                        bench.iter_custom(|iters| {
                            let elapsed = time_batch(&gpu, iters, || problem.run(path, pass));
                            timings
                                .borrow_mut()
                                .add((t, causal, path, pass), elapsed, iters);
                            elapsed
                        })
                    });
                }
                group.finish();
            }
        }
    }
    criterion.final_summary();

    let timings = timings.borrow();
    let ms = |key| timings.ms_per_iter(key);
    let text = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    // Measured before printing: every fresh device logs to stderr while it opens.
    let mut rows = Vec::new();
    for &t in lengths {
        for causal in [false, true] {
            for pass in PASSES {
                let (fused, unfused) = (
                    ms((t, causal, Path::Fused, pass)),
                    ms((t, causal, Path::Unfused, pass)),
                );
                let ratio = fused.zip(unfused).map(|(f, u)| u / f);
                rows.push(format!(
                    "{:>5} {:>7} {:>8} {:>13} {:>10} {:>11} {:>9} {:>10.3} {:>12.3}",
                    t,
                    if causal { "causal" } else { "full" },
                    pass.name(),
                    format!("{:?}", ops::AttentionKernel::for_adapter(&gpu, D, t, t)),
                    text(fused),
                    text(unfused),
                    text(ratio),
                    mib(extra_bytes(t, causal, Path::Fused, pass)),
                    mib(extra_bytes(t, causal, Path::Unfused, pass)),
                ));
            }
        }
    }
    println!();
    println!("adapter: {}", gpu.adapter_name());
    println!("B = {B}, H = {H}, D = {D}; MiB: peak extra GPU memory of one call (see the top of this file)");
    println!(
        "{:>5} {:>7} {:>8} {:>13} {:>10} {:>11} {:>9} {:>10} {:>12}",
        "T",
        "mask",
        "pass",
        "fused kernel",
        "fused ms",
        "unfused ms",
        "unf/fus",
        "fused MiB",
        "unfused MiB"
    );
    for row in rows {
        println!("{row}");
    }
}
