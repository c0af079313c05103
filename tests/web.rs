//! The crate in a browser: WebGPU in headless Chromium (`scripts/test_web` builds this for
//! wasm32 and runs it with wasm-bindgen-test). Every device here is opened under WebGPU's
//! default limits (8 storage buffers per shader stage, 16 KiB of workgroup memory, 128 MiB per
//! binding), the least a browser may offer, so the kernels chosen are the ones such an adapter
//! gets. No readback blocks: each is awaited. A page without WebGPU fails the first test.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wgformer::ops::{self, AttentionMask};
use wgformer::reference;
use wgformer::train::{LrSchedule, Trainer};
use wgformer::{Gpu, Tensor};

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Gpu {
    match Gpu::with_limits_async(wgpu::Limits::default()).await {
        Ok(g) => g,
        Err(e) => {
            panic!("no WebGPU device in this browser ({e}); Chromium needs --enable-unsafe-webgpu")
        }
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    wgformer::rng::uniform_vec(n, -1.0, 1.0, seed)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// |got - want| <= tol * (1 + |want|) everywhere (NaN fails).
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (1.0 + w.abs());
        assert!(err <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

async fn read(t: &Tensor) -> Vec<f32> {
    t.to_vec_async().await.unwrap()
}

async fn grad(t: &Tensor) -> Vec<f32> {
    read(&t.grad().expect("no gradient reached this tensor")).await
}

#[wasm_bindgen_test]
async fn the_browser_offers_webgpu_and_blocking_reads_are_refused() {
    let gpu = gpu().await;
    assert!(gpu.max_storage_buffers() >= 8);
    let t = Tensor::from_slice(&gpu, &[1.0, 2.0], &[2]).unwrap();
    assert_eq!(read(&t).await, vec![1.0, 2.0]);
    let e = t.to_vec().unwrap_err().to_string();
    assert!(e.contains("to_vec_async"), "{e}");
}

#[wasm_bindgen_test]
async fn matmul_forward_and_backward_match_the_reference() {
    let gpu = gpu().await;
    // Not multiples of any tile size.
    let (m, k, n) = (37, 53, 29);
    let (a, b, dc) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
    let ta = Tensor::from_slice(&gpu, &a, &[m, k])
        .unwrap()
        .requires_grad();
    let tb = Tensor::from_slice(&gpu, &b, &[k, n])
        .unwrap()
        .requires_grad();
    let c = ops::matmul(&ta, &tb).unwrap();
    let (a64, b64, dc64) = (f64s(&a), f64s(&b), f64s(&dc));
    let want = reference::matmul::matmul(&a64, &b64, 1, m, k, n, false, false, false);
    assert_close("matmul", &read(&c).await, &want, 1e-4);
    c.backward_with(Tensor::from_slice(&gpu, &dc, &[m, n]).unwrap())
        .unwrap();
    let (da, db) =
        reference::matmul::matmul_backward(&a64, &b64, &dc64, 1, m, k, n, false, false, false);
    assert_close("matmul dA", &grad(&ta).await, &da, 1e-4);
    assert_close("matmul dB", &grad(&tb).await, &db, 1e-4);
}

/// q, k, v, dO of [B, H, T, D] with a causal mask and key padding, and the reference's
/// output and gradients.
struct AttentionCase {
    shape: [usize; 4],
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
    lens: Vec<usize>,
    want: Vec<f64>,
    grads: (Vec<f64>, Vec<f64>, Vec<f64>),
}

fn attention_case() -> AttentionCase {
    let [b, h, t, d] = [2, 2, 19, 16];
    let n = b * h * t * d;
    let (q, k, v, dout) = (values(n, 4), values(n, 5), values(n, 6), values(n, 7));
    let lens = vec![t, 11];
    let (q64, k64, v64) = (f64s(&q), f64s(&k), f64s(&v));
    let (want, probs) =
        reference::attention::attention(&q64, &k64, &v64, b, h, t, t, d, true, Some(&lens));
    let grads = reference::attention::attention_backward(
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
    AttentionCase {
        shape: [b, h, t, d],
        q,
        k,
        v,
        dout,
        lens,
        want,
        grads,
    }
}

/// Forward and backward of `run` (one attention path) on `gpu` against the reference.
async fn check_attention(
    gpu: &Gpu,
    c: &AttentionCase,
    what: &str,
    run: impl Fn(&Tensor, &Tensor, &Tensor, &AttentionMask) -> wgformer::Result<Tensor>,
) -> wgformer::Result<()> {
    let leaf = |x: &[f32]| {
        Tensor::from_slice(gpu, x, &c.shape)
            .unwrap()
            .requires_grad()
    };
    let (q, k, v) = (leaf(&c.q), leaf(&c.k), leaf(&c.v));
    let lens: Vec<u32> = c.lens.iter().map(|&l| l as u32).collect();
    let key_lens = Tensor::from_u32(gpu, &lens, &[lens.len()]).unwrap();
    let mask = AttentionMask::causal().with_key_lens(key_lens);
    let out = run(&q, &k, &v, &mask)?;
    assert_close(what, &read(&out).await, &c.want, 1e-4);
    out.backward_with(Tensor::from_slice(gpu, &c.dout, &c.shape).unwrap())?;
    let (dq, dk, dv) = &c.grads;
    assert_close(&format!("{what} dq"), &grad(&q).await, dq, 1e-4);
    assert_close(&format!("{what} dk"), &grad(&k).await, dk, 1e-4);
    assert_close(&format!("{what} dv"), &grad(&v).await, dv, 1e-4);
    Ok(())
}

/// What a model calls (`attention_auto`), the unfused path, and every fused kernel the adapter
/// runs, forward and backward, under WebGPU's default limits (the fused dK/dV kernel binds
/// exactly the eight storage buffers they allow).
#[wasm_bindgen_test]
async fn attention_forward_and_backward_match_the_reference() {
    let c = attention_case();
    let gpu = gpu().await;
    check_attention(&gpu, &c, "attention_auto", ops::attention_auto)
        .await
        .unwrap();
    check_attention(&gpu, &c, "unfused", |q, k, v, m| {
        Ok(ops::attention_unfused(q, k, v, m, false)?.0)
    })
    .await
    .unwrap();
    for variant in ops::AttentionKernel::ALL {
        if !variant.available(&gpu, c.shape[3]) {
            continue;
        }
        let run = |q: &Tensor, k: &Tensor, v: &Tensor, m: &AttentionMask| {
            ops::attention_with(q, k, v, m, variant, false)
        };
        check_attention(&gpu, &c, &format!("{variant:?}"), run)
            .await
            .unwrap();
    }
}

#[wasm_bindgen_test]
async fn layer_norm_forward_and_backward_match_the_reference() {
    let gpu = gpu().await;
    let (rows, cols) = (7, 45);
    let (x, gamma, beta, dy) = (
        values(rows * cols, 8),
        values(cols, 9),
        values(cols, 10),
        values(rows * cols, 11),
    );
    let leaf = |v: &[f32], s: &[usize]| Tensor::from_slice(&gpu, v, s).unwrap().requires_grad();
    let (tx, tg, tb) = (
        leaf(&x, &[rows, cols]),
        leaf(&gamma, &[cols]),
        leaf(&beta, &[cols]),
    );
    let y = ops::layer_norm(&tx, &tg, &tb, 1e-5).unwrap();
    let (x64, g64) = (f64s(&x), f64s(&gamma));
    let (want, mean, rstd) =
        reference::layer_norm::layer_norm(&x64, &g64, &f64s(&beta), rows, cols, 1e-5);
    assert_close("layer_norm", &read(&y).await, &want, 1e-4);
    y.backward_with(Tensor::from_slice(&gpu, &dy, &[rows, cols]).unwrap())
        .unwrap();
    let (dx, dg, db) = reference::layer_norm::layer_norm_backward(
        &x64,
        &g64,
        &mean,
        &rstd,
        &f64s(&dy),
        rows,
        cols,
    );
    assert_close("layer_norm dx", &grad(&tx).await, &dx, 1e-4);
    assert_close("layer_norm dgamma", &grad(&tg).await, &dg, 1e-4);
    assert_close("layer_norm dbeta", &grad(&tb).await, &db, 1e-4);
}

/// A linear classifier, one AdamW step through `Trainer::step_async`: the reported loss and
/// the updated weights against the reference's matmul, cross-entropy and AdamW.
#[wasm_bindgen_test]
async fn one_training_step_matches_the_reference() {
    let gpu = gpu().await;
    let (rows, inputs, classes) = (6, 10, 7);
    let (x, w0) = (values(rows * inputs, 12), values(inputs * classes, 13));
    let targets: Vec<u32> = (0..rows as u32).map(|r| (r * 3) % classes as u32).collect();
    let w = Tensor::from_slice(&gpu, &w0, &[inputs, classes])
        .unwrap()
        .into_param("w");
    let tx = Tensor::from_slice(&gpu, &x, &[rows, inputs]).unwrap();
    let tt = Tensor::from_u32(&gpu, &targets, &[rows]).unwrap();
    let hyper = ops::AdamWParams {
        lr: 0.05,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        wgformer::AdamW::new(vec![w.clone()], hyper).unwrap(),
        LrSchedule::constant(0.05),
        0.0,
        0,
    );
    let stats = trainer
        .step_async(1, |_, _| {
            ops::cross_entropy(&ops::matmul(&tx, &w)?, &tt, u32::MAX, 0.0)
        })
        .await
        .unwrap();

    let (x64, mut w64) = (f64s(&x), f64s(&w0));
    let logits =
        reference::matmul::matmul(&x64, &w64, 1, rows, inputs, classes, false, false, false);
    let t64: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let ce = |l: &[f64]| reference::cross_entropy::cross_entropy(l, &t64, rows, classes, -1, 0.0);
    let loss = ce(&logits);
    let dlogits = reference::cross_entropy::cross_entropy_backward(
        &logits, &t64, rows, classes, -1, 0.0, 1.0,
    );
    let (_, dw) = reference::matmul::matmul_backward(
        &x64, &w64, &dlogits, 1, rows, inputs, classes, false, false, false,
    );
    let (mut m, mut v) = (vec![0.0; dw.len()], vec![0.0; dw.len()]);
    let h = reference::adamw::AdamWParams {
        lr: 0.05,
        beta1: hyper.beta1 as f64,
        beta2: hyper.beta2 as f64,
        eps: hyper.eps as f64,
        weight_decay: 0.01,
    };
    reference::adamw::adamw_update(&mut w64, &dw, &mut m, &mut v, 1, &h);
    assert!(!stats.skipped);
    assert!(
        (stats.loss as f64 - loss).abs() < 1e-4,
        "loss {} vs {loss}",
        stats.loss
    );
    assert_close("updated weights", &read(&w).await, &w64, 1e-4);
}

/// Chromium's WGSL compiler (Tint) is stricter than naga in places (uniformity of barriers,
/// float literals), so every kernel variant this adapter could launch is compiled here.
#[wasm_bindgen_test]
async fn every_kernel_the_adapter_can_launch_compiles_in_the_browser() {
    let mut gpu = gpu().await;
    let (mut compiled, mut failures) = (0, Vec::new());
    for k in ops::all_kernels() {
        let lacks = (k.subgroups && !gpu.has_subgroups()) || (k.f16 && !gpu.has_f16());
        // Cooperative matrices are native only (wgpu has no WebGPU form of them).
        if lacks || k.coop_matrix || k.bindings.len() > gpu.max_storage_buffers() {
            continue;
        }
        match gpu.compile_async(&k).await {
            Ok(()) => compiled += 1,
            Err(e) => {
                failures.push(format!("{}: {e}", k.key()));
                // A refused shader is the device's fault from then on: take a fresh one.
                gpu = self::gpu().await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compiled > 50, "only {compiled} kernels compiled");
}
