//! Metrics: one JSON object per line (`metrics.jsonl`), appended as training goes, so a crash
//! keeps everything logged so far and any tool can read it.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Open `path`: a resumed run appends to the earlier lines, a new run starts it afresh.
    pub fn open(path: &Path, resume: bool) -> Result<MetricsLog> {
        let mut options = OpenOptions::new();
        options.create(true);
        if resume {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let file = options.open(path).map_err(|e| Error::io(path, e))?;
        if resume {
            Self::drop_partial_last_line(path, &file)?;
        }
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// A run killed in the middle of a write leaves a last line without its newline: cut it off,
    /// so the resumed run's records start on a line of their own and every line stays JSON.
    fn drop_partial_last_line(path: &Path, file: &File) -> Result<()> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if text.is_empty() || text.ends_with(b"\n") {
            return Ok(());
        }
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        file.set_len(keep as u64).map_err(|e| Error::io(path, e))
    }

    /// Write one record, e.g. `log.write("train", &[("step", 10.0), ("loss", 2.3)])`.
    pub fn write(&mut self, kind: &str, fields: &[(&str, f64)]) -> Result<()> {
        let mut obj = Map::new();
        obj.insert("kind".into(), Value::from(kind));
        for (k, v) in fields {
            // JSON has no NaN/inf: write them as null so the line stays valid.
            let v = serde_json::Number::from_f64(*v)
                .map(Value::Number)
                .unwrap_or(Value::Null);
            obj.insert((*k).into(), v);
        }
        writeln!(self.file, "{}", Value::Object(obj)).map_err(|e| Error::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read back the records of one kind as (field -> value) maps, e.g. for plotting.
pub fn read_records(path: &Path, kind: &str) -> Result<Vec<Map<String, Value>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::format(path, format!("line {}: {e}", i + 1)))?;
        if let Value::Object(m) = v {
            if m.get("kind").and_then(Value::as_str) == Some(kind) {
                out.push(m);
            }
        }
    }
    Ok(out)
}
