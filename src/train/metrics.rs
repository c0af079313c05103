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
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
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
