//! A run directory (`train.out_dir`): one training run's metrics, plot, checkpoints and copies
//! of its config and tokenizer. Opening one takes an advisory lock for the life of the run, so a
//! second run on the same directory is refused with the holder's name instead of corrupting
//! the first, and a fresh run refuses a directory that already holds one (`--resume`
//! continues it): two runs never mix in one directory and nothing saved is overwritten.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK: &str = ".lock";

pub struct RunDir {
    pub root: PathBuf,
    /// `root/checkpoints`.
    pub checkpoints: PathBuf,
    /// Held until the run ends (the OS releases it on any exit, `kill -9` included).
    _lock: File,
}

impl RunDir {
    /// Open `out_dir` for a run: create it, take its lock, and refuse a fresh run (`resume`
    /// false) where an earlier run left checkpoints or metrics.
    pub fn open(out_dir: &Path, resume: bool) -> Result<RunDir> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let lock = take_lock(out_dir)?;
        let dir = RunDir {
            root: out_dir.to_path_buf(),
            checkpoints: out_dir.join("checkpoints"),
            _lock: lock,
        };
        if !resume {
            if let Some(what) = dir.earlier_run() {
                return Err(Error::format(
                    out_dir,
                    format!(
                        "already holds a training run ({what}). Continue it with --resume, or \
                         train into another directory (--set train.out_dir=...); nothing in it \
                         was changed"
                    ),
                ));
            }
        }
        Ok(dir)
    }

    /// What an earlier run left here, if anything: its checkpoints or its metrics log.
    fn earlier_run(&self) -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.checkpoints)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if !names.is_empty() {
            return Some(format!("checkpoints: {}", names.join(", ")));
        }
        let metrics = self.root.join("metrics.jsonl");
        match std::fs::metadata(&metrics) {
            Ok(m) if m.len() > 0 => Some(format!("{} bytes of metrics.jsonl", m.len())),
            _ => None,
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Write `bytes` to `name` in the run directory (the config and tokenizer copies).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.file(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    }
}

/// Lock `dir/.lock` and write who holds it; if another process holds it, say who.
fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process"
            } else {
                holder
            };
            return Err(Error::format(
                dir,
                format!(
                    "is in use by another training run ({holder}); wait for it to end or \
                     train into another directory (--set train.out_dir=...)"
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let me = format!(
        "pid {}, started {} s after the Unix epoch: {}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.rewind().map_err(|e| Error::io(&path, e))?;
    file.write_all(me.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// The keys whose values differ between two YAML configs (dotted paths), ignoring
/// `train.out_dir`: what a resumed run changed besides the shapes the checkpoint enforces.
pub fn changed_keys(before: &str, after: &str) -> Vec<String> {
    fn flatten(prefix: &str, v: &serde_yaml::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let key = k
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{k:?}"));
                    let path = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&path, v, out);
                }
            }
            other => out.push((
                prefix.to_string(),
                serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            )),
        }
    }
    let parse = |text: &str| {
        let mut out = Vec::new();
        if let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            flatten("", &v, &mut out);
        }
        out.into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (parse(before), parse(after));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| k.as_str() != "train.out_dir" && a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let show = |m: &std::collections::BTreeMap<String, String>| {
                m.get(&k).cloned().unwrap_or_else(|| "(absent)".into())
            };
            format!("{k}: {} -> {}", show(&a), show(&b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_lists_what_differs_but_the_output_directory() {
        let a = "optimizer: {kind: adamw, lr: 0.001}\ntrain: {out_dir: a, seed: 1}\n";
        let b = "optimizer: {kind: sgd, lr: 0.001}\ntrain: {out_dir: b, seed: 1}\n";
        assert_eq!(changed_keys(a, b), ["optimizer.kind: adamw -> sgd"]);
        assert!(changed_keys(a, a).is_empty());
    }

    #[test]
    fn a_second_open_of_a_locked_directory_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("wgformer-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = RunDir::open(&dir, false).unwrap();
        let err = RunDir::open(&dir, true).err().unwrap().to_string();
        assert!(err.contains("in use by another training run"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        RunDir::open(&dir, true).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
