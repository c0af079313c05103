//! Attention, fused (every kernel variant: `Tiled`, the CPU-shaped `Rows` and `RowsSubgroup`,
//! and `SplitKeys` for few queries against many keys) and unfused:
//! forward and the gradients of q, k and v vs the CPU reference and vs each other, on shapes
//! that straddle the kernels' blocks (Tiled: BLOCK = 64 rows for D <= 32, 32 for D = 64, 16 for
//! D = 128; Rows: 8 rows per invocation, 8 invocations per workgroup), with every mask combination, cross-attention (Tq != Tk in
//! both directions), single-query decoding and fully masked rows; finite differences on a
//! tiny case; determinism; errors for unsupported head dims and mismatched shapes.
mod common;
use common::*;
use wgformer::ops::{self, AttentionKernel, AttentionMask, AttentionPath, KernelPolicy};
use wgformer::reference::attention as reference;
use wgformer::{Error, Tensor};

/// One attention problem: q [b, h, tq, d], k and v [b, h, tk, d], optional key lengths [b].
#[derive(Clone, Debug)]
struct Case {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    causal: bool,
    lens: Option<Vec<u32>>,
}

impl Case {
    fn new(b: usize, h: usize, tq: usize, tk: usize, d: usize) -> Case {
        Case {
            b,
            h,
            tq,
            tk,
            d,
            causal: false,
            lens: None,
        }
    }
    fn causal(self, causal: bool) -> Case {
        Case { causal, ..self }
    }
    fn lens(self, lens: &[u32]) -> Case {
        Case {
            lens: Some(lens.to_vec()),
            ..self
        }
    }
    fn q_shape(&self) -> [usize; 4] {
        [self.b, self.h, self.tq, self.d]
    }
    fn kv_shape(&self) -> [usize; 4] {
        [self.b, self.h, self.tk, self.d]
    }
    fn mask(&self) -> AttentionMask {
        AttentionMask {
            causal: self.causal,
            key_lens: self
                .lens
                .as_ref()
                .map(|l| Tensor::from_u32(&gpu(), l, &[self.b]).unwrap()),
        }
    }
    fn lens_usize(&self) -> Option<Vec<usize>> {
        self.lens
            .as_ref()
            .map(|l| l.iter().map(|&x| x as usize).collect())
    }
}

/// Seeded inputs of a case, and the output gradient `w` (the loss is sum(out * w)).
struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    w: Vec<f32>,
}

impl Inputs {
    fn new(c: &Case) -> Inputs {
        let (nq, nk) = (c.b * c.h * c.tq * c.d, c.b * c.h * c.tk * c.d);
        // Scaled up so the softmax is far from uniform and masks change results visibly.
        let big = |v: Vec<f32>| v.into_iter().map(|x| 2.0 * x).collect::<Vec<f32>>();
        Inputs {
            q: big(values(nq, 1 + c.tq as u64)),
            k: big(values(nk, 2 + c.tk as u64)),
            v: values(nk, 3 + c.d as u64),
            w: values(nq, 4),
        }
    }
}

/// Output and input gradients of one GPU run.
#[derive(Debug, PartialEq)]
struct Run {
    out: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

/// A way to compute attention: a fused kernel variant, or the unfused path (`None`).
type Path = Option<AttentionKernel>;
/// The fused variants this adapter runs at head dim `d` (all three on lavapipe up to D = 64).
fn fused_at(d: usize) -> Vec<Path> {
    let g = gpu();
    AttentionKernel::ALL
        .into_iter()
        .filter(|v| v.available(&g, d))
        .map(Some)
        .collect()
}

/// Every fused variant at head dim `d`, then the unfused path.
fn every_path(d: usize) -> Vec<Path> {
    let mut paths = fused_at(d);
    paths.push(None);
    paths
}

/// Run `path` forward, then backward from `w`.
fn run(c: &Case, x: &Inputs, path: Path) -> Run {
    let (q, k, v) = (
        leaf(&x.q, &c.q_shape()),
        leaf(&x.k, &c.kv_shape()),
        leaf(&x.v, &c.kv_shape()),
    );
    let out = match path {
        Some(variant) => ops::attention_with(&q, &k, &v, &c.mask(), variant, false).unwrap(),
        None => {
            ops::attention_unfused(&q, &k, &v, &c.mask(), false)
                .unwrap()
                .0
        }
    };
    assert_eq!(out.shape(), c.q_shape().as_slice());
    out.backward_with(tensor(&x.w, &c.q_shape())).unwrap();
    Run {
        out: out.to_vec().unwrap(),
        dq: grad_of(&q),
        dk: grad_of(&k),
        dv: grad_of(&v),
    }
}

/// The reference output, probabilities and gradients (f64).
struct Want {
    out: Vec<f64>,
    probs: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

fn want(c: &Case, x: &Inputs) -> Want {
    let (q, k, v) = (f64s(&x.q), f64s(&x.k), f64s(&x.v));
    let lens = c.lens_usize();
    let (out, probs) = reference::attention(
        &q,
        &k,
        &v,
        c.b,
        c.h,
        c.tq,
        c.tk,
        c.d,
        c.causal,
        lens.as_deref(),
    );
    let (dq, dk, dv) =
        reference::attention_backward(&q, &k, &v, &probs, &f64s(&x.w), c.b, c.h, c.tq, c.tk, c.d);
    Want {
        out,
        probs,
        dq,
        dk,
        dv,
    }
}

fn assert_run_matches(what: &str, got: &Run, want: &Want) {
    assert_close(&format!("{what} out"), &got.out, &want.out, 2e-5);
    assert_close(&format!("{what} dq"), &got.dq, &want.dq, 1e-4);
    assert_close(&format!("{what} dk"), &got.dk, &want.dk, 1e-4);
    assert_close(&format!("{what} dv"), &got.dv, &want.dv, 1e-4);
}

/// Every fused variant and the unfused path vs the reference, and each fused vs unfused.
fn check_case(c: &Case) {
    let x = Inputs::new(c);
    let want = want(c, &x);
    let unfused = run(c, &x, None);
    assert_run_matches(&format!("unfused {c:?}"), &unfused, &want);
    for path in fused_at(c.d) {
        let fused = run(c, &x, path);
        assert_run_matches(&format!("{path:?} {c:?}"), &fused, &want);
        let pairs = [
            ("out", &fused.out, &unfused.out),
            ("dq", &fused.dq, &unfused.dq),
            ("dk", &fused.dk, &unfused.dk),
            ("dv", &fused.dv, &unfused.dv),
        ];
        for (name, got, other) in pairs {
            assert_close(
                &format!("{path:?} vs unfused {name} {c:?}"),
                got,
                &f64s(other),
                1e-4,
            );
        }
    }
}

#[test]
fn fused_forward_and_gradients_match_reference_on_odd_cross_attention_shape() {
    check_case(&Case::new(2, 3, 7, 13, 32));
}

#[test]
fn every_mask_combination_matches_reference_with_fewer_and_more_queries_than_keys() {
    for (tq, tk) in [(7, 13), (13, 7)] {
        for causal in [false, true] {
            // One item padded, one with a length past Tk (every key valid).
            for lens in [None, Some(vec![tk as u32 / 2, tk as u32 + 3])] {
                let mut c = Case::new(2, 2, tq, tk, 32).causal(causal);
                c.lens = lens;
                check_case(&c);
            }
        }
    }
}

#[test]
fn causal_self_attention_across_blocks_matches_reference() {
    check_case(&Case::new(1, 2, 33, 33, 32).causal(true));
    // 70 rows: two blocks of 64; the second item's length ends inside the first block.
    check_case(&Case::new(2, 1, 70, 70, 32).causal(true).lens(&[70, 41]));
}

#[test]
fn single_query_decoding_sees_every_key_under_the_causal_mask() {
    // 70 and 100 keys: 3 and 4 chunks of SplitKeys, the last one partly filled.
    for tk in [1, 13, 70, 100] {
        let c = Case::new(1, 2, 1, tk, 32).causal(true);
        check_case(&c);
        check_case(&c.clone().lens(&[(tk as u32).div_ceil(2)]));
        let x = Inputs::new(&c);
        for path in fused_at(c.d) {
            let open = run(&c.clone().causal(false), &x, path);
            assert_eq!(
                run(&c, &x, path),
                open,
                "{path:?} tq = 1, tk = {tk}: causal must equal unmasked"
            );
        }
    }
}

#[test]
fn fully_masked_rows_give_zero_output_and_zero_gradients_not_nan() {
    // Tq > Tk under the bottom-right causal mask: queries 0..5 see no key. Item 1 has no keys.
    let c = Case::new(2, 2, 9, 4, 16).causal(true).lens(&[3, 0]);
    check_case(&c);
    let x = Inputs::new(&c);
    for fused in every_path(c.d) {
        let r = run(&c, &x, fused);
        for (name, g) in [("out", &r.out), ("dq", &r.dq), ("dk", &r.dk), ("dv", &r.dv)] {
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{fused:?}: {name} has NaN or inf"
            );
        }
        let (q_item, kv_item) = (c.h * c.tq * c.d, c.h * c.tk * c.d);
        assert!(
            r.out[q_item..]
                .iter()
                .chain(&r.dq[q_item..])
                .all(|&v| v == 0.0),
            "{fused:?}: item 1"
        );
        assert!(
            r.dk[kv_item..]
                .iter()
                .chain(&r.dv[kv_item..])
                .all(|&v| v == 0.0),
            "{fused:?}: item 1"
        );
        for head in 0..c.h {
            let rows = (head * c.tq * c.d)..((head * c.tq + 5) * c.d);
            assert!(
                r.out[rows.clone()]
                    .iter()
                    .chain(&r.dq[rows])
                    .all(|&v| v == 0.0),
                "{fused:?}: masked rows"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_on_a_tiny_masked_case() {
    let c = Case::new(1, 2, 3, 5, 16).causal(true).lens(&[4]);
    let x = Inputs::new(&c);
    let (q, k, v, w) = (f64s(&x.q), f64s(&x.k), f64s(&x.v), f64s(&x.w));
    let lens = c.lens_usize();
    let f = |q: &[f64], k: &[f64], v: &[f64]| {
        reference::attention(
            q,
            k,
            v,
            c.b,
            c.h,
            c.tq,
            c.tk,
            c.d,
            c.causal,
            lens.as_deref(),
        )
        .0
    };
    for path in fused_at(c.d) {
        let r = run(&c, &x, path);
        let name = |g: &str| format!("{path:?} {g}");
        assert_matches_finite_differences(&name("dq"), &r.dq, &q, &w, |q| f(q, &k, &v), 1e-3);
        assert_matches_finite_differences(&name("dk"), &r.dk, &k, &w, |k| f(&q, k, &v), 1e-3);
        assert_matches_finite_differences(&name("dv"), &r.dv, &v, &w, |v| f(&q, &k, v), 1e-3);
    }
}

#[test]
fn head_dims_64_and_128_match_reference_across_blocks() {
    check_case(&Case::new(1, 2, 33, 33, 64).causal(true));
    check_case(&Case::new(1, 1, 20, 37, 128).lens(&[30]));
}

#[test]
fn unfused_path_returns_the_reference_attention_weights_for_any_head_dim() {
    // D = 24 is not compiled for the fused kernel; the unfused path takes it.
    for d in [32, 24] {
        let c = Case::new(2, 1, 5, 9, d).causal(true).lens(&[9, 6]);
        let x = Inputs::new(&c);
        let (q, k, v) = (
            tensor(&x.q, &c.q_shape()),
            tensor(&x.k, &c.kv_shape()),
            tensor(&x.v, &c.kv_shape()),
        );
        let (out, probs) = ops::attention_unfused(&q, &k, &v, &c.mask(), true).unwrap();
        let probs = probs.expect("weights were asked for");
        assert_eq!(probs.shape(), [c.b, c.h, c.tq, c.tk].as_slice());
        let want = want(&c, &x);
        assert_close(
            &format!("probs d={d}"),
            &probs.to_vec().unwrap(),
            &want.probs,
            2e-6,
        );
        assert_close(
            &format!("out d={d}"),
            &out.to_vec().unwrap(),
            &want.out,
            2e-5,
        );
        assert!(ops::attention_unfused(&q, &k, &v, &c.mask(), false)
            .unwrap()
            .1
            .is_none());
    }
    let c = Case::new(1, 3, 4, 6, 24).causal(true);
    let x = Inputs::new(&c);
    assert_run_matches("unfused d=24", &run(&c, &x, None), &want(&c, &x));
}

#[test]
fn fused_results_are_bitwise_deterministic() {
    let c = Case::new(1, 2, 70, 70, 32).causal(true);
    let x = Inputs::new(&c);
    for path in fused_at(c.d) {
        assert_eq!(run(&c, &x, path), run(&c, &x, path), "{path:?}");
    }
}

#[test]
fn gradients_reach_only_the_inputs_that_require_them() {
    let c = Case::new(1, 2, 7, 13, 32).causal(true);
    let x = Inputs::new(&c);
    let (q, k) = (tensor(&x.q, &c.q_shape()), tensor(&x.k, &c.kv_shape()));
    for variant in fused_at(c.d).into_iter().flatten() {
        let v = leaf(&x.v, &c.kv_shape());
        let out = ops::attention_with(&q, &k, &v, &c.mask(), variant, false).unwrap();
        out.backward_with(tensor(&x.w, &c.q_shape())).unwrap();
        assert!(q.grad().is_none() && k.grad().is_none());
        assert_close(
            &format!("{variant:?} dv alone"),
            &grad_of(&v),
            &want(&c, &x).dv,
            1e-4,
        );
    }
}

fn shape_error(r: wgformer::Result<Tensor>) -> String {
    match r {
        Err(e @ Error::Shape { .. }) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn unsupported_head_dims_and_mismatched_shapes_are_errors() {
    let g = gpu();
    let t = |shape: &[usize]| Tensor::zeros(&g, shape).unwrap();
    let none = AttentionMask::none();
    let (q, k) = (t(&[2, 3, 7, 32]), t(&[2, 3, 13, 32]));

    let msg = shape_error(ops::attention(
        &t(&[1, 1, 4, 48]),
        &t(&[1, 1, 4, 48]),
        &t(&[1, 1, 4, 48]),
        &none,
    ));
    assert!(
        msg.contains("D = 48") && msg.contains("[16, 32, 64, 128]"),
        "{msg}"
    );

    let bad = [
        (
            t(&[2, 3, 7, 32]),
            t(&[2, 3, 13, 64]),
            t(&[2, 3, 13, 64]),
            "head dims differ",
        ),
        (
            q.clone(),
            k.clone(),
            t(&[2, 3, 12, 32]),
            "v rows differ from k",
        ),
        (
            q.clone(),
            t(&[1, 3, 13, 32]),
            t(&[1, 3, 13, 32]),
            "batch differs",
        ),
        (
            q.clone(),
            t(&[2, 2, 13, 32]),
            t(&[2, 2, 13, 32]),
            "heads differ",
        ),
        (t(&[3, 7, 32]), t(&[3, 13, 32]), t(&[3, 13, 32]), "3-D"),
        (t(&[2, 3, 0, 32]), k.clone(), k.clone(), "empty"),
    ];
    for (q, k, v, what) in &bad {
        assert!(
            !shape_error(ops::attention(q, k, v, &none)).is_empty(),
            "{what}"
        );
        assert!(
            ops::attention_unfused(q, k, v, &none, false).is_err(),
            "unfused: {what}"
        );
    }

    let ids = |lens: &[u32]| Tensor::from_u32(&g, lens, &[lens.len()]).unwrap();
    for (lens, what) in [
        (ids(&[3]), "one length for two items"),
        (t(&[2]), "f32 lengths"),
    ] {
        let mask = AttentionMask::causal().with_key_lens(lens);
        let msg = shape_error(ops::attention(&q, &k, &k, &mask));
        assert!(msg.contains("key_lens"), "{what}: {msg}");
    }
}

#[test]
fn attention_auto_runs_the_path_the_policy_names() {
    // One query over 20 keys at D = 16: the fused forward is one dispatch (two where the
    // adapter splits the keys: CPU adapters, for a decoding step), the unfused path three
    // (scores, masked softmax, weighted values); all give the reference.
    let c = Case::new(2, 2, 1, 20, 16);
    let x = Inputs::new(&c);
    let want = want(&c, &x);
    let forward_dispatches = |path: AttentionPath| {
        let device = device_with(KernelPolicy {
            attention: path,
            ..KernelPolicy::default()
        });
        let _on = use_device(&device);
        let (q, k, v) = (
            tensor(&x.q, &c.q_shape()),
            tensor(&x.k, &c.kv_shape()),
            tensor(&x.v, &c.kv_shape()),
        );
        let before = device.counters().dispatches;
        let out = ops::attention_auto(&q, &k, &v, &c.mask()).unwrap();
        let dispatches = device.counters().dispatches - before;
        assert_close(
            &format!("{path:?}"),
            &out.to_vec().unwrap(),
            &want.out,
            2e-5,
        );
        dispatches
    };
    let fused = match AttentionKernel::for_adapter(&gpu(), c.d, c.tq, c.tk) {
        AttentionKernel::SplitKeys => 2,
        _ => 1,
    };
    assert_eq!(forward_dispatches(AttentionPath::Fused), fused);
    assert!(forward_dispatches(AttentionPath::Unfused) >= 3);
}

/// [B, X, Y, D] -> [B, Y, X, D] on the host: head-major to token-major and back.
fn swap_middle(data: &[f32], [b, x, y, d]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for bi in 0..b {
        for xi in 0..x {
            for yi in 0..y {
                let from = ((bi * x + xi) * y + yi) * d;
                let to = ((bi * y + yi) * x + xi) * d;
                out[to..to + d].copy_from_slice(&data[from..from + d]);
            }
        }
    }
    out
}

/// `path` on the case laid out token-major ([B, T, H, D]), forward and backward from `w`,
/// the results laid back out head-major.
fn run_token_major(c: &Case, x: &Inputs, path: Path) -> Run {
    let (tq_shape, tk_shape) = ([c.b, c.tq, c.h, c.d], [c.b, c.tk, c.h, c.d]);
    let (q, k, v) = (
        leaf(&swap_middle(&x.q, c.q_shape()), &tq_shape),
        leaf(&swap_middle(&x.k, c.kv_shape()), &tk_shape),
        leaf(&swap_middle(&x.v, c.kv_shape()), &tk_shape),
    );
    let out = match path {
        Some(variant) => ops::attention_with(&q, &k, &v, &c.mask(), variant, true).unwrap(),
        None => ops::attention_auto_token_major(&q, &k, &v, &c.mask()).unwrap(),
    };
    assert_eq!(out.shape(), tq_shape.as_slice());
    let w = swap_middle(&x.w, c.q_shape());
    out.backward_with(tensor(&w, &tq_shape)).unwrap();
    Run {
        out: swap_middle(&out.to_vec().unwrap(), tq_shape),
        dq: swap_middle(&grad_of(&q), tq_shape),
        dk: swap_middle(&grad_of(&k), tk_shape),
        dv: swap_middle(&grad_of(&v), tk_shape),
    }
}

#[test]
fn token_major_heads_give_the_head_major_results_in_every_kernel() {
    // Self-attention across blocks with both masks, cross-attention both ways, one query.
    let cases = [
        Case::new(2, 3, 37, 37, 16).causal(true).lens(&[37, 20]),
        Case::new(1, 2, 9, 70, 32).lens(&[70]),
        Case::new(2, 2, 70, 5, 64).causal(true),
        Case::new(2, 3, 1, 90, 16).causal(true),
    ];
    for c in &cases {
        let x = Inputs::new(c);
        let want = want(c, &x);
        for path in fused_at(c.d) {
            let head_major = run(c, &x, path);
            let token_major = run_token_major(c, &x, path);
            assert_run_matches(&format!("token-major {path:?} {c:?}"), &token_major, &want);
            assert_eq!(
                token_major, head_major,
                "{path:?} {c:?}: the same sums in another layout"
            );
        }
    }
}

#[test]
fn attention_auto_token_major_takes_either_path() {
    let c = Case::new(2, 2, 19, 19, 16).causal(true).lens(&[19, 11]);
    let x = Inputs::new(&c);
    let want = want(&c, &x);
    for path in [AttentionPath::Fused, AttentionPath::Unfused] {
        let device = device_with(KernelPolicy {
            attention: path,
            ..KernelPolicy::default()
        });
        let _on = use_device(&device);
        let got = run_token_major(&c, &x, None);
        assert_run_matches(&format!("auto token-major, {path:?}"), &got, &want);
    }
}
