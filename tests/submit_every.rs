//! Submitting a step in chunks (`KernelPolicy::submit_every`, a GPU's default) changes when the
//! device starts on the work, not what it computes: the same training steps in one submit and
//! in submits of 7 dispatches give the same losses and weights, bit for bit.
mod common;
use common::*;
use wgformer::data::Batch;
use wgformer::gpu::{Counters, KernelPolicy};
use wgformer::nn::Module;
use wgformer::train::clm::lm_loss;

const STEPS: u64 = 3;

/// Losses and weights after `STEPS` steps of the tiny LM on a device of its own that submits
/// every `every` dispatches, and what the device did meanwhile.
fn train(every: usize) -> (Vec<f32>, Vec<Vec<f32>>, Counters) {
    let gpu = device_with(KernelPolicy {
        submit_every: Some(every),
        ..KernelPolicy::default()
    });
    assert_eq!(gpu.submit_every(), every);
    let _on = use_device(&gpu);
    let (model, mut trainer) = tiny_lm(&gpu, true, 3);
    let tokens: Vec<u32> = (0..3 * 9).map(|i| 4 + (i * 7 % 9) as u32).collect();
    let batch = Batch::from_windows(&tokens, 8).unwrap();
    let before = gpu.counters();
    let losses = (0..STEPS)
        .map(|_| {
            trainer
                .step(1, |_, ctx| lm_loss(&model, &batch, ctx, 0.0))
                .unwrap()
                .loss
        })
        .collect();
    let done = gpu.counters() - before;
    let weights = model.params().iter().map(|p| p.to_vec().unwrap()).collect();
    (losses, weights, done)
}

#[test]
fn a_step_in_submits_of_seven_dispatches_computes_what_one_submit_does() {
    let (losses, weights, whole) = train(1 << 20);
    let (chunked_losses, chunked_weights, chunked) = train(7);
    println!("one submit per step: {whole:?}\nevery 7 dispatches: {chunked:?}");
    assert_eq!(whole.submits, STEPS, "one submit per step: {whole:?}");
    assert_eq!(whole.dispatches, chunked.dispatches);
    // Every 7 dispatches, plus the step's readback (which submits what is left).
    assert!(
        chunked.submits >= chunked.dispatches / 7
            && chunked.submits <= chunked.dispatches / 7 + STEPS,
        "{chunked:?}"
    );
    assert_eq!(chunked.bytes_read_back, whole.bytes_read_back);
    assert_eq!(losses, chunked_losses);
    assert_eq!(weights, chunked_weights);
    assert!(losses[STEPS as usize - 1] < losses[0], "{losses:?}");
}
