//! Checkpoints: parameters in safetensors (PyTorch names and layouts, so
//! `safetensors.torch.load_file` reads them), plus whatever small files the trainer adds
//! (config, optimizer state, progress). A checkpoint is a directory written under a temporary
//! name and renamed into place, then `latest` (a one-line file naming it) is replaced
//! atomically: a crash at any moment leaves the previous checkpoint intact and readable, and
//! `recover` tidies up what the crash left behind when the next run starts.

pub mod ct2;
mod tensors;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
pub use tensors::{
    named_params, tensors_from_bytes, tensors_to_bytes, tensors_to_bytes_async, NamedArrays,
};

pub const PARAMS_FILE: &str = "model.safetensors";
const LATEST: &str = "latest";

/// What a checkpoint directory holds, told from its files alone, so that a model handed to the
/// wrong program is named as what it is rather than failing on the first config key it lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `train_asr`'s recognizer: config.yaml, tokenizer.json, features.json, model.safetensors.
    Recognizer,
    /// `train_clm`'s language model: config.yaml, tokenizer.json, model.safetensors.
    LanguageModel,
    /// A pretrained Whisper: config.json and model.safetensors (Hugging Face) or model.bin
    /// (CTranslate2).
    Whisper,
    /// None of these.
    Unknown,
}

impl Kind {
    pub fn of(dir: &Path) -> Kind {
        let has = |f: &str| dir.join(f).is_file();
        // A fine-tuned Whisper also holds the config.yaml it was trained with: config.json
        // (Hugging Face's and CTranslate2's model description) decides first.
        if has("config.json") && (has(PARAMS_FILE) || has("model.bin")) {
            Kind::Whisper
        } else if has("config.yaml") && has(PARAMS_FILE) {
            match has("features.json") {
                true => Kind::Recognizer,
                false => Kind::LanguageModel,
            }
        } else {
            Kind::Unknown
        }
    }

    /// What to call it in an error message.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Recognizer => "a speech recognizer checkpoint (train_asr)",
            Kind::LanguageModel => "a language-model checkpoint (train_clm)",
            Kind::Whisper => "a pretrained Whisper model",
            Kind::Unknown => "not a checkpoint directory",
        }
    }
}

/// A second name under which a PyTorch model may save one of our parameters. A model whose
/// output projection is tied to its token embedding has no `lm_head.weight` of its own, while
/// a PyTorch model tied the usual way (`lm_head.weight = token_embedding.weight`) saves both
/// keys: `TiedName { alias: "lm_head.weight", param: "token_embedding.weight" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TiedName {
    pub alias: String,
    pub param: String,
}

/// Copy saved values into `params` (matched by name), refusing any mismatch in names or shapes.
pub fn load_params(file: &Path, bytes: &[u8], params: &[Tensor]) -> Result<()> {
    load_params_tied(file, bytes, params, &[])
}

/// `load_params` that also accepts, for each of `tied`, a tensor saved under the alias when it
/// equals the parameter exactly (same shape, same values); one that differs is refused,
/// naming both.
pub fn load_params_tied(
    file: &Path,
    bytes: &[u8],
    params: &[Tensor],
    tied: &[TiedName],
) -> Result<()> {
    let saved = tensors_from_bytes(file, bytes)?;
    let names: Vec<&str> = params.iter().filter_map(|p| p.name()).collect();
    let mut extras: Vec<&String> = saved
        .keys()
        .filter(|k| !names.contains(&k.as_str()))
        .collect();
    extras.sort();
    for extra in extras {
        let Some(tie) = tied.iter().find(|t| &t.alias == extra) else {
            return Err(Error::format(
                file,
                format!("holds tensor {extra:?}, which this model does not have"),
            ));
        };
        let param = saved.get(&tie.param).ok_or_else(|| {
            Error::format(
                file,
                format!(
                    "holds {extra:?} (tied to {:?} in this model) but not {:?} itself",
                    tie.param, tie.param
                ),
            )
        })?;
        if saved[extra] != *param {
            return Err(Error::format(
                file,
                format!(
                    "holds {extra:?}, which differs from {:?}; this model ties the two, so a \
                     checkpoint may only carry {extra:?} as an exact copy",
                    tie.param
                ),
            ));
        }
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

/// `load_params` from the parameters file of checkpoint directory `dir`.
pub fn load_params_from_dir(dir: &Path, params: &[Tensor]) -> Result<()> {
    load_params(&dir.join(PARAMS_FILE), &read(dir, PARAMS_FILE)?, params)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Write `bytes` to `path` through a temporary file renamed into place, so `path` holds either
/// its old content or all of the new.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::format(path, "is not a file path"))?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    write_file(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Make the renames inside `dir` durable: a rename is only on disk once its directory is
/// synced. (Windows cannot open a directory as a file; there the rename itself is the best
/// we get.)
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
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
    sync_dir(root)?;
    set_latest(root, name)?;
    Ok(dir)
}

fn set_latest(root: &Path, name: &str) -> Result<()> {
    let tmp = root.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    write_file(&tmp, name.as_bytes())?;
    let latest = root.join(LATEST);
    fs::rename(&tmp, &latest).map_err(|e| Error::io(&latest, e))?;
    sync_dir(root)
}

/// Tidy what a process killed in the middle of `save` left under `root`, before a run starts:
/// `.NAME.tmp-PID` (a checkpoint or `latest` half written: never pointed at, so deleted) and
/// `.NAME.old-PID` (the previous `NAME`, moved aside while a re-save of it was renamed in:
/// put back if `NAME` is missing, else deleted). Returns what it did, one line per entry.
pub fn recover(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    let mut done = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = file.strip_prefix('.') else {
            continue;
        };
        let remove = |path: &Path| {
            if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            }
            .map_err(|e| Error::io(path, e))
        };
        if rest.contains(".tmp-") {
            remove(&path)?;
            done.push(format!("removed the unfinished save {}", path.display()));
        } else if let Some((name, _pid)) = rest.rsplit_once(".old-") {
            let original = root.join(name);
            if original.exists() {
                remove(&path)?;
                done.push(format!("removed {}, replaced by {name}", path.display()));
            } else {
                fs::rename(&path, &original).map_err(|e| Error::io(&original, e))?;
                done.push(format!(
                    "restored {} from {}",
                    original.display(),
                    path.display()
                ));
            }
        }
    }
    if !done.is_empty() {
        sync_dir(root)?;
    }
    Ok(done)
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

/// The checkpoint a resumed run continues from: the one `latest` names; when `latest` names a
/// directory that is gone (deleted by hand), the newest surviving `step-*` checkpoint, else
/// `best`, with a note saying so. `None` when there is nothing to resume.
pub fn resume_point(root: &Path) -> Result<Option<(PathBuf, Option<String>)>> {
    match latest(root) {
        Ok(found) => return Ok(found.map(|dir| (dir, None))),
        Err(Error::Format { .. }) => {}
        Err(e) => return Err(e),
    }
    let named = fs::read_to_string(root.join(LATEST)).unwrap_or_default();
    let fallback = checkpoints_named(root, "step-")?
        .pop()
        .or_else(|| Some(root.join("best")).filter(|b| b.is_dir()));
    Ok(fallback.map(|dir| {
        let note = format!(
            "{} names {:?}, which is gone; resuming from {} instead",
            root.join(LATEST).display(),
            named.trim(),
            dir.display()
        );
        (dir, Some(note))
    }))
}

/// Read one file of a checkpoint.
pub fn read(dir: &Path, file: &str) -> Result<Vec<u8>> {
    let path = dir.join(file);
    fs::read(&path).map_err(|e| Error::io(&path, e))
}

/// The checkpoint directories under `root` named `prefix*`, in name order (oldest first).
fn checkpoints_named(root: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
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
    Ok(dirs)
}

/// Delete checkpoint directories named `prefix*` except the newest `keep` (by name order).
pub fn prune(root: &Path, prefix: &str, keep: usize) -> Result<()> {
    let dirs = checkpoints_named(root, prefix)?;
    let n = dirs.len().saturating_sub(keep);
    for d in &dirs[..n] {
        fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_deletes_unfinished_saves_and_puts_back_a_checkpoint_moved_aside() {
        let root = std::env::temp_dir().join(format!("wgformer-recover-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        save(&root, "step-0000001", &[("a.txt", b"one".to_vec())]).unwrap();
        // A kill between the two renames of a re-save of "best": only the old copy exists.
        fs::create_dir_all(root.join(".best.old-77")).unwrap();
        fs::write(root.join(".best.old-77/a.txt"), b"best").unwrap();
        // A kill while writing step 2 and while replacing `latest`.
        fs::create_dir_all(root.join(".step-0000002.tmp-78")).unwrap();
        fs::write(root.join(".latest.tmp-78"), b"step-0000002").unwrap();
        // A kill after "step-0000001" was re-saved but before its old copy was deleted.
        fs::create_dir_all(root.join(".step-0000001.old-79")).unwrap();
        let done = recover(&root).unwrap();
        assert_eq!(done.len(), 4, "{done:?}");
        let mut left: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["best", "latest", "step-0000001"]);
        assert_eq!(read(&root.join("best"), "a.txt").unwrap(), b"best");
        assert_eq!(latest(&root).unwrap(), Some(root.join("step-0000001")));
        assert!(
            recover(&root).unwrap().is_empty(),
            "a second pass finds nothing"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
