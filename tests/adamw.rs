//! The fused AdamW kernel vs the CPU reference (`reference::adamw::adamw_update`) over several
//! steps, and the `AdamW` optimizer's bookkeeping (skipping parameters without a gradient,
//! clearing gradients).
mod common;
use common::*;
use wgformer::ops::{self, AdamWParams, KernelPolicy};
use wgformer::reference::adamw::{adamw_update, AdamWParams as RefAdamW};
use wgformer::{AdamW, Tensor};

fn reference_hyper(h: &AdamWParams) -> RefAdamW {
    RefAdamW {
        lr: h.lr as f64,
        beta1: h.beta1 as f64,
        beta2: h.beta2 as f64,
        eps: h.eps as f64,
        weight_decay: h.weight_decay as f64,
    }
}

#[test]
fn adamw_kernel_matches_reference_over_several_steps_on_odd_lengths() {
    for n in [1usize, 7, 1000] {
        for weight_decay in [0.0f32, 0.1] {
            let h = AdamWParams {
                lr: 0.05,
                weight_decay,
                ..AdamWParams::default()
            };
            let rh = reference_hyper(&h);
            let pv = values(n, 1);
            let (p, m, v) = (
                tensor(&pv, &[n]),
                Tensor::zeros(&gpu(), &[n]).unwrap(),
                Tensor::zeros(&gpu(), &[n]).unwrap(),
            );
            let (mut rp, mut rm, mut rv) = (f64s(&pv), vec![0.0; n], vec![0.0; n]);
            for step in 1..=5u32 {
                let gv = values(n, 100 + step as u64);
                ops::adamw_update(&p, &tensor(&gv, &[n]), &m, &v, &h, step, None).unwrap();
                adamw_update(&mut rp, &f64s(&gv), &mut rm, &mut rv, step, &rh);
            }
            let what = format!("n {n} weight decay {weight_decay}");
            assert_close(&format!("{what}: param"), &p.to_vec().unwrap(), &rp, 1e-5);
            assert_close(&format!("{what}: m"), &m.to_vec().unwrap(), &rm, 1e-6);
            assert_close(&format!("{what}: v"), &v.to_vec().unwrap(), &rv, 1e-6);
        }
    }
}

#[test]
fn weight_decay_shrinks_a_parameter_whose_gradient_is_zero() {
    // m = v = 0 and g = 0 leave only the decoupled decay: p *= 1 - lr * wd, exactly.
    let h = AdamWParams {
        lr: 0.1,
        weight_decay: 0.5,
        ..AdamWParams::default()
    };
    let p = tensor(&[2.0, -4.0, 0.0], &[3]);
    let z = || Tensor::zeros(&gpu(), &[3]).unwrap();
    ops::adamw_update(&p, &z(), &z(), &z(), &h, 1, None).unwrap();
    assert_close("decayed", &p.to_vec().unwrap(), &[1.9, -3.8, 0.0], 1e-7);
}

#[test]
fn adamw_update_rejects_mismatched_lengths_aliasing_and_step_zero() {
    let h = AdamWParams::default();
    let t = |n: usize| Tensor::zeros(&gpu(), &[n]).unwrap();
    let (p, g, m, v) = (t(4), t(4), t(4), t(4));
    let short = t(3);
    assert!(
        ops::adamw_update(&p, &short, &m, &v, &h, 1, None).is_err(),
        "grad too short"
    );
    assert!(
        ops::adamw_update(&p, &g, &m, &short, &h, 1, None).is_err(),
        "v too short"
    );
    assert!(
        ops::adamw_update(&p, &g, &m, &v, &h, 0, None).is_err(),
        "step 0"
    );
    let err = ops::adamw_update(&p, &g, &m, &m, &h, 1, None).unwrap_err();
    assert!(err.to_string().contains("distinct"), "{err}");
    let ids = Tensor::from_u32(&gpu(), &[1, 2, 3, 4], &[4]).unwrap();
    assert!(
        ops::adamw_update(&p, &ids, &m, &v, &h, 1, None).is_err(),
        "u32 gradient"
    );
}

#[test]
fn optimizer_steps_parameters_with_gradients_and_skips_the_rest() {
    let h = AdamWParams {
        lr: 0.01,
        ..AdamWParams::default()
    };
    let av = values(7, 3);
    let a = tensor(&av, &[7]).into_param("a");
    let b = tensor(&values(5, 4), &[5]).into_param("b");
    let mut opt = AdamW::new(vec![a.clone(), b.clone()], h).unwrap();
    let b_before = b.to_vec().unwrap();
    let (mut rp, mut rm, mut rv) = (f64s(&av), vec![0.0; 7], vec![0.0; 7]);
    // loss = sum(a * w) only involves a, so b gets no gradient.
    let wv = values(7, 5);
    for step in 1..=3u32 {
        let loss = ops::sum_axis(&ops::mul(&a, &tensor(&wv, &[7])).unwrap(), 0).unwrap();
        loss.backward().unwrap();
        assert!(b.grad().is_none());
        opt.step().unwrap();
        opt.zero_grad();
        assert!(a.grad().is_none(), "zero_grad clears the gradient");
        adamw_update(
            &mut rp,
            &f64s(&wv),
            &mut rm,
            &mut rv,
            step,
            &reference_hyper(&h),
        );
    }
    assert_close("a after 3 steps", &a.to_vec().unwrap(), &rp, 1e-5);
    assert_eq!(
        b.to_vec().unwrap(),
        b_before,
        "b had no gradient and must not move, not even by decay"
    );
}

#[test]
fn set_lr_changes_the_next_step() {
    let p = tensor(&[1.0], &[1]).into_param("p");
    let mut opt = AdamW::new(
        vec![p.clone()],
        AdamWParams {
            weight_decay: 0.0,
            ..AdamWParams::default()
        },
    )
    .unwrap();
    opt.set_lr(0.25);
    assert_eq!(opt.lr(), 0.25);
    ops::scale(&p, 3.0)
        .unwrap()
        .reshape(&[])
        .unwrap()
        .backward()
        .unwrap();
    opt.step().unwrap();
    // First Adam step moves by lr * sign(g) (up to eps).
    assert_close("p", &p.to_vec().unwrap(), &[0.75], 1e-6);
}

#[test]
fn optimizer_rejects_tensors_that_are_not_trainable() {
    let plain = tensor(&[1.0, 2.0], &[2]);
    assert!(AdamW::new(vec![plain], AdamWParams::default()).is_err());
}

#[test]
fn global_grad_norm_and_clipping_coefficient_match_the_cpu() {
    let (a, b) = (values(1000, 21), values(7, 22));
    let norm = a
        .iter()
        .chain(&b)
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let (ta, tb) = (tensor(&a, &[1000]), tensor(&b, &[7]));
    for max_norm in [0.0f32, 1.0, 1e6] {
        let out = ops::grad_norm_and_clip(&[&ta, &tb], max_norm, None, 1.0)
            .unwrap()
            .to_vec()
            .unwrap();
        let coef = if max_norm <= 0.0 {
            1.0
        } else {
            (max_norm as f64 / (norm + 1e-6)).min(1.0)
        };
        assert_close(
            &format!("norm, coefficient at max_norm {max_norm}"),
            &out,
            &[norm, coef, 0.0],
            1e-5,
        );
    }
    assert!(ops::grad_norm_and_clip(&[], 1.0, None, 1.0).is_err());
}

/// Many tensors of many sizes (more than the seven one dispatch reads, several larger than a
/// workgroup's chunk of 16,384 elements, one with a partial last chunk): the norm of all of
/// them, in one dispatch per seven tensors plus the final sum; a NaN in the last group still
/// zeroes the coefficient.
#[test]
fn the_norm_of_many_tensors_of_many_sizes_is_taken_seven_at_a_time() {
    let sizes = [
        1, 16_383, 16_384, 16_385, 40_000, 7, 3, 100, 65_536, 5, 1, 2, 33, 16_384, 9, 70_001, 4,
    ];
    let data: Vec<Vec<f32>> = (0..sizes.len())
        .map(|i| values(sizes[i], 40 + i as u64))
        .collect();
    let norm = data
        .iter()
        .flatten()
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let tensors: Vec<_> = data.iter().map(|d| tensor(d, &[d.len()])).collect();
    let refs: Vec<&wgformer::Tensor> = tensors.iter().collect();
    let (gpu, loss) = (gpu(), tensor(&[0.5], &[1]));
    let before = gpu.counters();
    let out = ops::grad_norm_and_clip(&refs, 1.0, Some(&loss), 1.0).unwrap();
    let dispatches = (gpu.counters() - before).dispatches;
    let out = out.to_vec().unwrap();
    assert_close(
        "norm, coefficient, loss",
        &out,
        &[norm, 1.0 / (norm + 1e-6), 0.5],
        1e-5,
    );
    assert_eq!(dispatches, 3 + 1, "17 tensors: 3 sums and the finish");
    let mut bad = data[15].clone();
    bad[70_000] = f32::NAN;
    let bad = tensor(&bad, &[bad.len()]);
    let mut refs = refs;
    refs[15] = &bad;
    let out = ops::grad_norm_and_clip(&refs, 1.0, None, 1.0).unwrap();
    assert_eq!(out.to_vec().unwrap()[1], 0.0, "a NaN must skip the step");
}

/// Loss scaling: gradients S times too large, with `loss_scale` S, report the true norm and a
/// coefficient that divides S out (what the optimizer multiplies the gradients by).
#[test]
fn a_loss_scale_is_divided_out_of_the_norm_and_the_coefficient() {
    let g = values(300, 25);
    let norm = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let scale = 4096.0f32;
    let scaled: Vec<f32> = g.iter().map(|x| x * scale).collect();
    let t = tensor(&scaled, &[300]);
    for max_norm in [0.0f32, 1.0] {
        let out = ops::grad_norm_and_clip(&[&t], max_norm, None, scale)
            .unwrap()
            .to_vec()
            .unwrap();
        let clip = if max_norm <= 0.0 {
            1.0
        } else {
            (max_norm as f64 / (norm + 1e-6)).min(1.0)
        };
        let want = [norm, clip / scale as f64, 0.0];
        assert_close(
            &format!("scaled, max_norm {max_norm}"),
            &out[..1],
            &want[..1],
            1e-5,
        );
        assert!(
            ((out[1] as f64) - want[1]).abs() <= 1e-5 * want[1],
            "coefficient {} vs {}",
            out[1],
            want[1]
        );
    }
    for bad in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        let e = ops::grad_norm_and_clip(&[&t], 1.0, None, bad).unwrap_err();
        assert!(e.to_string().contains("loss scale"), "{e}");
    }
}

#[test]
fn clipped_adamw_step_equals_the_reference_step_on_the_scaled_gradient() {
    let n = 33;
    let (pv, gv) = (values(n, 23), values(n, 24));
    let h = ops::AdamWParams {
        lr: 0.01,
        weight_decay: 0.1,
        ..Default::default()
    };
    let g = tensor(&gv, &[n]);
    let clip = ops::grad_norm_and_clip(&[&g], 0.5, None, 1.0).unwrap();
    let coef = clip.to_vec().unwrap()[1] as f64;
    assert!(coef < 1.0, "the test gradient must actually be clipped");
    let (p, m, v) = (
        tensor(&pv, &[n]),
        tensor(&vec![0.0; n], &[n]),
        tensor(&vec![0.0; n], &[n]),
    );
    ops::adamw_update(&p, &g, &m, &v, &h, 1, Some(&clip)).unwrap();
    let mut rp = f64s(&pv);
    let (mut rm, mut rv) = (vec![0.0; n], vec![0.0; n]);
    let scaled: Vec<f64> = gv.iter().map(|&x| x as f64 * coef).collect();
    let rh = wgformer::reference::adamw::AdamWParams {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    wgformer::reference::adamw::adamw_update(&mut rp, &scaled, &mut rm, &mut rv, 1, &rh);
    assert_close("clipped param", &p.to_vec().unwrap(), &rp, 1e-5);
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_torch_semantics_over_three_steps() {
    let n = 7;
    let (pv, gv) = (values(n, 31), values(n, 32));
    let (lr, mu, wd) = (0.1f32, 0.9f32, 0.01f32);
    let (p, buf) = (tensor(&pv, &[n]), tensor(&vec![0.0; n], &[n]));
    let g = tensor(&gv, &[n]);
    let (mut rp, mut rb) = (f64s(&pv), vec![0.0f64; n]);
    for _ in 0..3 {
        ops::sgd_update(&p, &g, &buf, lr, mu, wd, None).unwrap();
        for i in 0..n {
            let gi = gv[i] as f64 + wd as f64 * rp[i];
            rb[i] = mu as f64 * rb[i] + gi;
            rp[i] -= lr as f64 * rb[i];
        }
    }
    assert_close("sgd param", &p.to_vec().unwrap(), &rp, 1e-5);
    assert_close("sgd momentum", &buf.to_vec().unwrap(), &rb, 1e-5);
}

#[test]
fn adam_with_coupled_weight_decay_equals_adamw_without_decay_on_the_l2_gradient() {
    let n = 33;
    let (pv, gv) = (values(n, 33), values(n, 34));
    let wd = 0.1f32;
    let adam = AdamWParams {
        lr: 0.01,
        weight_decay: wd,
        coupled_weight_decay: true,
        ..Default::default()
    };
    let (p, m, v) = (
        tensor(&pv, &[n]),
        tensor(&vec![0.0; n], &[n]),
        tensor(&vec![0.0; n], &[n]),
    );
    ops::adamw_update(&p, &tensor(&gv, &[n]), &m, &v, &adam, 1, None).unwrap();
    // torch.optim.Adam: g += wd * p, then a plain Adam step.
    let g_l2: Vec<f64> = gv
        .iter()
        .zip(&pv)
        .map(|(g, p)| *g as f64 + wd as f64 * *p as f64)
        .collect();
    let mut rp = f64s(&pv);
    let (mut rm, mut rv) = (vec![0.0; n], vec![0.0; n]);
    let h = RefAdamW {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    adamw_update(&mut rp, &g_l2, &mut rm, &mut rv, 1, &h);
    assert_close("adam param", &p.to_vec().unwrap(), &rp, 1e-5);
}

/// A step whose gradient norm or loss is NaN or infinite leaves the weights and the moments
/// exactly as they were (the GPU skips it), and a good step after it updates them as usual.
#[test]
fn a_step_with_a_non_finite_gradient_or_loss_is_skipped_on_the_gpu() {
    let n = 5;
    let pv = values(n, 31);
    let p = tensor(&pv, &[n]).into_param("p");
    let h = AdamWParams {
        lr: 0.1,
        ..Default::default()
    };
    let mut opt = AdamW::new(vec![p.clone()], h).unwrap();
    // loss = sum(p * x), so the gradient is x; `loss_override` replaces the loss handed over.
    let step = |opt: &mut AdamW, x: &[f32], loss_override: Option<f32>| -> Vec<f32> {
        let loss = ops::sum_axis(&ops::mul(&p, &tensor(x, &[n])).unwrap(), 0).unwrap();
        loss.backward().unwrap();
        let given = loss_override.map(|v| tensor(&[v], &[1]));
        let report = opt
            .clip_step_zero(1.0, Some(given.as_ref().unwrap_or(&loss)), 1.0)
            .unwrap()
            .to_vec()
            .unwrap();
        if report[1] == 0.0 {
            opt.undo_step_count();
        }
        report
    };
    let mut nan_grad = vec![0.5; n];
    nan_grad[2] = f32::NAN;
    let mut inf_grad = vec![0.5; n];
    inf_grad[4] = f32::INFINITY;
    for (what, x, loss) in [
        ("NaN gradient", &nan_grad, None),
        ("infinite gradient", &inf_grad, None),
        ("NaN loss", &vec![0.5; n], Some(f32::NAN)),
        ("infinite loss", &vec![0.5; n], Some(f32::NEG_INFINITY)),
    ] {
        let report = step(&mut opt, x, loss);
        assert_eq!(report[1], 0.0, "{what}: coefficient {report:?}");
        assert!(
            !(report[0].is_finite() && report[2].is_finite()),
            "{what}: {report:?}"
        );
        assert_eq!(p.to_vec().unwrap(), pv, "{what}: the weights moved");
        for (name, t) in opt.state() {
            assert!(
                t.to_vec().unwrap().iter().all(|&x| x == 0.0),
                "{what}: {name} moved"
            );
        }
        assert_eq!(opt.steps(), &[0], "{what}: the step was counted");
    }
    let report = step(&mut opt, &vec![0.5; n], None);
    assert!(report[1] > 0.0 && report[2].is_finite(), "{report:?}");
    assert!(p.to_vec().unwrap() != pv, "a good step must update");
    assert_eq!(opt.steps(), &[1]);
}

#[test]
fn sgd_skips_a_step_with_a_non_finite_gradient_too() {
    let n = 4;
    let pv = values(n, 41);
    let p = tensor(&pv, &[n]).into_param("p");
    let mut opt = AdamW::sgd(vec![p.clone()], 0.1, 0.9, 0.0).unwrap();
    let mut x = vec![0.5; n];
    x[1] = f32::NAN;
    let loss = ops::sum_axis(&ops::mul(&p, &tensor(&x, &[n])).unwrap(), 0).unwrap();
    loss.backward().unwrap();
    let report = opt
        .clip_step_zero(0.0, Some(&loss), 1.0)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(report[1], 0.0, "{report:?}");
    assert_eq!(p.to_vec().unwrap(), pv, "the weights moved");
}

/// Fourteen parameters of odd sizes, each at its own step (bias correction), updated by
/// `adamw_update_group` (two dispatches of six and two single ones where the adapter binds 25
/// storage buffers and the policy groups updates; fourteen single ones under WebGPU's 8, and
/// by default on CPU adapters) and one by one by `adamw_update`: the same bits. A zero
/// clipping coefficient leaves every tensor as it was.
#[test]
fn grouped_adamw_steps_equal_one_by_one_steps_bit_for_bit() {
    let sizes = [
        1usize, 255, 256, 257, 1000, 3, 700, 64, 5, 513, 9, 2, 300, 17,
    ];
    let h = ops::AdamWParams {
        lr: 0.01,
        weight_decay: 0.1,
        ..Default::default()
    };
    let groups = KernelPolicy {
        optimizer_groups: Some(true),
        ..KernelPolicy::default()
    };
    let capped = wgformer::Gpu::with_limits(wgpu::Limits::default()).unwrap();
    capped.set_policy(groups.clone());
    // Devices of the test's own: the counts must not see the dispatches of tests beside it.
    let grouping = device_with(groups);
    let default = wgformer::Gpu::new().unwrap();
    let by_default = match default.is_cpu() {
        true => 14,
        false => 2 + 2,
    };
    for (device, dispatches) in [(grouping, 2 + 2), (capped, 14), (default, by_default)] {
        let _on = use_device(&device);
        assert!(device.max_storage_buffers() >= 25 || dispatches == 14);
        // (param, grad, m, v) twice: one set for each way.
        let make = |i: usize, n: usize| -> [wgformer::Tensor; 4] {
            let s = 60 + 4 * i as u64;
            [
                values(n, s),
                values(n, s + 1),
                values(n, s + 2),
                values(n, s + 3),
            ]
            .map(|v| tensor(&v, &[n]))
        };
        let a: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| make(i, n)).collect();
        let b: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| make(i, n)).collect();
        // Moments must be non-negative for v.
        for t in a.iter().chain(&b) {
            let v: Vec<f32> = t[3].to_vec().unwrap().iter().map(|x| x.abs()).collect();
            t[3].copy_from_slice(&v).unwrap();
        }
        let clip = tensor(&[2.0, 0.7, 0.0], &[3]);
        let slots: Vec<ops::AdamWSlot> = (a.iter().enumerate())
            .map(|(i, t)| ops::AdamWSlot {
                param: &t[0],
                grad: &t[1],
                m: &t[2],
                v: &t[3],
                step: 1 + i as u32 % 5,
            })
            .collect();
        let before = device.counters();
        ops::adamw_update_group(&slots, &h, Some(&clip)).unwrap();
        assert_eq!((device.counters() - before).dispatches, dispatches);
        for (i, t) in b.iter().enumerate() {
            let step = 1 + i as u32 % 5;
            ops::adamw_update(&t[0], &t[1], &t[2], &t[3], &h, step, Some(&clip)).unwrap();
        }
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            for k in [0, 2, 3] {
                assert_eq!(
                    x[k].to_vec().unwrap(),
                    y[k].to_vec().unwrap(),
                    "tensor {i}, {k}"
                );
            }
        }
        let kept: Vec<Vec<f32>> = a.iter().map(|t| t[0].to_vec().unwrap()).collect();
        let skip = tensor(&[f32::NAN, 0.0, 0.0], &[3]);
        ops::adamw_update_group(&slots, &h, Some(&skip)).unwrap();
        for (t, k) in a.iter().zip(&kept) {
            assert_eq!(
                &t[0].to_vec().unwrap(),
                k,
                "a skipped step changed a parameter"
            );
        }
    }
}
