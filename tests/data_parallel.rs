//! Data-parallel training over MPI (built with `--features mpi`; `scripts/test` runs this file
//! that way after installing MPICH): two processes under `mpiexec -n 2` train the same model as
//! one process with the same global batch, loss for loss, and end with bit-identical weights;
//! a process killed mid-run ends the whole job with an error instead of a hang.
#![cfg(feature = "mpi")]

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wgformer::config::Config;
use wgformer::train::clm::run;
use wgformer::train::metrics::read_records;
use wgformer::train::RunOptions;

const STEPS: usize = 20;

/// No dropout: its masks depend on a row's place in the batch, which sharding changes.
fn write_config(dir: &Path, steps: usize) -> PathBuf {
    common::tiny_clm_config(
        dir,
        0.0,
        &format!(
            "max_steps: {steps}, eval_interval: 10, eval_batches: 2, seed: 3, log_interval: 1"
        ),
    )
}

/// The `train_clm` example built with MPI: the executable cargo reports for that build (the
/// copy in target/<profile>/examples/ may be a build without the feature, left by a plain
/// `cargo test`, whose processes would each run as a world of their own).
fn train_clm() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new(env!("CARGO"))
                .args(["build", "--features", "mpi", "--example", "train_clm"])
                .args(["--message-format", "json"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cargo build --features mpi --example train_clm failed"
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|m| m["target"]["name"] == "train_clm")
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .expect("cargo names the train_clm executable")
        })
        .clone()
}

fn mpiexec(n: usize, config: &Path) -> Command {
    let mut cmd = Command::new("mpiexec");
    cmd.args(["-n", &n.to_string()])
        .arg(train_clm())
        .arg("--config")
        .arg(config)
        // One llvmpipe thread per process on a small machine.
        .env("LP_NUM_THREADS", "1");
    cmd
}

fn losses(run_dir: &Path) -> Vec<f64> {
    read_records(&run_dir.join("metrics.jsonl"), "train")
        .unwrap()
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn two_processes_train_like_one_with_the_same_global_batch_and_end_identical() {
    let base = std::env::temp_dir().join(format!("wgformer-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let one = write_config(&base.join("one"), STEPS);
    let quiet = RunOptions {
        resume: false,
        verbose: false,
        stop_after: None,
    };
    run(&Config::load(&one).unwrap(), &quiet).unwrap();
    let want = losses(&base.join("one/run"));
    assert_eq!(want.len(), STEPS);

    let two = write_config(&base.join("two"), STEPS);
    let out = mpiexec(2, &two).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpiexec -n 2 failed: {stderr}");
    let got = losses(&base.join("two/run"));
    assert_eq!(got.len(), STEPS);
    let mut worst = 0.0f64;
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let rel = (g - w).abs() / w.abs();
        worst = worst.max(rel);
        assert!(
            rel <= 1e-5,
            "step {}: 2 processes {g}, 1 process {w} ({rel:.1e})",
            step + 1
        );
    }
    println!("{STEPS} losses of 2 processes vs 1: largest relative difference {worst:.2e}");
    // Each process printed the checksum of its weights; they are equal.
    let sums: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once("weights checksum ").map(|(_, s)| s.trim()))
        .collect();
    assert_eq!(sums.len(), 2, "{stderr}");
    assert_eq!(sums[0], sums[1], "{stderr}");
    assert!(
        stderr.contains("weights identical on all 2 processes"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// The pid of the process `mpiexec` started as rank `rank` (MPICH sets PMI_RANK).
fn rank_pid(config: &Path, rank: usize) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let has =
            |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
        if has(&cmdline, &config.display().to_string())
            && has(&cmdline, "examples/train_clm")
            && has(&environ, &format!("PMI_RANK={rank}\0"))
        {
            return Some(pid);
        }
    }
    None
}

/// Once the job has saved a checkpoint (training is under way), send `signal` to its second
/// process; the job's exit status, which must come within a minute.
fn signal_second_process(
    job: &mut std::process::Child,
    config: &Path,
    checkpoints: &Path,
    signal: &str,
) -> std::process::ExitStatus {
    let start = Instant::now();
    while wgformer::checkpoint::latest(checkpoints).unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        assert!(job.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = rank_pid(config, 1).expect("rank 1's process");
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &second.to_string()])
        .status();
    assert!(sent.unwrap().success());
    let start = Instant::now();
    loop {
        if let Some(status) = job.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job hung after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_process_ends_the_job_with_an_error_instead_of_a_hang() {
    let base = std::env::temp_dir().join(format!("wgformer-dp-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let config = write_config(&base, 100_000);
    // MPICH's launcher reports a dead process on stdout, the processes log on stderr.
    let (out_log, err_log) = (base.join("job.out"), base.join("job.err"));
    let mut job = mpiexec(2, &config)
        .stdout(std::fs::File::create(&out_log).unwrap())
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    // Wait for training to be under way (a first evaluation's checkpoint), then SIGKILL rank 1.
    // MPICH's launcher ends the whole job when one process dies: the survivor must not hang.
    let status = signal_second_process(&mut job, &config, &base.join("run/checkpoints"), "KILL");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let output = read(&out_log) + &read(&err_log);
    assert!(
        !status.success(),
        "the job reported success after a process was killed"
    );
    // MPICH reports the first process it sees end: the killed one (signal 9), or the
    // survivor, which UCX aborts (signal 6) when its peer vanishes mid-collective.
    assert!(
        output.contains("BAD TERMINATION")
            && (output.contains("signal 9") || output.contains("signal 6")),
        "mpiexec says which process died: {output}"
    );
    // What the first process saved is intact, and the run resumes with the same N.
    let latest = wgformer::checkpoint::latest(&base.join("run/checkpoints"))
        .unwrap()
        .unwrap();
    let gpu = wgformer::Gpu::shared().unwrap();
    wgformer::inference::clm::load_model(&gpu, &latest).unwrap();
    let resumed = mpiexec(2, &config)
        .args(["--resume", "--set", "train.max_steps=14"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let steps: Vec<f64> = read_records(&base.join("run/metrics.jsonl"), "train")
        .unwrap()
        .iter()
        .map(|r| r["step"].as_f64().unwrap())
        .collect();
    assert_eq!(steps, (1..=14).map(f64::from).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn sigterm_to_one_process_saves_once_and_stops_every_process() {
    let base = std::env::temp_dir().join(format!("wgformer-dp-term-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let config = write_config(&base, 100_000);
    let mut job = mpiexec(2, &config)
        .stdout(std::fs::File::create(base.join("job.out")).unwrap())
        .stderr(std::fs::File::create(base.join("job.err")).unwrap())
        .spawn()
        .unwrap();
    let root = base.join("run/checkpoints");
    let status = signal_second_process(&mut job, &config, &root, "TERM");
    let err = std::fs::read_to_string(base.join("job.err")).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err.matches("interrupted at step").count(),
        2,
        "both processes stop: {err}"
    );
    let latest = wgformer::checkpoint::latest(&root).unwrap().unwrap();
    let state = std::fs::read_to_string(latest.join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let saved = format!("interrupted at step {}", state["step"]);
    assert!(
        err.contains(&saved),
        "the first process saved the step it stopped at: {err}"
    );
    let _ = std::fs::remove_dir_all(&base);
}
