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
    /// Start `path` afresh (a new run).
    pub fn create(path: &Path) -> Result<MetricsLog> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Continue `path` for a run resumed at `step`: the records of later steps (logged by the
    /// killed run after its last checkpoint, and about to be redone) are cut, as is a last line
    /// a kill left half written, so every step appears once and every line stays JSON.
    pub fn resume_at(path: &Path, step: usize) -> Result<MetricsLog> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .filter(|line| {
                let record: Option<Value> = serde_json::from_str(line).ok();
                let logged_at = record.as_ref().and_then(|r| r.get("step")?.as_f64());
                logged_at.is_none_or(|s| s <= step as f64)
            })
            .collect();
        if kept.len() != text.len() {
            // Written beside and renamed over, so a kill here leaves the old or the new log.
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, &kept).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_cuts_the_steps_after_the_checkpoint_and_a_half_written_line() {
        let path =
            std::env::temp_dir().join(format!("wgformer-metrics-{}.jsonl", std::process::id()));
        let mut log = MetricsLog::create(&path).unwrap();
        for step in 1..=5 {
            log.write("train", &[("step", step as f64), ("loss", 1.0)])
                .unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"kind\":\"train\",\"st");
        std::fs::write(&path, text).unwrap();
        let mut log = MetricsLog::resume_at(&path, 3).unwrap();
        log.write("train", &[("step", 4.0), ("loss", 2.0)]).unwrap();
        let steps: Vec<f64> = read_records(&path, "train")
            .unwrap()
            .iter()
            .map(|r| r["step"].as_f64().unwrap())
            .collect();
        assert_eq!(steps, [1.0, 2.0, 3.0, 4.0]);
        std::fs::remove_file(&path).unwrap();
    }
}
