//! Kernel choices measured on this machine: a JSON file of adapter -> shape class -> variant,
//! filled by an explicit tuning step (`examples/tune.rs`, which runs with
//! `Tuning::Trials`) and read by every later process (`Tuning::Cached`, the default).
//!
//! A trial times every candidate variant on scratch data of the class's shape and keeps the
//! fastest. Trials never run unless the device's `KernelPolicy` asks for them: a one-shot
//! command or the first steps of a training run must not pause to time kernels. The file is
//! `KernelPolicy::tune_cache` (from `WGFORMER_AUTOTUNE_CACHE`, else
//! `$XDG_CACHE_HOME/wgformer/autotune.json`, else `~/.cache/wgformer/autotune.json`). A forced
//! variant (`KernelPolicy::matmul`) always wins.

use crate::error::Result;
use crate::gpu::{Gpu, Tuning};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Timed repetitions of each candidate after one warm-up run; the best of them counts.
const REPS: usize = 3;

/// adapter key -> "op shape class" -> variant name: the file's layout.
type Choices = BTreeMap<String, BTreeMap<String, String>>;

/// The cache files read so far, by path (None: choices made without a file), so that each is
/// read once per process.
fn memory() -> MutexGuard<'static, HashMap<Option<PathBuf>, Choices>> {
    static MEMORY: OnceLock<Mutex<HashMap<Option<PathBuf>, Choices>>> = OnceLock::new();
    let memory = MEMORY.get_or_init(Mutex::default);
    memory.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forget the cache files read so far; the next lookup reads them again (tests).
pub fn reset_autotune_memory() {
    memory().clear();
}

/// Choices differ between adapters, drivers and versions of the kernels.
fn adapter_key(gpu: &Gpu) -> String {
    format!(
        "{} | wgformer {}",
        gpu.adapter_name(),
        env!("CARGO_PKG_VERSION")
    )
}

fn load(path: &Path) -> Choices {
    let Ok(bytes) = std::fs::read(path) else {
        return Choices::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        // A damaged cache only costs the built-in choices (or new trials); say so.
        log::warn!("ignoring the autotune cache {}: {e}", path.display());
        Choices::new()
    })
}

fn save(path: &Path, choices: &Choices) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(choices)?)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        log::warn!("could not write the autotune cache {}: {e}", path.display());
    }
}

/// The variant for shape class `class` of operation `op`: the choice stored for this adapter
/// (unless the policy's tuning is off), else, with `Tuning::Trials`, the fastest of
/// `candidates` timed by `run` (and stored), else `fallback`. `run(v)` records one
/// computation with variant `v`; it is timed to completion.
pub fn choose<V: Copy>(
    gpu: &Gpu,
    op: &str,
    class: &str,
    candidates: &[(V, &'static str)],
    fallback: V,
    mut run: impl FnMut(V) -> Result<()>,
) -> V {
    let policy = gpu.policy();
    if policy.tuning == Tuning::Off {
        return fallback;
    }
    let key = format!("{op} {class}");
    let adapter = adapter_key(gpu);
    let path = policy.tune_cache;
    {
        let mut memory = memory();
        let choices = memory
            .entry(path.clone())
            .or_insert_with(|| path.as_deref().map(load).unwrap_or_default());
        if let Some(name) = choices.get(&adapter).and_then(|m| m.get(&key)) {
            if let Some(&(v, _)) = candidates.iter().find(|(_, n)| n == name) {
                return v;
            }
        }
    }
    if policy.tuning != Tuning::Trials {
        return fallback;
    }
    // Trials run outside the lock: they record GPU work.
    let mut best: Option<(f64, V, &'static str)> = None;
    for &(v, name) in candidates {
        let mut time = || -> Result<f64> {
            gpu.synchronize()?;
            let start = Instant::now();
            run(v)?;
            gpu.synchronize()?;
            Ok(start.elapsed().as_secs_f64())
        };
        let timed =
            time().and_then(|_| (0..REPS).try_fold(f64::INFINITY, |b, _| Ok(b.min(time()?))));
        match timed {
            Ok(secs) if best.is_none_or(|(b, _, _)| secs < b) => best = Some((secs, v, name)),
            Ok(_) => {}
            Err(e) => log::warn!("autotune: {op} variant {name} failed on {class}: {e}"),
        }
    }
    let Some((secs, v, name)) = best else {
        return fallback;
    };
    log::info!("autotune: {op} {class} -> {name} ({:.3} ms)", secs * 1e3);
    let mut memory = memory();
    let choices = memory.entry(path.clone()).or_default();
    // Another process may have tuned other classes meanwhile: merge into the file's latest.
    if let Some(path) = &path {
        let mut on_disk = load(path);
        for (adapter, classes) in std::mem::take(choices) {
            on_disk.entry(adapter).or_default().extend(classes);
        }
        *choices = on_disk;
    }
    choices
        .entry(adapter)
        .or_default()
        .insert(key, name.to_string());
    if let Some(path) = &path {
        save(path, choices);
    }
    v
}
