//! The autograd tape: gradients that meet at a tensor used twice are summed, leaves accumulate
//! across backward calls until `zero_grad`, `no_grad` records nothing and keeps nothing alive,
//! the graph keeps alive only what backwards save, reshape is transparent to gradients, and
//! backward needs a scalar.
mod common;
use common::*;
use wgformer::reference::elementwise as reference;
use wgformer::{no_grad, ops, Error, Gpu, Tensor};

/// sum over every element, down to a one-element tensor.
fn total(t: &Tensor) -> Tensor {
    ops::sum_axis(&t.reshape(&[t.numel()]).unwrap(), 0).unwrap()
}

#[test]
fn tensor_used_twice_receives_the_sum_of_both_gradients() {
    // y = x * x + x  =>  dy/dx = 2x + 1 (x feeds mul twice and add once).
    let xv = values(33, 1);
    let x = leaf(&xv, &[33]);
    let y = ops::add(&ops::mul(&x, &x).unwrap(), &x).unwrap();
    total(&y).backward().unwrap();
    let want: Vec<f64> = xv.iter().map(|&x| 2.0 * x as f64 + 1.0).collect();
    assert_close("d(x*x + x)/dx", &grad_of(&x), &want, 1e-6);
}

#[test]
fn diamond_graph_sums_gradients_from_both_branches() {
    // x -> a = 3x, x -> b = gelu(x), d = a * b. dd/dx = 3 gelu(x) + 3x gelu'(x).
    let xv = values(65, 2);
    let x = leaf(&xv, &[65]);
    let a = ops::scale(&x, 3.0).unwrap();
    let b = ops::gelu(&x).unwrap();
    total(&ops::mul(&a, &b).unwrap()).backward().unwrap();
    let xd = f64s(&xv);
    let gelu = reference::gelu(&xd);
    let dgelu = reference::gelu_backward(&xd, &vec![1.0; xd.len()]);
    let want: Vec<f64> = (0..xd.len())
        .map(|i| 3.0 * gelu[i] + 3.0 * xd[i] * dgelu[i])
        .collect();
    assert_close("diamond dx", &grad_of(&x), &want, 1e-5);
    assert_matches_finite_differences(
        "diamond dx vs finite differences",
        &grad_of(&x),
        &xd,
        &vec![1.0; xd.len()],
        |x| {
            reference::gelu(x)
                .iter()
                .zip(x)
                .map(|(g, x)| 3.0 * x * g)
                .collect()
        },
        1e-4,
    );
}

#[test]
fn leaf_gradients_accumulate_across_backward_calls_until_zero_grad() {
    let xv = values(7, 3);
    let x = leaf(&xv, &[7]);
    let wv = values(7, 4);
    let w = tensor(&wv, &[7]);
    let loss = || total(&ops::mul(&x, &w).unwrap());
    loss().backward().unwrap();
    loss().backward().unwrap();
    let twice: Vec<f64> = wv.iter().map(|&w| 2.0 * w as f64).collect();
    assert_close("two backward calls", &grad_of(&x), &twice, 1e-6);
    x.zero_grad();
    assert!(x.grad().is_none(), "zero_grad clears the gradient");
    loss().backward().unwrap();
    assert_close("after zero_grad", &grad_of(&x), &f64s(&wv), 1e-6);
}

#[test]
fn no_grad_records_nothing() {
    let x = leaf(&values(7, 5), &[7]);
    let y = {
        let _guard = no_grad();
        assert!(!wgformer::tape::is_recording());
        ops::mul(&x, &x).unwrap()
    };
    assert!(
        wgformer::tape::is_recording(),
        "recording resumes when the guard drops"
    );
    assert!(
        !y.is_requires_grad(),
        "an output made under no_grad has no grad_fn"
    );
    total(&y).backward().unwrap();
    assert!(
        x.grad().is_none(),
        "nothing was recorded, so nothing flows back to x"
    );
}

#[test]
fn no_grad_outputs_do_not_keep_their_inputs_alive() {
    // A device of our own so no other test moves its pool while we count idle buffers.
    let gpu = Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, &values(7, 6), &[7])
        .unwrap()
        .requires_grad();
    // Returns (idle buffers gained when the intermediate h is dropped, out).
    let drop_intermediate = || {
        let h = ops::scale(&x, 2.0).unwrap();
        let out = ops::mul(&h, &h).unwrap();
        let idle = gpu.idle_buffers();
        drop(h);
        (gpu.idle_buffers() - idle, out)
    };
    let (freed_recording, out) = drop_intermediate();
    assert_eq!(
        freed_recording, 0,
        "with recording on, mul's backward keeps h alive"
    );
    drop(out);
    let (freed_no_grad, _out) = {
        let _guard = no_grad();
        drop_intermediate()
    };
    assert_eq!(
        freed_no_grad, 1,
        "under no_grad, h's buffer returns to the pool as soon as h is dropped"
    );
}

#[test]
fn recorded_intermediates_that_no_backward_saves_are_freed() {
    // h = 2x feeds out = 3h: scale's backward saves nothing, so once the model drops h its
    // buffer returns to the pool although the graph still runs through h.
    let gpu = Gpu::new().unwrap();
    let xv = values(7, 9);
    let x = Tensor::from_slice(&gpu, &xv, &[7]).unwrap().requires_grad();
    let h = ops::scale(&x, 2.0).unwrap();
    let out = ops::scale(&h, 3.0).unwrap();
    let idle = gpu.idle_buffers();
    drop(h);
    assert_eq!(
        gpu.idle_buffers() - idle,
        1,
        "the tape links h's autograd node, not its values"
    );
    total(&out).backward().unwrap();
    assert_close("d(3 * 2x)/dx", &grad_of(&x), &vec![6.0; xv.len()], 1e-6);
}

#[test]
fn reshape_passes_gradients_through_with_the_original_shape() {
    let xv = values(6, 7);
    let wv = values(6, 8);
    let x = leaf(&xv, &[2, 3]);
    let y = x.reshape(&[3, usize::MAX]).unwrap();
    assert_eq!(y.shape(), &[3, 2]);
    total(&ops::mul(&y, &tensor(&wv, &[3, 2])).unwrap())
        .backward()
        .unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.shape(), &[2, 3], "the gradient takes the leaf's shape");
    assert_close("reshape dx", &g.to_vec().unwrap(), &f64s(&wv), 1e-6);
}

#[test]
fn backward_from_a_non_scalar_is_a_shape_error() {
    let x = leaf(&values(3, 9), &[3]);
    let y = ops::scale(&x, 2.0).unwrap();
    match y.backward() {
        Err(Error::Shape {
            op: "backward",
            msg,
        }) => assert!(msg.contains("[3]"), "{msg}"),
        other => panic!("expected a shape error from backward, got {other:?}"),
    }
    assert!(x.grad().is_none());
}

#[test]
fn gradients_gathered_at_a_shared_input_are_folded_into_the_next_product() {
    // h feeds three Linears (as one input feeds the q, k and v projections) and a layer norm;
    // its gradient is the sum of four, which the products and the layer norm take in their
    // own passes instead of the tape adding them up. Against the same graph with a copy of h
    // per consumer, whose gradients the tape adds at the leaf.
    let gpu = Gpu::new().unwrap();
    let (rows, k, n) = (5, 8, 6);
    let hv = values(rows * k, 31);
    let ws: Vec<Vec<f32>> = (0..3).map(|i| values(n * k, 32 + i)).collect();
    let dyv = values(rows * n, 36);
    let (gamma, beta) = (values(k, 37), values(k, 38));
    let run = |shared: bool| -> Vec<f32> {
        let t = |v: &[f32], s: &[usize]| Tensor::from_slice(&gpu, v, s).unwrap();
        let h0 = t(&hv, &[rows, k]).requires_grad();
        let shared_h = ops::scale(&h0, 1.0).unwrap();
        let h = || match shared {
            true => shared_h.clone(),
            false => ops::scale(&h0, 1.0).unwrap(),
        };
        let mut outs: Vec<Tensor> = ws
            .iter()
            .map(|w| ops::linear(&h(), &t(w, &[n, k]), None).unwrap())
            .collect();
        let ln = ops::layer_norm(&h(), &t(&gamma, &[k]), &t(&beta, &[k]), 1e-5).unwrap();
        outs.push(ops::linear(&ln, &t(&ws[0], &[n, k]), None).unwrap());
        let total = outs
            .iter()
            .skip(1)
            .fold(outs[0].clone(), |acc, o| ops::add(&acc, o).unwrap());
        total.backward_with(t(&dyv, &[rows, n])).unwrap();
        h0.grad().unwrap().to_vec().unwrap()
    };
    let (folded, added) = (run(true), run(false));
    assert_close(
        "dh folded vs added by the tape",
        &folded,
        &f64s(&added),
        1e-5,
    );
}
