//! Soak: a small causal LM trains for 2,000 steps (the real trainer: embedding, attention,
//! layer norm, cross-entropy, clipping, AdamW); after warm-up the buffer pool, the pipeline
//! cache and the bind-group cache stop growing, and the process's resident memory stays flat.
//! Its own test binary, so nothing else moves the shared device's counters.
mod common;
use wgformer::data::Batch;
use wgformer::models::{DecoderOnlyConfig, DecoderOnlyTransformer};
use wgformer::nn::Module;
use wgformer::ops::AdamWParams;
use wgformer::train::clm::lm_loss;
use wgformer::train::{Decay, LrSchedule, Trainer, Warmup};
use wgformer::AdamW;

const WARMUP: usize = 50;
const SOAK: usize = 2_000;

/// Resident set size in bytes (Linux: /proc/self/statm, pages).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn thousands_of_steps_grow_neither_caches_nor_memory() {
    let gpu = common::gpu();
    let config = DecoderOnlyConfig {
        vocab_size: 17,
        d_model: 16,
        d_ff: 32,
        num_layers: 1,
        num_heads: 2,
        dropout: 0.1,
        layer_drop_rate: 0.0,
        weight_tying: true,
        max_seq_len: 16,
        activation: wgformer::ops::Activation::Gelu,
    };
    let model = DecoderOnlyTransformer::new(&gpu, config, 1).unwrap();
    let optimizer = AdamW::new(model.params(), AdamWParams::default()).unwrap();
    let mut trainer = Trainer::new(
        optimizer,
        LrSchedule::new(1e-3, 1e-4, 10, Warmup::Linear, Decay::Cosine, WARMUP + SOAK),
        1.0,
        3,
    );
    // Two batches of different content, same shape (a training stream).
    let batch = |k: u32| {
        let tokens: Vec<u32> = (0..4 * 13).map(|i| 4 + (i * 7 + k) % 13).collect();
        Batch::from_windows(&tokens, 12).unwrap()
    };
    let batches = [batch(0), batch(5)];
    for i in 0..WARMUP {
        trainer
            .step(1, |_, ctx| lm_loss(&model, &batches[i % 2], ctx, 0.1))
            .unwrap();
    }
    let (before, pooled, rss) = (gpu.counters(), gpu.pooled_bytes(), resident_bytes());
    let mut last = f32::NAN;
    for i in 0..SOAK {
        last = trainer
            .step(1, |_, ctx| lm_loss(&model, &batches[i % 2], ctx, 0.1))
            .unwrap()
            .loss;
    }
    let d = gpu.counters() - before;
    let grown = resident_bytes() as i64 - rss as i64;
    println!(
        "{SOAK} steps: {d:?}; pool {pooled} -> {} bytes; resident memory {:+.1} MiB; last loss {last}",
        gpu.pooled_bytes(),
        grown as f64 / (1 << 20) as f64
    );
    assert!(last.is_finite());
    assert_eq!(d.buffers_created, 0, "buffers created while soaking: {d:?}");
    assert_eq!(
        d.pipelines_compiled, 0,
        "pipelines compiled while soaking: {d:?}"
    );
    assert_eq!(
        d.bind_groups_created, 0,
        "bind groups created while soaking: {d:?}"
    );
    assert_eq!(gpu.pooled_bytes(), pooled, "the buffer pool grew");
    assert!(
        grown < 32 << 20,
        "resident memory grew by {grown} bytes over {SOAK} steps"
    );
}
