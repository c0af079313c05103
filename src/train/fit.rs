//! The training loop every job shares, with its scaffold: the run directory (locked, never
//! mixing two runs), resume from the latest checkpoint, Ctrl-C / SIGTERM saving before exit,
//! the metrics log, progress output, evaluation every `eval_interval` steps with `best` and
//! the two newest `step-*` checkpoints kept, a wall-clock limit, the final test and the plot.
//! What differs between jobs (data, model, loss, evaluation) comes from the `Task`.

use super::distributed::{agree, Collective};
use super::interrupt;
use super::loss_scale::LossScaler;
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
use crate::gpu::Gpu;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
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
    /// Mixed precision's loss scale (absent in f32 runs and in older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_scale: Option<LossScaler>,
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        f64::MAX
    }
}

/// What every job does first: open the run directory (the first process only: it alone
/// writes; the directory is locked, and a fresh run refuses one that holds a run) and the
/// device, named on stderr with this process's place in the run when `opts.verbose`.
pub fn open_run(
    out_dir: &Path,
    opts: &RunOptions,
    coll: &dyn Collective,
) -> Result<(Option<RunDir>, Gpu)> {
    let dir = match coll.is_root() {
        true => Some(RunDir::open(out_dir, opts.resume)?),
        false => None,
    };
    let gpu = Gpu::shared()?;
    if opts.verbose {
        eprintln!(
            "adapter: {} ({} of {})",
            gpu.adapter_name(),
            coll.shard().rank + 1,
            coll.shard().size
        );
    }
    Ok((dir, gpu))
}

/// Train `task` with `trainer` as `lc` and `opts` say, then test it. `dir` is the run
/// directory, opened first so that a run that cannot use it is refused before any data is
/// prepared; in a data-parallel run only the first process (`coll`'s rank 0) has one and
/// writes metrics and checkpoints, the others pass `None`.
pub fn fit<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    dir: Option<RunDir>,
    coll: &dyn Collective,
    lc: &LoopConfig,
    opts: &RunOptions,
) -> Result<RunReport> {
    let shard = coll.shard();
    let progress = Progress::new(opts.verbose && coll.is_root(), 0, 0);
    let start = match &dir {
        Some(dir) => prepare(task, trainer, dir, opts, &progress),
        None if coll.is_root() => Err(Error::format(
            "fit",
            "the first process needs the run directory",
        )),
        None => Ok(f64::MAX),
    };
    let mut best = agree(coll, start)?;
    if shard.size > 1 {
        best = share_state(task, trainer, coll, best)?;
    }
    let mut total_steps = task.total_steps();
    trainer.schedule.total_steps = total_steps;
    let out_dir = dir.as_ref().map_or_else(PathBuf::new, |d| d.root.clone());
    let mut report = RunReport {
        steps: trainer.step,
        losses: Vec::new(),
        best_score: best,
        last_eval: Vec::new(),
        test: Vec::new(),
        rate: 0.0,
        train_seconds: 0.0,
        out_dir,
        already_finished: opts.resume && trainer.step > 0 && trainer.step >= total_steps,
    };
    if report.already_finished {
        progress.say(format!(
            "{} finished at step {} already (of {total_steps}): nothing to do",
            report.out_dir.display(),
            trainer.step
        ));
        return Ok(report);
    }
    let mut log = match &dir {
        Some(d) if trainer.step > 0 => Some(MetricsLog::resume_at(
            &d.file("metrics.jsonl"),
            trainer.step,
        )?),
        Some(d) => Some(MetricsLog::create(&d.file("metrics.jsonl"))?),
        None => None,
    };
    let progress = Progress::new(opts.verbose && coll.is_root(), total_steps, trainer.step);
    let mut guard = NonFiniteGuard::new(lc.on_non_finite, lc.max_skipped_steps);
    let (first_step, started) = (trainer.step, Instant::now());
    let (mut amount, mut pace_from) = (0.0f64, (first_step, 0.0f64));
    let mut sync_seconds = 0.0f64;
    while trainer.step < total_steps {
        if opts
            .stop_after
            .is_some_and(|n| trainer.step - first_step >= n)
        {
            break;
        }
        if coll.any(interrupt::stop_requested())? {
            return Err(save_on_interrupt(task, trainer, dir.as_ref(), best));
        }
        let batches = task.batches(trainer.step, shard)?;
        let terms: f64 = batches.iter().map(|b| task.loss_terms(b)).sum();
        let stats = trainer
            .step_across(coll, terms, batches.len(), |i, ctx| {
                task.loss(&batches[i], ctx)
            })
            .map_err(|e| with_size_hint::<T>(e))?;
        let skipped = match log.as_mut() {
            // Mixed precision: the scaled gradients overflowed f16 and the scale was halved;
            // an expected event, logged, not the non-finite policy's business.
            _ if stats.overflow => {
                if let Some(log) = log.as_mut() {
                    let scale = stats.loss_scale.unwrap_or(f32::NAN) as f64;
                    log.write(
                        "overflow",
                        &[("step", trainer.step as f64), ("loss_scale", scale)],
                    )?;
                }
                true
            }
            Some(log) => guard.after_step(trainer.step, &stats, log)?,
            None => guard.check(trainer.step, stats.loss, stats.grad_norm)?,
        };
        if !skipped {
            report.losses.push(stats.loss);
        }
        amount += batches.iter().map(|b| task.amount(b)).sum::<f64>();
        sync_seconds += stats.sync_seconds;
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
            let fit_in = steps_within_budget(task.total_steps(), step, paced, secs, minutes * 60.0);
            // The first process's clock decides, so every process stops at the same step.
            total_steps = root_value(coll, fit_in)?;
            trainer.schedule.total_steps = total_steps;
        }
        let logged = step.is_multiple_of(lc.log_interval.max(1)) || step == total_steps;
        let mut rate = [amount / secs.max(1e-9)];
        if logged {
            coll.sum(&mut rate)?;
        }
        if let Some(log) = log.as_mut().filter(|_| logged) {
            let mut record = vec![
                ("step", step as f64),
                ("loss", stats.loss as f64),
                ("lr", stats.lr),
                (T::RATE, rate[0]),
            ];
            if let Some(scale) = stats.loss_scale {
                record.push(("loss_scale", scale as f64));
            }
            if shard.size > 1 {
                // Share of this invocation's time the first process spent summing gradients.
                record.push(("sync_fraction", sync_seconds / secs.max(1e-9)));
            }
            log.write("train", &record)?;
        }
        let msg = format!(
            "loss {:.3}, lr {:.2e}, {:.3} {}",
            stats.loss,
            stats.lr,
            rate[0],
            T::RATE
        );
        progress.step(step, total_steps, logged, msg);
        if step.is_multiple_of(lc.eval_interval.max(1)) || step == total_steps {
            let mut sums = task.validation_sums(shard)?;
            coll.sum(&mut sums)?;
            let eval = task.evaluation(step, &sums, coll.is_root())?;
            trainer.schedule.observe_validation(eval.score);
            let improved = eval.score < best;
            best = best.min(eval.score);
            if let (Some(dir), Some(log)) = (&dir, log.as_mut()) {
                let mut record = vec![("step", step as f64)];
                record.extend(&eval.metrics);
                log.write("eval", &record)?;
                progress.say(format!("step {step}: {}", eval.report));
                if improved {
                    save(task, trainer, dir, "best", best, &eval.best_files)?;
                }
                save(task, trainer, dir, &format!("step-{step:07}"), best, &[])?;
                checkpoint::prune(&dir.checkpoints, "step-", 2)?;
            }
            report.last_eval = eval.metrics;
        }
    }
    progress.finish();
    if shard.size > 1 {
        check_replicas(task, coll, &progress)?;
    }
    report.train_seconds = started.elapsed().as_secs_f64();
    report.rate = amount / report.train_seconds.max(1e-9);
    report.steps = trainer.step;
    report.best_score = best;
    let stopped_early = opts
        .stop_after
        .is_some_and(|n| trainer.step - first_step >= n);
    let (Some(dir), Some(log), false) = (&dir, log.as_mut(), stopped_early) else {
        return Ok(report);
    };
    let best_dir = dir.checkpoints.join("best");
    report.test = task.test(best_dir.is_dir().then_some(best_dir.as_path()))?;
    let mut record = vec![("step", trainer.step as f64)];
    record.extend(&report.test);
    log.write("test", &record)?;
    write_plot(&dir.root, T::NAME, T::PLOT_METRIC)?;
    Ok(report)
}

/// Data-parallel processes must end with bit-identical weights: compare a checksum of every
/// process's parameters with the first one's, say it, and fail loudly if they differ.
fn check_replicas<T: Task>(task: &T, coll: &dyn Collective, progress: &Progress) -> Result<()> {
    // FNV-1a over the parameters' bits, in their order.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for p in task.params() {
        for v in p.to_vec()? {
            for byte in v.to_bits().to_le_bytes() {
                hash = (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let shard = coll.shard();
    eprintln!(
        "process {}/{}: weights checksum {hash:016x}",
        shard.rank + 1,
        shard.size
    );
    let mut root = hash.to_le_bytes().to_vec();
    coll.broadcast_bytes(&mut root)?;
    let differs = coll.any(root != hash.to_le_bytes())?;
    if differs {
        return Err(Error::format(
            "distributed training",
            "the processes' weights differ at the end of training (see the checksums above)",
        ));
    }
    progress.say(format!("weights identical on all {} processes", shard.size));
    Ok(())
}

/// The first process's `value`, on every process.
fn root_value(coll: &dyn Collective, value: usize) -> Result<usize> {
    let mut v = [if coll.is_root() { value as f64 } else { 0.0 }];
    coll.sum(&mut v)?;
    Ok(v[0] as usize)
}

/// The first process's start: tidy the checkpoints a crash left, copy the task's files into
/// the run directory, resume when asked. Returns the best score so far.
fn prepare<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    dir: &RunDir,
    opts: &RunOptions,
    progress: &Progress,
) -> Result<f64> {
    for line in checkpoint::recover(&dir.checkpoints)? {
        progress.say(format!("checkpoints: {line}"));
    }
    for (name, bytes) in task.checkpoint_files() {
        dir.write(name, bytes)?;
    }
    if !opts.resume {
        return Ok(f64::MAX);
    }
    resume(task, trainer, dir, progress)
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
    let read = |file: &str| checkpoint::read(&ckpt, file).map(|bytes| (ckpt.join(file), bytes));
    let state = [read(PARAMS_FILE)?, read(OPTIMIZER_FILE)?, read(STATE_FILE)?];
    let best = restore(task, trainer, &state)?;
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
        trainer.step
    ));
    Ok(best)
}

const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";

/// Where training is, as the bytes of a checkpoint's three state files: parameters,
/// optimizer state, `state.json`.
fn snapshot<T: Task>(task: &T, trainer: &Trainer, best: f64) -> Result<[Vec<u8>; 3]> {
    let state = TrainState {
        step: trainer.step,
        best_score: finite(best),
        optimizer_steps: trainer.optimizer.steps().to_vec(),
        plateau: {
            let (scale, best_val, bad) = trainer.schedule.plateau_state();
            (scale, finite(best_val), bad)
        },
        data: task.data_state(),
        loss_scale: trainer.loss_scale.clone(),
    };
    Ok([
        named_bytes(&task.saved_tensors())?,
        checkpoint::tensors_to_bytes(&trainer.optimizer.state())?,
        serde_json::to_vec_pretty(&state).map_err(|e| Error::format(STATE_FILE, e))?,
    ])
}

/// Put `task` and `trainer` where a snapshot says (each part named by the file it came from,
/// for errors); returns the best score so far.
fn restore<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    files: &[(PathBuf, Vec<u8>); 3],
) -> Result<f64> {
    let [(params_path, params), (opt_path, opt), (state_path, state)] = files;
    let state: TrainState =
        serde_json::from_slice(state).map_err(|e| Error::format(state_path, e))?;
    checkpoint::load_params(params_path, params, &task.saved_tensors())?;
    trainer
        .optimizer
        .restore(opt_path, opt, &state.optimizer_steps)?;
    trainer.schedule.set_plateau_state(state.plateau);
    trainer.step = state.step;
    // A run continued in mixed precision goes on with the scale it had reached.
    if let (Some(scale), Some(_)) = (state.loss_scale, trainer.loss_scale.as_ref()) {
        trainer.loss_scale = Some(scale);
    }
    task.restore_data_state(&state.data)?;
    Ok(state.best_score)
}

/// Every process takes the first one's weights, optimizer state and position (a fresh run's
/// initial weights, or what it resumed from), so all start identical.
fn share_state<T: Task>(
    task: &mut T,
    trainer: &mut Trainer,
    coll: &dyn Collective,
    best: f64,
) -> Result<f64> {
    let mut parts = match coll.is_root() {
        true => snapshot(task, trainer, best)?,
        false => Default::default(),
    };
    for bytes in parts.iter_mut() {
        coll.broadcast_bytes(bytes)?;
    }
    if coll.is_root() {
        return Ok(best);
    }
    let [params, opt, state] = parts;
    let from = |file: &str| PathBuf::from(format!("<{file} of the first process>"));
    restore(
        task,
        trainer,
        &[
            (from(PARAMS_FILE), params),
            (from(OPTIMIZER_FILE), opt),
            (from(STATE_FILE), state),
        ],
    )
}

/// Save checkpoint `name`: the snapshot and the task's files (`replace` overriding some).
fn save<T: Task>(
    task: &T,
    trainer: &Trainer,
    dir: &RunDir,
    name: &str,
    best: f64,
    replace: &[(String, Vec<u8>)],
) -> Result<PathBuf> {
    let [params, opt, state] = snapshot(task, trainer, best)?;
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (PARAMS_FILE, params),
        (OPTIMIZER_FILE, opt),
        (STATE_FILE, state),
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
    checkpoint::tensors_to_bytes(&checkpoint::named_params(params))
}

/// Ctrl-C or SIGTERM (on any process): the first process saves the current step (unless an
/// evaluation just did) and every process stops.
fn save_on_interrupt<T: Task>(
    task: &T,
    trainer: &Trainer,
    dir: Option<&RunDir>,
    best: f64,
) -> Error {
    let step = trainer.step;
    let name = format!("step-{step:07}");
    let Some(dir) = dir else {
        return Error::Interrupted {
            step,
            checkpoint: PathBuf::from(format!("{name} (saved by the first process)")),
        };
    };
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
