//! Interrupted training keeps everything saved: a training process (the `train_clm` example on
//! a tiny config that checkpoints every step) is killed with SIGKILL at random moments, many of
//! them during a checkpoint write; after each kill the latest checkpoint loads, and resuming to
//! the end reproduces the losses of an uninterrupted run. Ctrl-C (SIGINT) and SIGTERM stop a
//! run cleanly with its state saved (exit status 130); a second run on a directory in use is
//! refused.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wgformer::checkpoint;
use wgformer::config::Config;
use wgformer::inference::clm::load_model;
use wgformer::rng::SplitMix64;
use wgformer::train::clm::run;
use wgformer::train::metrics::read_records;
use wgformer::train::RunOptions;

const STEPS: usize = 150;

fn write_config(dir: &Path) -> PathBuf {
    common::tiny_clm_config(
        dir,
        0.1,
        &format!(
            "max_steps: {STEPS}, eval_interval: 1, eval_batches: 1, seed: 11, log_interval: 1"
        ),
    )
}

/// The example binary: built next to the tests by `cargo test`, or built here.
fn train_clm() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/train_clm");
    if !path.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--example", "train_clm"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "cargo build --example train_clm failed");
    }
    path
}

fn spawn(config: &Path) -> Child {
    Command::new(train_clm())
        .args(["--config"])
        .arg(config)
        .arg("--resume")
        .env("WGFORMER_AUTOTUNE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Complete `train` lines in the metrics log so far: the run's progress (a resumed run first
/// cuts the lines of steps it redoes).
fn logged_steps(run_dir: &Path) -> usize {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && l.contains("\"train\""))
        .count()
}

/// What an unfinished save leaves in the checkpoint folder: `.NAME.tmp-PID`, `.NAME.old-PID`.
fn dot_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// The logged training loss of every step.
fn losses(run_dir: &Path) -> Vec<f64> {
    let mut by_step = std::collections::BTreeMap::new();
    for r in read_records(&run_dir.join("metrics.jsonl"), "train").unwrap() {
        by_step.insert(
            r["step"].as_f64().unwrap() as u64,
            r["loss"].as_f64().unwrap(),
        );
    }
    by_step.into_values().collect()
}

#[test]
fn sigkill_at_random_moments_never_leaves_an_unreadable_checkpoint_and_resume_reproduces_the_run() {
    let base = std::env::temp_dir().join(format!("wgformer-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // The uninterrupted reference, in this process.
    let reference_cfg = write_config(&base.join("reference"));
    let config = Config::load(&reference_cfg).unwrap();
    run(
        &config,
        &RunOptions {
            resume: false,
            verbose: false,
            stop_after: None,
        },
    )
    .unwrap();
    let want = losses(&base.join("reference/run"));
    assert_eq!(want.len(), STEPS);

    let cfg = write_config(&base.join("killed"));
    let run_dir = base.join("killed/run");
    let root = run_dir.join("checkpoints");
    let mut rng = SplitMix64::new(5);
    let (mut kills, mut survived_checks, mut mid_save) = (0, 0, 0);
    for _ in 0..8 {
        let before = logged_steps(&run_dir);
        let mut child = spawn(&cfg);
        // Kill at a moment tied to the child's own progress, not to the clock, so the test means
        // the same on a slow CPU adapter and a fast GPU: wait until it has logged 1-8 more steps,
        // then kill after a random fraction of one step's time (often mid-checkpoint: this
        // config saves after every step).
        let ahead = 1 + (rng.next_u64() % 8) as usize;
        let (mut first_seen, start) = (None, Instant::now());
        while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
            let now = logged_steps(&run_dir);
            if now > before && first_seen.is_none() {
                first_seen = Some((Instant::now(), now));
            }
            if now >= before + ahead {
                let step_time = match first_seen {
                    Some((t, n)) if now > n => t.elapsed() / (now - n) as u32,
                    _ => Duration::from_millis(20),
                };
                let fraction = (rng.next_u64() % 1000) as u32;
                std::thread::sleep(step_time * fraction / 1000);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        mid_save += usize::from(!dot_entries(&root).is_empty());
        if let Some(dir) = checkpoint::latest(&root).unwrap() {
            let gpu = wgformer::Gpu::shared().unwrap();
            load_model(&gpu, &dir).unwrap_or_else(|e| {
                panic!("after kill {kills}: {} unreadable: {e}", dir.display())
            });
            survived_checks += 1;
        }
    }
    assert_eq!(kills, 8, "the run ended before every kill landed");
    // Finish without interruption; every step's loss equals the uninterrupted run's.
    let status = spawn(&cfg).wait().unwrap();
    assert!(status.success(), "the final resume failed: {status}");
    let got = losses(&run_dir);
    assert_eq!(got.len(), STEPS);
    // Each step is logged once: a resumed run cuts what the killed one logged past its
    // checkpoint.
    let logged = read_records(&run_dir.join("metrics.jsonl"), "train").unwrap();
    assert_eq!(
        logged.len(),
        STEPS,
        "steps logged twice after {kills} kills"
    );
    let leftovers = dot_entries(&root);
    assert!(
        leftovers.is_empty(),
        "unfinished saves left after the resumed run: {leftovers:?}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g,
            w,
            "step {}: loss {g} after {kills} kills, uninterrupted {w}",
            i + 1
        );
    }
    println!(
        "{kills} kills ({mid_save} in the middle of a save), {survived_checks} latest checkpoints loaded, {STEPS} losses reproduced"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Wait until the run in `base` has saved its first checkpoint (training is under way).
fn wait_for_first_checkpoint(child: &mut Child, root: &Path) {
    let start = Instant::now();
    while checkpoint::latest(root).unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no checkpoint after 60 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctrl_c_and_sigterm_stop_after_saving_and_the_run_resumes() {
    for signal in ["INT", "TERM"] {
        let base =
            std::env::temp_dir().join(format!("wgformer-sig{signal}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let cfg = write_config(&base);
        let root = base.join("run/checkpoints");
        let mut child = spawn(&cfg);
        wait_for_first_checkpoint(&mut child, &root);
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = child.wait().unwrap();
        if status.code() == Some(0) {
            // It finished all steps before the signal arrived: nothing to check.
            println!("the run finished before SIG{signal} landed");
        } else {
            assert_eq!(
                status.code(),
                Some(130),
                "SIG{signal} exits with 130: {status}"
            );
            let latest = checkpoint::latest(&root)
                .unwrap()
                .expect("a checkpoint after the signal");
            let gpu = wgformer::Gpu::shared().unwrap();
            load_model(&gpu, &latest).unwrap();
            let status = spawn(&cfg).wait().unwrap();
            assert!(status.success(), "resume after SIG{signal}: {status}");
            assert_eq!(losses(&base.join("run")).len(), STEPS);
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}

#[test]
fn a_second_run_on_a_directory_in_use_is_refused_naming_the_first() {
    let base = std::env::temp_dir().join(format!("wgformer-busy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let cfg = write_config(&base);
    let mut child = spawn(&cfg);
    wait_for_first_checkpoint(&mut child, &base.join("run/checkpoints"));
    let config = Config::load(&cfg).unwrap();
    let opts = RunOptions {
        resume: true,
        verbose: false,
        stop_after: None,
    };
    let err = run(&config, &opts).unwrap_err().to_string();
    assert!(
        err.contains("in use by another training run")
            && err.contains(&format!("pid {}", child.id())),
        "{err}"
    );
    // The first run goes on undisturbed and finishes.
    let status = child.wait().unwrap();
    assert!(status.success(), "the first run: {status}");
    assert_eq!(losses(&base.join("run")).len(), STEPS);
    let _ = std::fs::remove_dir_all(&base);
}
