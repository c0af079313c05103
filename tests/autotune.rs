//! Automatic variant choice: trials run once per shape class, the choice is kept in memory
//! and in the cache file (keyed by adapter), a stored choice is used without trials, and a
//! damaged cache file costs only new trials. One test: the tuner is process-wide state.
mod common;
use common::*;
use wgformer::ops;
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
fn autotune_times_each_shape_class_once_and_remembers_it_on_disk() {
    let dir = std::env::temp_dir().join(format!("wgformer-autotune-{}", std::process::id()));
    let cache = dir.join("autotune.json");
    std::env::set_var("WGFORMER_AUTOTUNE_CACHE", &cache);
    ops::reset_autotune_memory();
    ops::set_autotune(true);

    // First sight of the class: trials of every candidate, then the product itself.
    let plain = dispatches_of(|| {
        ops::set_autotune(false);
        product(160, 128, 224, 1);
        ops::set_autotune(true);
    });
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

    // A new process (memory forgotten) reads the file: still no trials. A stored choice is
    // obeyed: force the naive kernel (one dispatch) through the file.
    let forced = text.replace(&format!("\"{chosen}\""), "\"naive\"");
    std::fs::write(&cache, forced).unwrap();
    ops::reset_autotune_memory();
    let from_disk = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 3);
        assert_close("from disk", &got, &want, 1e-5);
    });
    assert_eq!(from_disk, 1, "the naive kernel is one dispatch");

    // A damaged file: new trials, correct result, no panic.
    std::fs::write(&cache, b"{ not json").unwrap();
    ops::reset_autotune_memory();
    let damaged = dispatches_of(|| {
        let (got, want) = product(160, 128, 224, 4);
        assert_close("after a damaged cache", &got, &want, 1e-5);
    });
    assert!(damaged > 3 * plain);
    ops::set_autotune(false);
    let _ = std::fs::remove_dir_all(&dir);
}
