//! Matmul vs the CPU reference: every kernel variant with every transpose combination on
//! shapes that are not multiples of any tile, batched and with a shared right operand; the
//! backward of matmul / matmul_nt / matmul_ex vs the reference gradient and vs finite
//! differences, also with each variant forced process-wide; shape errors; and the bench's
//! FMA-ceiling kernel.
mod common;
use common::*;
use wgformer::gpu::{Kernel, ShaderFile};
use wgformer::ops::{self, KernelPolicy, MatmulPacking, MatmulPrecision, MatmulVariant};
use wgformer::reference::matmul as reference;
use wgformer::reference::matmul_half::round_to_half;
use wgformer::Tensor;

/// (M, K, N): one element, shapes that straddle every tile size in use (4, 8, 16, 32, 128),
/// and shapes whose rows are whole vec4 (the packing kernels' fast path) but not whole tiles;
/// with K a multiple of 8 and M, N of 4 the kernels read A and B in place in every layout
/// (12 x 40 x 68 in one tile, 132 x 40 x 260 over partial tiles).
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (7, 33, 65),
    (65, 130, 33),
    (130, 65, 7),
    (3, 5, 200),
    (12, 40, 68),
    (132, 40, 260),
    (36, 132, 260),
];
const TRANSPOSES: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// The variants this adapter really runs (without subgroups the subgroup one would only
/// repeat RowBlock).
fn variants() -> Vec<MatmulVariant> {
    let subgroups = gpu().has_subgroups();
    MatmulVariant::ALL
        .into_iter()
        .filter(|&v| {
            subgroups
                || !matches!(
                    v,
                    MatmulVariant::RowBlockSubgroup | MatmulVariant::Dot4Subgroup
                )
        })
        .collect()
}

/// Storage shape of an operand: `[.., rows, cols]`, swapped when stored transposed.
fn stored(batch: Option<usize>, rows: usize, cols: usize, trans: bool) -> Vec<usize> {
    let mut s: Vec<usize> = batch.into_iter().collect();
    s.extend(if trans { [cols, rows] } else { [rows, cols] });
    s
}

/// Largest scaled error |got - want| / (1 + |want|).
fn max_error(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

/// Run `v` on one problem and compare with the reference; returns the max error.
#[allow(clippy::too_many_arguments)]
fn check_forward(
    v: MatmulVariant,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    shared_b: bool,
) -> f64 {
    let batched = (batch > 1).then_some(batch);
    let b_batch = if shared_b { None } else { batched };
    let (a_shape, b_shape) = (stored(batched, m, k, ta), stored(b_batch, k, n, tb));
    let av = values(a_shape.iter().product(), 11 + m as u64);
    let bv = values(b_shape.iter().product(), 12 + n as u64);
    let c = ops::matmul_variant(&tensor(&av, &a_shape), &tensor(&bv, &b_shape), ta, tb, v).unwrap();
    let mut want_shape: Vec<usize> = batched.into_iter().collect();
    want_shape.extend([m, n]);
    assert_eq!(c.shape(), want_shape.as_slice(), "{v:?} output shape");
    let want = reference::matmul(
        &f64s(&av),
        &f64s(&bv),
        batch,
        m,
        k,
        n,
        ta,
        tb,
        shared_b || batch == 1,
    );
    let what =
        format!("{v:?} batch={batch} m={m} k={k} n={n} trans=({ta},{tb}) shared_b={shared_b}");
    let got = c.to_vec().unwrap();
    assert_close(&what, &got, &want, 1e-4);
    max_error(&got, &want)
}

#[test]
fn every_variant_matches_reference_for_every_transpose_on_odd_shapes() {
    for v in variants() {
        let mut worst = 0.0f64;
        for (ta, tb) in TRANSPOSES {
            for (m, k, n) in SHAPES {
                worst = worst.max(check_forward(v, 1, m, k, n, ta, tb, false));
            }
        }
        println!("{v:?}: max scaled error {worst:.2e}");
    }
}

#[test]
fn every_variant_handles_batches_and_a_shared_right_operand() {
    for v in variants() {
        let mut worst = 0.0f64;
        for (ta, tb) in TRANSPOSES {
            for (m, k, n) in [(7, 33, 65), (65, 18, 9), (20, 36, 44), (12, 48, 20)] {
                for shared_b in [false, true] {
                    worst = worst.max(check_forward(v, 3, m, k, n, ta, tb, shared_b));
                }
            }
        }
        println!("{v:?} batched: max scaled error {worst:.2e}");
    }
}

/// A product with few output tiles and a long K (a weight gradient) makes the
/// register-blocked kernel split K into slices, each written apart and then summed: K = 1001
/// gives slices of 336, the last one short and ending in padding; a batch of 2 shares B.
#[test]
fn register_blocked_split_k_matches_reference() {
    for (ta, tb) in TRANSPOSES {
        check_forward(
            MatmulVariant::RegisterBlocked,
            1,
            9,
            1001,
            130,
            ta,
            tb,
            false,
        );
        check_forward(MatmulVariant::RegisterBlocked, 2, 5, 700, 7, ta, tb, true);
        // Operands read in place, four slices of 256.
        check_forward(
            MatmulVariant::RegisterBlocked,
            1,
            12,
            1024,
            132,
            ta,
            tb,
            false,
        );
    }
}

/// Where K needs no padding and the loads are whole vec4, the register-blocked kernel reads A
/// and B where they are stored, in every layout: one dispatch per product instead of three
/// (pack A, pack B, multiply), with the reference's result. `MatmulPacking::Always` packs
/// both, and a K needing padding (33) packs both either way.
#[test]
fn register_blocked_reads_aligned_operands_in_place_for_every_transpose() {
    for packing in [MatmulPacking::Auto, MatmulPacking::Always] {
        let device = device_with(KernelPolicy {
            matmul: Some(MatmulVariant::RegisterBlocked),
            matmul_packing: packing,
            ..KernelPolicy::default()
        });
        let _on = use_device(&device);
        for (ta, tb) in TRANSPOSES {
            for (m, k, n, in_place) in [(20, 40, 12, true), (20, 33, 12, false)] {
                let (a_shape, b_shape) = (stored(None, m, k, ta), stored(None, k, n, tb));
                let av = values(m * k, 3);
                let bv = values(k * n, 4);
                let (a, b) = (tensor(&av, &a_shape), tensor(&bv, &b_shape));
                let before = device.counters();
                let c = ops::matmul_variant(&a, &b, ta, tb, MatmulVariant::RegisterBlocked);
                let dispatches = (device.counters() - before).dispatches;
                let want = reference::matmul(&f64s(&av), &f64s(&bv), 1, m, k, n, ta, tb, true);
                let what = format!("{packing:?} m={m} k={k} n={n} trans=({ta},{tb})");
                assert_close(&what, &c.unwrap().to_vec().unwrap(), &want, 1e-4);
                let expected = if in_place && packing == MatmulPacking::Auto {
                    1
                } else {
                    3
                };
                assert_eq!(dispatches, expected, "{what}");
            }
        }
    }
}

/// The one-token kernels only run where their layout fits (A row-major, B transposed, K a
/// multiple of 4; for the subgroup one also N a multiple of the subgroup size): the shapes
/// above mostly send them to their fallbacks, so these shapes are theirs. K = 36 and 260 leave
/// a tail of k-quads after the subgroup kernel's blocks of 8; M > 1 and batches check that
/// every subgroup stays on its own rows of A (the subgroup kernel takes them two at a time in
/// blocks of 8: M = 2, 3, 5 and 11 end on a pair or a lone row, in the first block or the next).
#[test]
fn one_token_kernels_match_reference_where_they_run() {
    let mut kernels = vec![MatmulVariant::Dot4];
    if gpu().has_subgroups() {
        kernels.push(MatmulVariant::Dot4Subgroup);
    }
    for v in kernels {
        let mut worst = 0.0f64;
        for (m, k, n) in [
            (1, 32, 8),
            (1, 36, 24),
            (1, 260, 64),
            (3, 256, 40),
            (5, 68, 1024),
            (2, 36, 16),
            (11, 260, 72),
        ] {
            worst = worst.max(check_forward(v, 1, m, k, n, false, true, false));
            for shared_b in [false, true] {
                worst = worst.max(check_forward(v, 3, m, k, n, false, true, shared_b));
            }
        }
        println!("{v:?} where it runs: max scaled error {worst:.2e}");
    }
}

#[test]
fn matmul_over_leading_batch_dims_keeps_them() {
    let (av, bv) = (values(2 * 3 * 5 * 4, 1), values(2 * 3 * 4 * 6, 2));
    let c = ops::matmul(&tensor(&av, &[2, 3, 5, 4]), &tensor(&bv, &[2, 3, 4, 6])).unwrap();
    assert_eq!(c.shape(), &[2, 3, 5, 6]);
    let want = reference::matmul(&f64s(&av), &f64s(&bv), 6, 5, 4, 6, false, false, false);
    assert_close("4-D matmul", &c.to_vec().unwrap(), &want, 1e-5);
}

#[test]
fn empty_inner_dimension_gives_zeros() {
    let c = ops::matmul(&tensor(&[], &[3, 0]), &tensor(&[], &[0, 2])).unwrap();
    assert_eq!(c.shape(), &[3, 2]);
    assert_eq!(c.to_vec().unwrap(), vec![0.0; 6]);
}

/// Forward and backward of `op(a) @ op(b)` through the public API vs the reference gradient;
/// returns (dA, dB) from the GPU.
#[allow(clippy::too_many_arguments)]
fn check_backward(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    shared_b: bool,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let batched = (batch > 1).then_some(batch);
    let b_batch = if shared_b { None } else { batched };
    let (a_shape, b_shape) = (stored(batched, m, k, ta), stored(b_batch, k, n, tb));
    let av = values(a_shape.iter().product(), seed);
    let bv = values(b_shape.iter().product(), seed + 1);
    let wv = values(batch * m * n, seed + 2);
    let (a, b) = (leaf(&av, &a_shape), leaf(&bv, &b_shape));
    let c = match (ta, tb) {
        (false, false) => ops::matmul(&a, &b),
        (false, true) => ops::matmul_nt(&a, &b),
        _ => ops::matmul_ex(&a, &b, ta, tb),
    }
    .unwrap();
    let shared = shared_b || batch == 1;
    let want = reference::matmul(&f64s(&av), &f64s(&bv), batch, m, k, n, ta, tb, shared);
    let what = format!("batch={batch} m={m} k={k} n={n} trans=({ta},{tb}) shared_b={shared_b}");
    assert_close(
        &format!("forward {what}"),
        &c.to_vec().unwrap(),
        &want,
        1e-4,
    );
    c.backward_with(tensor(&wv, c.shape())).unwrap();
    let (da, db) = reference::matmul_backward(
        &f64s(&av),
        &f64s(&bv),
        &f64s(&wv),
        batch,
        m,
        k,
        n,
        ta,
        tb,
        shared,
    );
    let (ga, gb) = (grad_of(&a), grad_of(&b));
    assert_close(&format!("dA {what}"), &ga, &da, 1e-4);
    assert_close(&format!("dB {what}"), &gb, &db, 1e-4);
    println!(
        "{what}: dA error {:.2e}, dB error {:.2e}",
        max_error(&ga, &da),
        max_error(&gb, &db)
    );
    (ga, gb)
}

#[test]
fn backward_matches_reference_for_every_transpose_batched_and_shared() {
    for (ta, tb) in TRANSPOSES {
        for (batch, shared_b) in [(1, false), (3, false), (3, true)] {
            for (m, k, n) in [(5, 7, 6), (33, 65, 130), (36, 20, 68)] {
                check_backward(batch, m, k, n, ta, tb, shared_b, 21);
            }
        }
    }
}

#[test]
fn every_forced_variant_gives_the_reference_forward_and_backward() {
    // On a device of its own: the tests running beside this one keep their choices.
    let device = device_with(KernelPolicy::default());
    for v in variants() {
        device.set_policy(KernelPolicy {
            matmul: Some(v),
            ..KernelPolicy::default()
        });
        let _on = use_device(&device);
        for (ta, tb) in TRANSPOSES {
            check_backward(3, 20, 36, 44, ta, tb, true, 51);
        }
        println!("forced {v:?}: ok");
    }
}

#[test]
fn backward_matches_finite_differences_on_small_shapes() {
    let (batch, m, k, n) = (2, 3, 4, 5);
    for (ta, tb) in TRANSPOSES {
        for shared_b in [false, true] {
            let (ga, gb) = check_backward(batch, m, k, n, ta, tb, shared_b, 31);
            let b_batch = if shared_b { None } else { Some(batch) };
            let av = f64s(&values(batch * m * k, 31));
            let bv = f64s(&values(b_batch.unwrap_or(1) * k * n, 32));
            let wv = f64s(&values(batch * m * n, 33));
            let f_a = |a: &[f64]| reference::matmul(a, &bv, batch, m, k, n, ta, tb, shared_b);
            let f_b = |b: &[f64]| reference::matmul(&av, b, batch, m, k, n, ta, tb, shared_b);
            let what = format!("trans=({ta},{tb}) shared_b={shared_b}");
            assert_matches_finite_differences(
                &format!("dA vs fd {what}"),
                &ga,
                &av,
                &wv,
                f_a,
                1e-3,
            );
            assert_matches_finite_differences(
                &format!("dB vs fd {what}"),
                &gb,
                &bv,
                &wv,
                f_b,
                1e-3,
            );
        }
    }
}

#[test]
fn gradient_reaches_only_inputs_that_need_it() {
    let (av, bv) = (values(4 * 3, 41), values(5 * 3, 42));
    let a = tensor(&av, &[4, 3]);
    let b = leaf(&bv, &[5, 3]);
    let c = ops::matmul_nt(&a, &b).unwrap();
    c.backward_with(Tensor::ones(&gpu(), &[4, 5]).unwrap())
        .unwrap();
    assert!(a.grad().is_none());
    let (_, db) = reference::matmul_backward(
        &f64s(&av),
        &f64s(&bv),
        &[1.0; 20],
        1,
        4,
        3,
        5,
        false,
        true,
        true,
    );
    assert_close("dB of matmul_nt", &grad_of(&b), &db, 1e-5);
}

fn shape_error(r: wgformer::Result<Tensor>) -> String {
    match r {
        Err(e @ wgformer::Error::Shape { .. }) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn mismatched_shapes_are_errors_not_panics() {
    let t = |shape: &[usize]| tensor(&values(shape.iter().product(), 5), shape);
    let msg = shape_error(ops::matmul(&t(&[4, 3]), &t(&[5, 6])));
    assert!(msg.contains("K = 3") && msg.contains("K = 5"), "{msg}");
    shape_error(ops::matmul_nt(&t(&[4, 3]), &t(&[6, 5])));
    shape_error(ops::matmul_ex(&t(&[3, 4]), &t(&[5, 6]), true, false));
    shape_error(ops::matmul(&t(&[2, 4, 3]), &t(&[3, 3, 6])));
    shape_error(ops::matmul(&t(&[4]), &t(&[4, 2])));
    shape_error(ops::matmul_variant(
        &t(&[2, 4, 3]),
        &t(&[5, 6]),
        false,
        false,
        MatmulVariant::RowBlock,
    ));
}

#[test]
fn variant_names_round_trip() {
    for v in MatmulVariant::ALL {
        assert_eq!(MatmulVariant::from_name(v.name()), Some(v));
    }
    assert_eq!(MatmulVariant::from_name("fastest"), None);
}

/// `struct Params` of benches/fma_peak.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FmaParams {
    iters: u32,
    mul: f32,
    add: f32,
}

#[test]
fn fma_peak_kernel_computes_its_recurrence() {
    // The bench's compute-ceiling kernel must really do its FMAs: compare with the same
    // recurrence on the CPU (f32 fused multiply-add, same summation order).
    let gpu = gpu();
    let file = ShaderFile {
        path: "fma_peak.wgsl",
        text: include_str!("../benches/fma_peak.wgsl"),
    };
    let k = Kernel::new(&[file], "fma_peak").define("WG", 64).write(1);
    k.validate().unwrap();
    let (iters, mul, add) = (100u32, 0.99f32, 0.01f32);
    let out = Tensor::zeros(&gpu, &[128]).unwrap();
    gpu.dispatch(
        &k,
        &FmaParams { iters, mul, add },
        &[out.storage()],
        wgformer::gpu::grid(2),
    )
    .unwrap();
    let got = out.to_vec().unwrap();
    let want: Vec<f64> = (0..128)
        .map(|e| {
            let x: Vec<[f32; 4]> = (0..16)
                .map(|j| {
                    let mut v = [0.0, 0.25, 0.5, 0.75].map(|o| e as f32 + o + j as f32);
                    for _ in 0..iters {
                        v = v.map(|c| c.mul_add(mul, add));
                    }
                    v
                })
                .collect();
            let add4 =
                |a: [f32; 4], b: [f32; 4]| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]];
            let sum = |i: usize, n: usize| -> [f32; 4] {
                let pairs: Vec<[f32; 4]> = (i..i + n)
                    .step_by(2)
                    .map(|j| add4(x[j], x[j + 1]))
                    .collect();
                let quads: Vec<[f32; 4]> = pairs.chunks(2).map(|p| add4(p[0], p[1])).collect();
                add4(quads[0], quads[1])
            };
            let t = add4(sum(0, 8), sum(8, 8));
            ((t[0] + t[1]) + (t[2] + t[3])) as f64
        })
        .collect();
    // Loose enough for an unfused multiply-add; one round more or less moves the values by ~1%.
    assert_close("fma_peak output", &got, &want, 1e-5);
}

/// Half precision (`MatmulPrecision::Half`): the packed kernels read A and B rounded to f16
/// and sum in f32, so they must equal the reference on f16-rounded operands to f32 accuracy,
/// and differ from the unrounded reference by about f16's rounding (proof that the operands
/// really were halves). Where the adapter has no shader-f16 they compute in f32 instead.
fn check_half(
    device: &wgformer::Gpu,
    v: MatmulVariant,
    batch: usize,
    dims: (usize, usize, usize),
    ta: bool,
    tb: bool,
    shared_b: bool,
) -> f64 {
    let _on = use_device(device);
    let (m, k, n) = dims;
    let batched = (batch > 1).then_some(batch);
    let b_batch = if shared_b { None } else { batched };
    let (a_shape, b_shape) = (stored(batched, m, k, ta), stored(b_batch, k, n, tb));
    let av = values(a_shape.iter().product(), 31 + m as u64);
    let bv = values(b_shape.iter().product(), 32 + n as u64);
    let c = ops::matmul_variant(&tensor(&av, &a_shape), &tensor(&bv, &b_shape), ta, tb, v).unwrap();
    let got = c.to_vec().unwrap();
    let shared = shared_b || batch == 1;
    let exact = reference::matmul(&f64s(&av), &f64s(&bv), batch, m, k, n, ta, tb, shared);
    let what =
        format!("{v:?} half batch={batch} m={m} k={k} n={n} trans=({ta},{tb}) shared_b={shared_b}");
    if !device.has_f16() {
        assert_close(&what, &got, &exact, 1e-4);
        return 0.0;
    }
    let half = |x: &[f32]| round_to_half(&f64s(x));
    let rounded = reference::matmul(&half(&av), &half(&bv), batch, m, k, n, ta, tb, shared);
    assert_close(&what, &got, &rounded, 1e-5);
    max_error(&got, &exact)
}

fn half_device(v: MatmulVariant) -> wgformer::Gpu {
    device_with(KernelPolicy {
        matmul: Some(v),
        matmul_precision: MatmulPrecision::Half,
        ..KernelPolicy::default()
    })
}

/// Every packed kernel in half precision, every transpose, odd shapes, batches and a shared
/// B. CoopMatrix runs on tensor cores where the adapter offers 16x16 f16 cooperative matrices
/// (an NVIDIA GPU) and as the register-blocked kernel in half precision elsewhere.
#[test]
fn half_precision_kernels_match_the_reference_on_f16_rounded_operands() {
    let mut kernels = vec![
        MatmulVariant::RowBlock,
        MatmulVariant::RegisterBlocked,
        MatmulVariant::CoopMatrix,
    ];
    if gpu().has_subgroups() {
        kernels.push(MatmulVariant::RowBlockSubgroup);
    }
    for v in kernels {
        let device = half_device(v);
        let mut rounding = 0.0f64;
        for (ta, tb) in TRANSPOSES {
            for dims in [(7, 33, 65), (65, 130, 33), (36, 132, 260), (130, 65, 7)] {
                rounding = rounding.max(check_half(&device, v, 1, dims, ta, tb, false));
            }
            for shared_b in [false, true] {
                rounding = rounding.max(check_half(&device, v, 3, (20, 36, 44), ta, tb, shared_b));
            }
        }
        println!(
            "{v:?} half (f16 in shaders: {}, tensor cores: {}): distance from the unrounded reference {rounding:.2e}",
            device.has_f16(),
            device.has_coop_matrix()
        );
        if device.has_f16() {
            // f16 keeps 11 significant bits: sums of ~100 products of values in [-1, 1) move
            // by ~1e-3; an f32 kernel stays under 1e-5.
            assert!(
                rounding > 1e-4,
                "{v:?}: operands were not rounded to f16 ({rounding:.2e})"
            );
        }
    }
}

/// The backward in half precision: dA = dC op(B)^T and dB = op(A)^T dC also read f16-rounded
/// operands (dC included), so they equal the reference gradient of rounded values.
#[test]
fn half_precision_backward_matches_the_reference_on_f16_rounded_operands() {
    let device = half_device(MatmulVariant::RegisterBlocked);
    let _on = use_device(&device);
    let half = |x: &[f32]| -> Vec<f64> {
        if device.has_f16() {
            round_to_half(&f64s(x))
        } else {
            f64s(x)
        }
    };
    let (batch, m, k, n) = (3, 20, 36, 44);
    for (ta, tb) in TRANSPOSES {
        let (a_shape, b_shape) = (stored(Some(batch), m, k, ta), stored(None, k, n, tb));
        let av = values(a_shape.iter().product(), 61);
        let bv = values(b_shape.iter().product(), 62);
        let wv = values(batch * m * n, 63);
        let (a, b) = (leaf(&av, &a_shape), leaf(&bv, &b_shape));
        let c = ops::matmul_ex(&a, &b, ta, tb).unwrap();
        c.backward_with(tensor(&wv, c.shape())).unwrap();
        let (da, db) = reference::matmul_backward(
            &half(&av),
            &half(&bv),
            &half(&wv),
            batch,
            m,
            k,
            n,
            ta,
            tb,
            true,
        );
        let what = format!("half backward trans=({ta},{tb})");
        assert_close(&format!("dA {what}"), &grad_of(&a), &da, 1e-5);
        assert_close(&format!("dB {what}"), &grad_of(&b), &db, 1e-5);
    }
}

/// The cooperative-matrix kernel cannot run on lavapipe (no `VK_KHR_cooperative_matrix`), so
/// besides the reference check above (which runs it where the adapter has tensor cores) its
/// shader is translated here to SPIR-V, the form the Vulkan driver receives: naga must emit
/// the cooperative-matrix multiply-add (OpCooperativeMatrixMulAddKHR, opcode 4459).
#[test]
fn coop_matrix_kernel_translates_to_spirv_multiply_adds() {
    let kernel = ops::all_kernels()
        .into_iter()
        .find(|k| k.entry == "coop_matrix")
        .expect("the coop_matrix kernel is listed");
    let text = kernel.wgsl();
    let module = naga::front::wgsl::parse_str(&text).unwrap();
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap();
    let options = naga::back::spv::Options {
        lang_version: (1, 6),
        ..Default::default()
    };
    let words = naga::back::spv::write_vec(&module, &info, &options, None).unwrap();
    // Each instruction starts with (word count << 16) | opcode; skip the 5-word header.
    let mut opcodes = Vec::new();
    let mut at = 5;
    while at < words.len() {
        opcodes.push(words[at] & 0xffff);
        at += (words[at] >> 16).max(1) as usize;
    }
    let count = |op: u32| opcodes.iter().filter(|&&o| o == op).count();
    assert_eq!(
        count(4459),
        4,
        "four OpCooperativeMatrixMulAddKHR per K step"
    );
    assert_eq!(count(4457), 4, "four OpCooperativeMatrixLoadKHR");
    assert_eq!(
        count(4458),
        1,
        "one OpCooperativeMatrixStoreKHR (store_tile)"
    );
}
