//! `curves.png` of a run from its `metrics.jsonl`: the training loss and one evaluation metric
//! against steps (drawn by `report::plot_curves`).

use super::metrics::read_records;
use crate::error::Result;
use crate::report::{plot_curves, Series};
use std::collections::BTreeMap;
use std::path::Path;

/// Plot `loss` of the `train` records and `eval_metric` of the `eval` records.
pub fn write_plot(out_dir: &Path, title: &str, eval_metric: &str) -> Result<()> {
    let path = out_dir.join("metrics.jsonl");
    let points = |kind: &str, field: &str| -> Result<Vec<(f64, f64)>> {
        let mut by_step = BTreeMap::new();
        for r in read_records(&path, kind)? {
            if let (Some(step), Some(y)) = (
                r.get("step").and_then(|v| v.as_f64()),
                r.get(field).and_then(|v| v.as_f64()),
            ) {
                by_step.insert(step as u64, y);
            }
        }
        Ok(by_step.into_iter().map(|(s, y)| (s as f64, y)).collect())
    };
    let series = vec![
        Series {
            name: "train loss".into(),
            points: points("train", "loss")?,
        },
        Series {
            name: eval_metric.replace('_', " "),
            points: points("eval", eval_metric)?,
        },
    ];
    plot_curves(
        &out_dir.join("curves.png"),
        &format!("{title} training"),
        &series,
        false,
        800,
        500,
    )
}
