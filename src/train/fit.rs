//! The training loop every job shares, with its scaffold: the run directory (locked, never
//! mixing two runs), resume from the latest checkpoint, Ctrl-C / SIGTERM saving before exit,
//! the metrics log, progress output, evaluation every `eval_interval` steps with `best` and
//! the two newest `step-*` checkpoints kept, a wall-clock limit, the final test and the plot.
//! What differs between jobs (data, model, loss, evaluation) comes from the `Task`.

use super::interrupt;
use super::metrics::MetricsLog;
use super::non_finite::NonFiniteGuard;
use super::plot::write_plot;
use super::progress::Progress;
use super::run_dir::{changed_keys, RunDir};
use super::schedule::steps_within_budget;
use super::task::Task;
use super::trainer::Trainer;
use crate::checkpoint::{self, PARAMS_FILE};
use crate::config::NonFinitePolicy;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// How a run is started.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue the run in `train.out_dir` from its latest checkpoint.
    pub resume: bool,
    /// Progress and evaluation reports on stderr.
    pub verbose: bool,
    /// Stop after this many steps of this invocation (tests simulate an interruption).
    pub stop_after: Option<usize>,
}

/// The loop's settings, from a config's `train` section.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    pub log_interval: usize,
    pub eval_interval: usize,
    pub time_limit_minutes: Option<f64>,
    pub on_non_finite: NonFinitePolicy,
    pub max_skipped_steps: usize,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Optimizer steps taken, over every invocation of the run.
    pub steps: usize,
    /// This invocation's training losses, skipped steps left out.
    pub losses: Vec<f32>,
    /// The best evaluation score (`f64::MAX` when there was no evaluation).
    pub best_score: f64,
    pub last_eval: Vec<(&'static str, f64)>,
    pub test: Vec<(&'static str, f64)>,
    /// Training data per second of this invocation (the task's `RATE` unit).
    pub rate: f64,
    pub train_seconds: f64,
    pub out_dir: PathBuf,
    /// `--resume` found the run already finished: nothing was trained or tested.
    pub already_finished: bool,
}

impl RunReport {
    /// The value of metric `name` in the final test, or else the last evaluation.
    pub fn metric(&self, name: &str) -> f64 {
        self.test
            .iter()
            .chain(&self.last_eval)
            .find(|(k, _)| *k == name)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

/// `state.json` of a checkpoint: where training is.
#[derive(Serialize, Deserialize)]
struct TrainState {
    step: usize,
    /// Lowest evaluation score so far (JSON has no infinity: "none yet" is f64::MAX).
    best_score: f64,
    optimizer_steps: Vec<u32>,
    /// Reduce-on-plateau: (scale, best, bad evaluations).
    plateau: (f64, f64, usize),
    /// The task's own position in its data.
    data: serde_json::Value,
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        f64::MAX
    }
}

/// Train `task` with `trainer` in `dir` (opened first, so a run that cannot use its
/// directory is refused before any data is prepared) as `lc` and `opts` say, then test it.
pub fn fit<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    dir: RunDir,
    lc: &LoopConfig,
    opts: &RunOptions,
) -> Result<RunReport> {
    let progress = Progress::new(opts.verbose, 0, 0);
    for line in checkpoint::recover(&dir.checkpoints)? {
        progress.say(format!("checkpoints: {line}"));
    }
    for (name, bytes) in task.checkpoint_files() {
        dir.write(name, bytes)?;
    }
    let mut best = f64::MAX;
    if opts.resume {
        best = resume(task, trainer, &dir, &progress)?;
    }
    let mut total_steps = task.total_steps();
    trainer.schedule.total_steps = total_steps;
    let mut report = RunReport {
        steps: trainer.step,
        losses: Vec::new(),
        best_score: best,
        last_eval: Vec::new(),
        test: Vec::new(),
        rate: 0.0,
        train_seconds: 0.0,
        out_dir: dir.root.clone(),
        already_finished: opts.resume && trainer.step > 0 && trainer.step >= total_steps,
    };
    if report.already_finished {
        progress.say(format!(
            "{} finished at step {} already (of {total_steps}): nothing to do",
            dir.root.display(),
            trainer.step
        ));
        return Ok(report);
    }
    let metrics_path = dir.file("metrics.jsonl");
    let mut log = if trainer.step > 0 {
        MetricsLog::resume_at(&metrics_path, trainer.step)?
    } else {
        MetricsLog::create(&metrics_path)?
    };
    let progress = Progress::new(opts.verbose, total_steps, trainer.step);
    let mut guard = NonFiniteGuard::new(lc.on_non_finite, lc.max_skipped_steps);
    let (first_step, started) = (trainer.step, Instant::now());
    let (mut amount, mut pace_from) = (0.0f64, (first_step, 0.0f64));
    while trainer.step < total_steps {
        if opts
            .stop_after
            .is_some_and(|n| trainer.step - first_step >= n)
        {
            break;
        }
        if interrupt::stop_requested() {
            return Err(save_on_interrupt(task, trainer, &dir, best));
        }
        let batches = task.batches(trainer.step)?;
        let stats = trainer
            .step(batches.len(), |i, ctx| task.loss(&batches[i], ctx))
            .map_err(|e| with_size_hint::<T>(e))?;
        if !guard.after_step(trainer.step, &stats, &mut log)? {
            report.losses.push(stats.loss);
        }
        amount += batches.iter().map(|b| task.amount(b)).sum::<f64>();
        let (step, secs) = (trainer.step, started.elapsed().as_secs_f64());
        if let Some(minutes) = lc.time_limit_minutes {
            // The pace counts from the 20th step on: the first ones compile pipelines.
            if step - first_step == 20 {
                pace_from = (step, secs);
            }
            let paced = match step - first_step >= 20 {
                true => (step - pace_from.0, secs - pace_from.1),
                false => (0, 0.0),
            };
            total_steps =
                steps_within_budget(task.total_steps(), step, paced, secs, minutes * 60.0);
            trainer.schedule.total_steps = total_steps;
        }
        let rate = amount / secs.max(1e-9);
        let logged = step.is_multiple_of(lc.log_interval.max(1)) || step == total_steps;
        if logged {
            let record = [
                ("step", step as f64),
                ("loss", stats.loss as f64),
                ("lr", stats.lr),
                (T::RATE, rate),
            ];
            log.write("train", &record)?;
        }
        let msg = format!(
            "loss {:.3}, lr {:.2e}, {rate:.1} {}",
            stats.loss,
            stats.lr,
            T::RATE
        );
        progress.step(step, total_steps, logged, msg);
        if step.is_multiple_of(lc.eval_interval.max(1)) || step == total_steps {
            let eval = task.evaluate(step)?;
            trainer.schedule.observe_validation(eval.score);
            let mut record = vec![("step", step as f64)];
            record.extend(&eval.metrics);
            log.write("eval", &record)?;
            progress.say(format!("step {step}: {}", eval.report));
            if eval.score < best {
                best = eval.score;
                save(task, trainer, &dir, "best", best, &eval.best_files)?;
            }
            save(task, trainer, &dir, &format!("step-{step:07}"), best, &[])?;
            checkpoint::prune(&dir.checkpoints, "step-", 2)?;
            report.last_eval = eval.metrics;
        }
    }
    progress.finish();
    report.train_seconds = started.elapsed().as_secs_f64();
    report.rate = amount / report.train_seconds.max(1e-9);
    report.steps = trainer.step;
    report.best_score = best;
    if opts
        .stop_after
        .is_some_and(|n| trainer.step - first_step >= n)
    {
        return Ok(report);
    }
    let best_dir = dir.checkpoints.join("best");
    report.test = task.test(best_dir.is_dir().then_some(best_dir.as_path()))?;
    let mut record = vec![("step", trainer.step as f64)];
    record.extend(&report.test);
    log.write("test", &record)?;
    write_plot(&dir.root, T::NAME, T::PLOT_METRIC)?;
    Ok(report)
}

/// A tensor past the adapter's buffer limit, said with the config keys that size it.
fn with_size_hint<T: Task>(e: Error) -> Error {
    match e {
        Error::TooLarge { .. } => Error::format(
            format!("{} training step", T::NAME),
            format!("{e}; lower {}", T::SIZE_KEYS),
        ),
        e => e,
    }
}

/// Load the checkpoint a resumed run continues from into `task` and `trainer`; returns the
/// best score so far. Says what it did (and what changed in the config since).
fn resume<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    dir: &RunDir,
    progress: &Progress,
) -> Result<f64> {
    let Some((ckpt, note)) = checkpoint::resume_point(&dir.checkpoints)? else {
        progress.say(format!(
            "nothing to resume in {}: starting a new run",
            dir.root.display()
        ));
        return Ok(f64::MAX);
    };
    if let Some(note) = note {
        progress.say(note);
    }
    let state_path = ckpt.join("state.json");
    let state: TrainState = serde_json::from_slice(&checkpoint::read(&ckpt, "state.json")?)
        .map_err(|e| Error::format(&state_path, e))?;
    checkpoint::load_params_from_dir(&ckpt, &task.params())?;
    let opt_file = ckpt.join("optimizer.safetensors");
    let opt_bytes = checkpoint::read(&ckpt, "optimizer.safetensors")?;
    trainer
        .optimizer
        .restore(&opt_file, &opt_bytes, &state.optimizer_steps)?;
    trainer.schedule.set_plateau_state(state.plateau);
    trainer.step = state.step;
    task.restore_data_state(&state.data)?;
    if let Ok(old) = checkpoint::read(&ckpt, "config.yaml") {
        let new = task
            .checkpoint_files()
            .iter()
            .find(|(n, _)| n == "config.yaml");
        let changed = new.map_or(Vec::new(), |(_, new)| {
            changed_keys(
                &String::from_utf8_lossy(&old),
                &String::from_utf8_lossy(new),
            )
        });
        if !changed.is_empty() {
            progress.say(format!(
                "warning: the config differs from the checkpoint's: {}",
                changed.join("; ")
            ));
        }
    }
    progress.say(format!(
        "resumed from {} at step {}",
        ckpt.display(),
        state.step
    ));
    Ok(state.best_score)
}

/// Save checkpoint `name`: parameters, optimizer state, training state and the task's files
/// (`replace` overriding some of them).
fn save<T: Task>(
    task: &T,
    trainer: &Trainer,
    dir: &RunDir,
    name: &str,
    best: f64,
    replace: &[(String, Vec<u8>)],
) -> Result<PathBuf> {
    let params = task.params();
    let state = TrainState {
        step: trainer.step,
        best_score: finite(best),
        optimizer_steps: trainer.optimizer.steps().to_vec(),
        plateau: {
            let (scale, best_val, bad) = trainer.schedule.plateau_state();
            (scale, finite(best_val), bad)
        },
        data: task.data_state(),
    };
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (PARAMS_FILE, named_bytes(&params)?),
        (
            "optimizer.safetensors",
            checkpoint::tensors_to_bytes(&trainer.optimizer.state())?,
        ),
        (
            "state.json",
            serde_json::to_vec_pretty(&state).map_err(|e| Error::format("state.json", e))?,
        ),
    ];
    for (file, bytes) in task.checkpoint_files() {
        let chosen = replace
            .iter()
            .find(|(n, _)| n == file)
            .map_or(bytes, |(_, b)| b);
        files.push((file, chosen.clone()));
    }
    checkpoint::save(&dir.checkpoints, name, &files)
}

/// The parameters as safetensors bytes under their PyTorch names.
fn named_bytes(params: &[Tensor]) -> Result<Vec<u8>> {
    let named: Vec<(String, &Tensor)> = params
        .iter()
        .map(|p| (p.name().unwrap_or_default().to_string(), p))
        .collect();
    checkpoint::tensors_to_bytes(&named)
}

/// Ctrl-C or SIGTERM: save the current step (unless an evaluation just did) and stop.
fn save_on_interrupt<T: Task>(task: &T, trainer: &Trainer, dir: &RunDir, best: f64) -> Error {
    let step = trainer.step;
    let name = format!("step-{step:07}");
    let path = dir.checkpoints.join(&name);
    if !path.exists() {
        if let Err(e) = save(task, trainer, dir, &name, best, &[]) {
            return e;
        }
    }
    Error::Interrupted {
        step,
        checkpoint: path,
    }
}
