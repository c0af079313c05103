//! Matmul variants on square and transformer shapes, next to the adapter's FMA ceiling
//! (`benches/fma_peak.wgsl`) measured in the same run.
//!
//! Each timing records N products (packing dispatches included) and then waits once with
//! `gpu.synchronize()`, so per-dispatch overhead is amortised as in a training step. After the
//! criterion output a table gives GFLOP/s, the speed-up over naive and the share of the FMA
//! ceiling. `WGFORMER_BENCH_QUICK=1` runs only 256 and 1024 with short measurements.
//! `WGFORMER_BENCH_SHAPES` (see `shapes_from_env`) runs only the listed products.
//! Where the adapter has shader-f16, the packed variants also run in half precision
//! (`<variant>+f16`: operands rounded to f16, f32 sums) on a second device, and the
//! cooperative-matrix kernel (`coop_matrix`) where it has tensor cores.

use criterion::{Criterion, Throughput};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wgformer::gpu::{grid, Kernel, ShaderFile};
use wgformer::ops::{self, KernelPolicy, MatmulPrecision, MatmulVariant};
use wgformer::{Gpu, Tensor};

/// Naive, Dot4 and tiled run at 1-2 GFLOP/s on lavapipe: only up to this many multiply-adds.
const SLOW_VARIANT_LIMIT: usize = 1 << 30;

struct Case {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
}

impl Case {
    fn new(name: &str, (m, k, n): (usize, usize, usize), trans_a: bool, trans_b: bool) -> Case {
        Case {
            name: name.to_string(),
            m,
            k,
            n,
            trans_a,
            trans_b,
        }
    }

    fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }

    /// Operands in their stored layout.
    fn operands(&self, gpu: &Gpu) -> (Tensor, Tensor) {
        let a_shape = if self.trans_a {
            [self.k, self.m]
        } else {
            [self.m, self.k]
        };
        let b_shape = if self.trans_b {
            [self.n, self.k]
        } else {
            [self.k, self.n]
        };
        let a = Tensor::randn(gpu, &a_shape, 1.0, 1).unwrap();
        let b = Tensor::randn(gpu, &b_shape, 1.0, 2).unwrap();
        (a, b)
    }
}

/// `WGFORMER_BENCH_SHAPES=1500x384x1536nt,64x64x64`: only these products (M x K x N, then
/// `t` or `n` for A and B: `nt` reads B transposed, as a Linear with [out, in] weights does).
fn shapes_from_env() -> Option<Vec<Case>> {
    let list = std::env::var("WGFORMER_BENCH_SHAPES").ok()?;
    let parse = |spec: &str| -> Option<Case> {
        let (dims, layout) = match spec.find(['n', 't']) {
            Some(i) => spec.split_at(i),
            None => (spec, "nn"),
        };
        let d: Vec<usize> = dims
            .split('x')
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let (trans_a, trans_b) = match layout {
            "nn" => (false, false),
            "nt" => (false, true),
            "tn" => (true, false),
            "tt" => (true, true),
            _ => return None,
        };
        (d.len() == 3).then(|| Case::new(spec, (d[0], d[1], d[2]), trans_a, trans_b))
    };
    Some(
        list.split(',')
            .map(|spec| {
                parse(spec.trim()).unwrap_or_else(|| {
                    panic!("WGFORMER_BENCH_SHAPES: {spec:?} is not MxKxN[nn|nt|tn|tt]")
                })
            })
            .collect(),
    )
}

fn cases(quick: bool) -> Vec<Case> {
    if let Some(cases) = shapes_from_env() {
        return cases;
    }
    let sizes: &[usize] = if quick {
        &[256, 1024]
    } else {
        &[256, 512, 1024, 2048]
    };
    let mut cases: Vec<Case> = sizes
        .iter()
        .map(|&s| Case::new(&format!("square_{s}"), (s, s, s), false, false))
        .collect();
    if !quick {
        // A feed-forward block at 2048 tokens, d_model 256, d_ff 1024, with PyTorch-layout
        // weights ([out, in], read transposed), and the weight gradient dW = dY^T X.
        cases.push(Case::new(
            "ffn_up_2048x256x1024_nt",
            (2048, 256, 1024),
            false,
            true,
        ));
        cases.push(Case::new(
            "ffn_down_2048x1024x256_nt",
            (2048, 1024, 256),
            false,
            true,
        ));
        // One token through the tied output projection (vocab 1024): what generation runs.
        cases.push(Case::new(
            "lm_head_1x256x1024_nt",
            (1, 256, 1024),
            false,
            true,
        ));
        cases.push(Case::new(
            "ffn_dw_1024x2048x256_tn",
            (1024, 2048, 256),
            true,
            false,
        ));
    }
    cases
}

/// Time per call of `f`, from running it `iters` times and then waiting for the device.
fn time_batch(gpu: &Gpu, iters: u64, mut f: impl FnMut()) -> Duration {
    gpu.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    gpu.synchronize().unwrap();
    start.elapsed()
}

/// Accumulated (time, iterations) per benchmark, skipping each one's first batch (which
/// compiles pipelines).
#[derive(Default)]
struct Timings(HashMap<String, (Duration, u64, bool)>);

impl Timings {
    fn add(&mut self, key: &str, t: Duration, iters: u64) {
        let e = self
            .0
            .entry(key.to_string())
            .or_insert((Duration::ZERO, 0, false));
        if e.2 {
            e.0 += t;
            e.1 += iters;
        }
        e.2 = true;
    }

    fn seconds_per_iter(&self, key: &str) -> Option<f64> {
        self.0
            .get(key)
            .filter(|e| e.1 > 0)
            .map(|e| e.0.as_secs_f64() / e.1 as f64)
    }
}

const FMA_WG: u32 = 64;
/// Independent vec4 FMA chains per invocation in fma_peak.wgsl.
const FMA_CHAINS: u32 = 16;
/// Workgroups of the FMA kernel: enough to occupy every core of a CPU adapter, or every
/// multiprocessor of a GPU.
const FMA_GROUPS_CPU: u32 = 256;
const FMA_GROUPS_GPU: u32 = 16384;
const FMA_ITERS: u32 = 4096;

/// `struct Params` of fma_peak.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FmaParams {
    iters: u32,
    mul: f32,
    add: f32,
}

/// One FMA-ceiling dispatch over `out.numel() / FMA_WG` workgroups; returns its flop count.
fn fma_peak(gpu: &Gpu, out: &Tensor) -> f64 {
    let groups = out.numel() as u32 / FMA_WG;
    let file = ShaderFile {
        path: "fma_peak.wgsl",
        text: include_str!("fma_peak.wgsl"),
    };
    let k = Kernel::new(&[file], "fma_peak")
        .define("WG", FMA_WG)
        .write(1);
    let params = FmaParams {
        iters: FMA_ITERS,
        mul: 0.999,
        add: 0.001,
    };
    gpu.dispatch(&k, &params, &[out.storage()], grid(groups))
        .unwrap();
    (groups * FMA_WG) as f64 * FMA_ITERS as f64 * FMA_CHAINS as f64 * 8.0
}

fn main() {
    let gpu = Gpu::shared().expect("no GPU adapter");
    let quick = std::env::var("WGFORMER_BENCH_QUICK").is_ok_and(|v| v == "1");
    let cpu = gpu.inner().info.device_type == wgpu::DeviceType::Cpu;
    println!("adapter: {}", gpu.adapter_name());
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(if quick { 100 } else { 300 }))
        .measurement_time(Duration::from_millis(if quick { 500 } else { 1500 }))
        .configure_from_args();
    let timings = RefCell::new(Timings::default());
    let fma_groups = if cpu { FMA_GROUPS_CPU } else { FMA_GROUPS_GPU };
    let peak_out = Tensor::zeros(&gpu, &[(fma_groups * FMA_WG) as usize]).unwrap();
    let peak_flops = fma_peak(&gpu, &peak_out);

    let variants: Vec<MatmulVariant> = MatmulVariant::ALL
        .into_iter()
        .filter(|&v| gpu.has_subgroups() || v != MatmulVariant::RowBlockSubgroup)
        .collect();
    // Half precision on a device of its own, so the f32 variants keep theirs.
    let half_gpu = Gpu::with_policy(KernelPolicy {
        matmul_precision: MatmulPrecision::Half,
        ..gpu.policy()
    })
    .expect("a second device");
    let mut half_variants: Vec<MatmulVariant> = Vec::new();
    if half_gpu.has_f16() {
        half_variants.extend(variants.iter().copied().filter(|&v| {
            matches!(
                v,
                MatmulVariant::RegisterBlocked
                    | MatmulVariant::RowBlock
                    | MatmulVariant::RowBlockSubgroup
            )
        }));
    }
    if half_gpu.has_coop_matrix() {
        half_variants.push(MatmulVariant::CoopMatrix);
    }
    let half_name = |v: MatmulVariant| match v {
        MatmulVariant::CoopMatrix => v.name().to_string(),
        _ => format!("{}+f16", v.name()),
    };
    let cases = cases(quick);
    for case in &cases {
        let (a, b) = case.operands(&gpu);
        let (ha, hb) = case.operands(&half_gpu);
        let mut group = criterion.benchmark_group(&case.name);
        // The ceiling again for every shape: on a shared machine the load drifts, and the
        // ratio is only meaningful against a ceiling measured next to it.
        group.throughput(Throughput::Elements(peak_flops as u64));
        let key = format!("{}/fma_peak", case.name);
        group.bench_function("fma_peak", |bench| {
            bench.iter_custom(|iters| {
                let t = time_batch(&gpu, iters, || {
                    fma_peak(&gpu, &peak_out);
                });
                timings.borrow_mut().add(&key, t, iters);
                t
            })
        });
        group.throughput(Throughput::Elements(case.flops() as u64));
        for &v in &variants {
            // One output per invocation (the Dot4 kernels too, or naive where they do not fit).
            let slow = matches!(
                v,
                MatmulVariant::Naive
                    | MatmulVariant::Tiled
                    | MatmulVariant::Dot4
                    | MatmulVariant::Dot4Subgroup
            );
            if slow && cpu && case.m * case.k * case.n > SLOW_VARIANT_LIMIT {
                continue;
            }
            let key = format!("{}/{}", case.name, v.name());
            group.bench_function(v.name(), |bench| {
                bench.iter_custom(|iters| {
                    let t = time_batch(&gpu, iters, || {
                        ops::matmul_variant(&a, &b, case.trans_a, case.trans_b, v).unwrap();
                    });
                    timings.borrow_mut().add(&key, t, iters);
                    t
                })
            });
        }
        for &v in &half_variants {
            let name = half_name(v);
            let key = format!("{}/{name}", case.name);
            group.bench_function(&name, |bench| {
                bench.iter_custom(|iters| {
                    let t = time_batch(&half_gpu, iters, || {
                        ops::matmul_variant(&ha, &hb, case.trans_a, case.trans_b, v).unwrap();
                    });
                    timings.borrow_mut().add(&key, t, iters);
                    t
                })
            });
        }
        group.finish();
    }
    criterion.final_summary();

    let timings = timings.borrow();
    println!();
    println!("adapter: {}", gpu.adapter_name());
    println!(
        "GFLOP/s; x naive: speed-up over naive (same shape); % peak: share of the FMA ceiling"
    );
    println!("(fma_peak.wgsl) measured right before that shape.");
    println!(
        "{:<28} {:<22} {:>10} {:>9} {:>9} {:>9}",
        "shape", "variant", "ms", "GFLOP/s", "x naive", "% peak"
    );
    for case in &cases {
        let rate = |v: &str| {
            timings
                .seconds_per_iter(&format!("{}/{v}", case.name))
                .map(|s| (s, case.flops() / s / 1e9))
        };
        let peak = timings
            .seconds_per_iter(&format!("{}/fma_peak", case.name))
            .map(|s| peak_flops / s / 1e9);
        if let Some(p) = peak {
            println!("{:<28} {:<22} {:>10} {:>9.1}", case.name, "fma_peak", "", p);
        }
        let naive = rate(MatmulVariant::Naive.name()).map(|(_, r)| r);
        let names = variants
            .iter()
            .map(|v| v.name().to_string())
            .chain(half_variants.iter().map(|&v| half_name(v)));
        for name in names {
            let Some((secs, gflops)) = rate(&name) else {
                continue;
            };
            let vs_naive = naive
                .map(|n| format!("{:.1}", gflops / n))
                .unwrap_or_else(|| "-".into());
            let vs_peak = peak
                .map(|p| format!("{:.0}%", 100.0 * gflops / p))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<28} {:<22} {:>10.2} {:>9.1} {:>9} {:>9}",
                case.name,
                name,
                secs * 1e3,
                gflops,
                vs_naive,
                vs_peak
            );
        }
    }
}
