//! Checkpoints: parameters in safetensors (PyTorch names and layouts, so
//! `safetensors.torch.load_file` reads them), plus whatever small files the trainer adds
//! (config, optimizer state, progress). A checkpoint is a directory written under a temporary
//! name and renamed into place, then `latest` (a one-line file naming it) is replaced
//! atomically: a crash at any moment leaves the previous checkpoint intact and readable.

use crate::error::{Error, Result};
pub use crate::serialize::{tensors_from_bytes, tensors_to_bytes};
use crate::tensor::Tensor;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const PARAMS_FILE: &str = "model.safetensors";
const LATEST: &str = "latest";

/// Copy saved values into `params` (matched by name), refusing any mismatch in names or shapes.
pub fn load_params(file: &Path, bytes: &[u8], params: &[Tensor]) -> Result<()> {
    let saved = tensors_from_bytes(file, bytes)?;
    let names: Vec<&str> = params.iter().filter_map(|p| p.name()).collect();
    if let Some(extra) = saved.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(Error::format(
            file,
            format!("holds tensor {extra:?}, which this model does not have"),
        ));
    }
    for p in params {
        let name = p.name().unwrap_or_default();
        let (shape, data) = saved
            .get(name)
            .ok_or_else(|| Error::format(file, format!("is missing parameter {name:?}")))?;
        if shape != p.shape() {
            return Err(Error::format(
                file,
                format!(
                    "parameter {name:?} has shape {shape:?}, the model expects {:?}",
                    p.shape()
                ),
            ));
        }
        p.copy_from_slice(data)?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Write `files` (name, bytes) as checkpoint `name` under `root` and point `latest` at it.
pub fn save(root: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Result<PathBuf> {
    fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let dir = root.join(name);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (file, bytes) in files {
        write_file(&tmp.join(file), bytes)?;
    }
    if dir.exists() {
        // Re-saving the same name (e.g. "best"): move the old one aside first.
        let old = root.join(format!(".{name}.old-{}", std::process::id()));
        fs::rename(&dir, &old).map_err(|e| Error::io(&dir, e))?;
        fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    } else {
        fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    }
    set_latest(root, name)?;
    Ok(dir)
}

fn set_latest(root: &Path, name: &str) -> Result<()> {
    let tmp = root.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    write_file(&tmp, name.as_bytes())?;
    let latest = root.join(LATEST);
    fs::rename(&tmp, &latest).map_err(|e| Error::io(&latest, e))
}

/// The directory `latest` names, if there is one.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let path = root.join(LATEST);
    match fs::read_to_string(&path) {
        Ok(name) => {
            let dir = root.join(name.trim());
            if !dir.is_dir() {
                return Err(Error::format(
                    &path,
                    format!(
                        "names {:?}, which is not a checkpoint directory",
                        name.trim()
                    ),
                ));
            }
            Ok(Some(dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Read one file of a checkpoint.
pub fn read(dir: &Path, file: &str) -> Result<Vec<u8>> {
    let path = dir.join(file);
    fs::read(&path).map_err(|e| Error::io(&path, e))
}

/// Delete checkpoint directories named `prefix*` except the newest `keep` (by name order).
pub fn prune(root: &Path, prefix: &str, keep: usize) -> Result<()> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    dirs.sort();
    let n = dirs.len().saturating_sub(keep);
    for d in &dirs[..n] {
        fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    Ok(())
}
