//! Kernel choices from the tuning cache: trials run only when the device's policy asks for
//! them, once per shape class; the choice is kept in the cache file (keyed by adapter); a
//! stored choice is used without trials by the default policy and ignored with tuning off; a
//! damaged cache file costs nothing but the built-in choice. One test: the cache file is
//! shared state.
mod common;
use common::*;
use wgformer::ops::{self, KernelPolicy, Tuning};
use wgformer::reference;

fn product(m: usize, k: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let (a, b) = (values(m * k, seed), values(k * n, seed + 1));
    let got = ops::matmul(&tensor(&a, &[m, k]), &tensor(&b, &[k, n]))
        .unwrap()
        .to_vec()
        .unwrap();
    let want = reference::matmul::matmul(&f64s(&a), &f64s(&b), 1, m, k, n, false, false, true);
    (got, want)
}

fn dispatches_of(f: impl FnOnce()) -> u64 {
    let before = gpu().counters().dispatches;
    f();
    gpu().counters().dispatches - before
}

#[test]
fn trials_run_only_when_asked_and_their_choice_is_read_back_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("wgformer-autotune-{}", std::process::id()));
    let cache = dir.join("autotune.json");
    let policy = |tuning| KernelPolicy {
        tuning,
        tune_cache: Some(cache.clone()),
        ..KernelPolicy::default()
    };
    let device = device_with(policy(Tuning::Cached));
    let _on = use_device(&device);

    // The default policy never times anything, and writes no cache.
    let plain = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 1);
        assert_close("untuned matmul", &got, &want, 1e-5);
    });
    assert!(!cache.exists(), "nothing was tuned");

    // Asked for trials: every candidate is timed on the first product of the class.
    device.set_policy(policy(Tuning::Trials));
    let first = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 1);
        assert_close("tuned matmul", &got, &want, 1e-5);
    });
    assert!(
        first > 3 * plain,
        "trials ran: {first} dispatches vs {plain} untuned"
    );
    let text = std::fs::read_to_string(&cache).expect("the cache file was written");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let adapter_entries = json.as_object().unwrap();
    assert_eq!(adapter_entries.len(), 1, "{text}");
    let (adapter, classes) = adapter_entries.iter().next().unwrap();
    assert!(adapter.contains(&gpu().adapter_name()), "{adapter}");
    let class = "matmul 1x256x128x256 t00 b10";
    let chosen = classes[class]
        .as_str()
        .expect("the class is recorded")
        .to_string();
    assert!(ops::MatmulVariant::from_name(&chosen).is_some(), "{chosen}");

    // Small products are never timed (their timings are noise).
    let small = dispatches_of(|| {
        product(9, 8, 7, 5);
    });
    assert!(
        small <= plain,
        "{small} dispatches for a tiny product, untuned {plain}"
    );
    // Same class again (other sizes in the same power-of-two bucket): no trials.
    let again = dispatches_of(|| {
        let (got, want) = product(140, 120, 240, 2);
        assert_close("same class", &got, &want, 1e-5);
    });
    assert!(again <= plain + 1, "{again} dispatches, untuned {plain}");

    // A new process (memory forgotten) with the default policy reads the file and obeys it:
    // force the naive kernel (one dispatch) through the file.
    std::fs::write(&cache, text.replace(&format!("\"{chosen}\""), "\"naive\"")).unwrap();
    ops::reset_autotune_memory();
    device.set_policy(policy(Tuning::Cached));
    let from_disk = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 3);
        assert_close("from disk", &got, &want, 1e-5);
    });
    assert_eq!(from_disk, 1, "the naive kernel is one dispatch");
    // Tuning off: the file is not read.
    device.set_policy(policy(Tuning::Off));
    let built_in = dispatches_of(|| {
        product(160, 128, 224, 3);
    });
    assert_eq!(built_in, plain, "the built-in choice");

    // A damaged file: the built-in choice, a correct result, no panic; trials only if asked.
    std::fs::write(&cache, b"{ not json").unwrap();
    ops::reset_autotune_memory();
    device.set_policy(policy(Tuning::Cached));
    let damaged = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 4);
        assert_close("after a damaged cache", &got, &want, 1e-5);
    });
    assert_eq!(damaged, plain);
    device.set_policy(policy(Tuning::Trials));
    let retuned = dispatches_of(|| {
        product(160, 128, 224, 4);
    });
    assert!(retuned > 3 * plain);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn attention_trials_store_the_faster_path_for_the_shape_class() {
    let dir = std::env::temp_dir().join(format!("wgformer-autotune-att-{}", std::process::id()));
    let cache = dir.join("autotune.json");
    let device = device_with(KernelPolicy {
        tuning: Tuning::Trials,
        tune_cache: Some(cache.clone()),
        ..KernelPolicy::default()
    });
    let _on = use_device(&device);
    // q [1, 2, 40, 16] against 40 keys, causal.
    let (q, k, v) = (
        tensor(&values(1280, 1), &[1, 2, 40, 16]),
        tensor(&values(1280, 2), &[1, 2, 40, 16]),
        tensor(&values(1280, 3), &[1, 2, 40, 16]),
    );
    let mask = ops::AttentionMask::causal();
    let tuned = ops::attention_auto(&q, &k, &v, &mask)
        .unwrap()
        .to_vec()
        .unwrap();
    let (unfused, _) = ops::attention_unfused(&q, &k, &v, &mask, false).unwrap();
    assert_close(
        "tuned attention",
        &tuned,
        &f64s(&unfused.to_vec().unwrap()),
        1e-5,
    );
    let text = std::fs::read_to_string(&cache).expect("the cache file was written");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let classes = json.as_object().unwrap().values().next().unwrap();
    let path = classes["attention d16 q64 k64 causal"].as_str().unwrap();
    assert!(path == "fused" || path == "unfused", "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
