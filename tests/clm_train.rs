//! Training the causal LM: overfitting one batch, and resuming from a checkpoint.
mod common;
use common::*;
use wgformer::config::Config;
use wgformer::data::{Batch, PAD};
use wgformer::train::clm::lm_loss;
use wgformer::train::clm::run;
use wgformer::train::RunOptions;

#[test]
fn tiny_model_overfits_one_batch_to_near_zero_loss() {
    let (model, mut trainer) = tiny_lm(&gpu(), false, 3);
    // Two rows of 12 tokens; the second is padded after 9.
    let row1: Vec<u32> = (0..13).map(|i| 4 + (i * 5 % 9) as u32).collect();
    let mut row2: Vec<u32> = (0..13).map(|i| 4 + ((i * 2 + 1) % 9) as u32).collect();
    row2[10..].iter_mut().for_each(|t| *t = PAD);
    let mut batch = Batch::from_windows(&[row1, row2].concat(), 12).unwrap();
    batch.lens = vec![12, 9];
    let first = trainer
        .step(1, |_, ctx| lm_loss(&model, &batch, ctx, 0.0))
        .unwrap()
        .loss;
    let mut last = first;
    for _ in 0..200 {
        last = trainer
            .step(1, |_, ctx| lm_loss(&model, &batch, ctx, 0.0))
            .unwrap()
            .loss;
    }
    assert!(first > 2.0, "initial loss {first} should be near ln(13)");
    assert!(
        last < 0.05,
        "loss after 200 steps on one batch: {last} (started at {first})"
    );
}

fn tiny_run_config(dir: &std::path::Path) -> Config {
    let corpus = dir.join("corpus.txt");
    let text: String = (0..60)
        .map(|i| format!("line {i}: to be or not to be, that is the question.\n"))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let yaml = format!(
        "tokenizer: {{kind: char}}\n\
         data: {{path: {}, val_fraction: 0.1, test_fraction: 0.1}}\n\
         model: {{d_model: 32, d_ff: 64, num_layers: 1, num_heads: 2, dropout: 0.1, layer_drop_rate: 0.0, weight_tying: true, max_seq_len: 32}}\n\
         train: {{seq_len: 32, batch_size: 4, max_steps: 12, eval_interval: 4, eval_batches: 2, seed: 7, out_dir: {}, log_interval: 1}}\n\
         optimizer: {{kind: adamw, lr: 3e-3}}\n\
         scheduler: {{kind: cosine, warmup_steps: 3, min_lr: 1e-4}}\n",
        corpus.display(),
        dir.join("run").display()
    );
    Config::from_yaml_str(&yaml, "tiny.yaml").unwrap()
}

#[test]
fn resume_after_an_interruption_reproduces_the_uninterrupted_losses() {
    let base = std::env::temp_dir().join(format!("wgformer-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (a, b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let quiet = |stop_after, resume| RunOptions {
        resume,
        verbose: false,
        stop_after,
    };

    let full = run(&tiny_run_config(&a), &quiet(None, false)).unwrap();
    assert_eq!(full.losses.len(), 12);
    assert!(full.losses.iter().all(|l| l.is_finite()));

    let cfg = tiny_run_config(&b);
    let first = run(&cfg, &quiet(Some(4), false)).unwrap();
    assert_eq!(
        first.losses,
        full.losses[..4],
        "same seed, same adapter: same first steps"
    );
    let rest = run(&cfg, &quiet(None, true)).unwrap();
    assert_eq!(rest.steps, 12);
    assert_eq!(
        rest.losses,
        full.losses[4..],
        "resumed losses differ from the uninterrupted run"
    );
    assert!(b.join("run/checkpoints/best/model.safetensors").exists());
    assert!(b.join("run/curves.png").exists());
    let _ = std::fs::remove_dir_all(&base);
}

/// A tiny run in a fresh folder named after `tag`, with lr 1e30 and no clipping (the weights
/// blow up at the first step, every later loss is NaN) and `overrides`; its error.
fn run_blowing_up(tag: &str, overrides: &[&str]) -> (std::path::PathBuf, wgformer::Error) {
    let base = std::env::temp_dir().join(format!("wgformer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let mut config = tiny_run_config(&base);
    for o in ["optimizer.lr=1e30", "train.max_grad_norm=0"]
        .iter()
        .chain(overrides)
    {
        config.apply_override(o).unwrap();
    }
    let quiet = RunOptions {
        resume: false,
        verbose: false,
        stop_after: None,
    };
    let err = run(&config, &quiet).unwrap_err();
    (base, err)
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_the_checkpoints() {
    let (base, err) = run_blowing_up("nan", &["train.eval_interval=1"]);
    let err = err.to_string();
    assert!(
        err.contains("step") && err.contains("loss") && err.contains("lr"),
        "{err}"
    );
    // What was saved before the fault still loads.
    let root = base.join("run/checkpoints");
    let latest = wgformer::checkpoint::latest(&root)
        .unwrap()
        .expect("a checkpoint before the fault");
    wgformer::inference::clm::load_model(&gpu(), &latest).unwrap();
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn under_the_skip_policy_bad_steps_are_logged_and_skipped_until_too_many_in_a_row() {
    // Skipping a step leaves the blown-up weights as they are, so every later step is bad too
    // and the run stops after 3 skips + 1.
    let (base, err) = run_blowing_up(
        "skip",
        &["train.on_non_finite=skip", "train.max_skipped_steps=3"],
    );
    let wgformer::Error::NonFinite { step, in_a_row, .. } = err else {
        panic!("expected Error::NonFinite, got {err}");
    };
    assert_eq!(in_a_row, 4, "{err}");
    let skipped =
        wgformer::train::metrics::read_records(&base.join("run/metrics.jsonl"), "non_finite")
            .unwrap();
    let steps: Vec<f64> = skipped
        .iter()
        .map(|r| r["step"].as_f64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (step - 3..=step).map(|s| s as f64).collect::<Vec<_>>(),
        "every bad step is logged"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Every file under `dir` with its bytes, for checking that nothing changed.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else if path.file_name().is_some_and(|n| n != ".lock") {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn a_fresh_run_into_a_used_directory_is_refused_and_leaves_the_earlier_run_intact() {
    let base = std::env::temp_dir().join(format!("wgformer-reuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let cfg = tiny_run_config(&base);
    let quiet = |resume| RunOptions {
        resume,
        verbose: false,
        stop_after: None,
    };
    run(&cfg, &quiet(false)).unwrap();
    let before = snapshot(&base.join("run"));
    let err = run(&cfg, &quiet(false)).unwrap_err().to_string();
    assert!(
        err.contains("already holds a training run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(
        snapshot(&base.join("run")),
        before,
        "the refused run changed files"
    );
    // Resuming a finished run does nothing either: no second test record, no new files.
    let again = run(&cfg, &quiet(true)).unwrap();
    assert!(again.already_finished && again.steps == 12);
    assert_eq!(
        snapshot(&base.join("run")),
        before,
        "resuming a finished run changed files"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn resume_falls_back_to_the_newest_checkpoint_when_latest_names_a_deleted_one() {
    let base = std::env::temp_dir().join(format!("wgformer-fallback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (a, b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let quiet = |stop_after, resume| RunOptions {
        resume,
        verbose: false,
        stop_after,
    };
    let full = run(&tiny_run_config(&a), &quiet(None, false)).unwrap();
    let cfg = tiny_run_config(&b);
    run(&cfg, &quiet(Some(8), false)).unwrap();
    // Checkpoints every 4 steps: step-4 and step-8 (latest); delete step-8 by hand.
    let root = b.join("run/checkpoints");
    std::fs::remove_dir_all(root.join("step-0000008")).unwrap();
    let rest = run(&cfg, &quiet(None, true)).unwrap();
    assert_eq!(rest.steps, 12);
    assert_eq!(rest.losses, full.losses[4..], "resumed from step 4");
    // The metrics log holds every step once.
    let records =
        wgformer::train::metrics::read_records(&b.join("run/metrics.jsonl"), "train").unwrap();
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_f64().unwrap() as u64)
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&base);
}
