//! Automatic kernel-variant choice: the first time a shape class is seen, time every
//! candidate variant on scratch data of that shape and keep the fastest, in memory and in a
//! JSON file keyed by adapter and driver, so the next process on the same machine starts tuned.
//!
//! Off unless asked for (`set_autotune(true)` or `WGFORMER_AUTOTUNE=1`): tests and one-off
//! calls use each op's built-in rule instead of paying for trials. The cache file is
//! `WGFORMER_AUTOTUNE_CACHE`, else `$XDG_CACHE_HOME/wgformer/autotune.json`, else
//! `~/.cache/wgformer/autotune.json`. A forced variant (`WGFORMER_MATMUL`) always wins.

use crate::error::Result;
use crate::gpu::Gpu;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Timed repetitions of each candidate after one warm-up run; the best of them counts.
const REPS: usize = 3;

struct Tuner {
    enabled: bool,
    /// adapter key -> shape-class key -> variant name.
    choices: BTreeMap<String, BTreeMap<String, String>>,
    loaded: bool,
}

fn tuner() -> &'static Mutex<Tuner> {
    static T: OnceLock<Mutex<Tuner>> = OnceLock::new();
    T.get_or_init(|| {
        let enabled = matches!(
            std::env::var("WGFORMER_AUTOTUNE").as_deref(),
            Ok("1" | "true")
        );
        Mutex::new(Tuner {
            enabled,
            choices: BTreeMap::new(),
            loaded: false,
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Tuner> {
    tuner().lock().unwrap_or_else(|p| p.into_inner())
}

/// Autotuning for applications (the examples and benches): on unless `WGFORMER_AUTOTUNE=0`.
pub fn enable_autotune_unless_disabled() {
    let off = matches!(
        std::env::var("WGFORMER_AUTOTUNE").as_deref(),
        Ok("0" | "false")
    );
    set_autotune(!off);
}

/// Turn trials on or off for this process.
pub fn set_autotune(on: bool) {
    lock().enabled = on;
}

pub fn autotune_enabled() -> bool {
    lock().enabled
}

/// Where choices are stored between runs.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WGFORMER_AUTOTUNE_CACHE") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wgformer").join("autotune.json"))
}

/// Choices differ between adapters, drivers and versions of the kernels.
fn adapter_key(gpu: &Gpu) -> String {
    format!(
        "{} | wgformer {}",
        gpu.adapter_name(),
        env!("CARGO_PKG_VERSION")
    )
}

fn load(t: &mut Tuner) {
    if t.loaded {
        return;
    }
    t.loaded = true;
    let Some(path) = cache_path() else { return };
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    match serde_json::from_slice(&bytes) {
        Ok(choices) => t.choices = choices,
        // A damaged cache only costs new trials; say so and start afresh.
        Err(e) => log::warn!("ignoring the autotune cache {}: {e}", path.display()),
    }
}

fn save(t: &Tuner) {
    let Some(path) = cache_path() else { return };
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&t.choices)?)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        log::warn!("could not write the autotune cache {}: {e}", path.display());
    }
}

/// The variant for shape class `class` of operation `op`: a remembered choice, else (with
/// autotuning on) the fastest of `candidates` timed by `run`, else `fallback`.
/// `run(v)` records one computation with variant `v`; it is timed to completion.
pub fn choose<V: Copy>(
    gpu: &Gpu,
    op: &str,
    class: &str,
    candidates: &[(V, &'static str)],
    fallback: V,
    mut run: impl FnMut(V) -> Result<()>,
) -> V {
    let key = format!("{op} {class}");
    let adapter = adapter_key(gpu);
    {
        let mut t = lock();
        if !t.enabled {
            return fallback;
        }
        load(&mut t);
        if let Some(name) = t.choices.get(&adapter).and_then(|m| m.get(&key)) {
            if let Some(&(v, _)) = candidates.iter().find(|(_, n)| n == name) {
                return v;
            }
        }
    }
    // Trials run outside the lock (they record GPU work) and off the tape.
    let _g = crate::no_grad();
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
    let mut t = lock();
    t.choices
        .entry(adapter)
        .or_default()
        .insert(key, name.to_string());
    save(&t);
    v
}

/// Forget the in-memory choices and re-read the cache file at the next lookup (tests).
pub fn reset_autotune_memory() {
    let mut t = lock();
    t.choices.clear();
    t.loaded = false;
}
