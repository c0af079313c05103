//! What a training job is, to the shared loop (`fit`): its model, its batches, its loss, one
//! evaluation, a final test and the files its checkpoints carry. The causal LM (`clm.rs`) and
//! the speech recognizer (`asr.rs`) are the two tasks; everything else (run directory,
//! resume, Ctrl-C, logging, progress, checkpoints) is written once in `fit.rs`.

use super::distributed::Shard;
use crate::error::Result;
use crate::nn::Ctx;
use crate::tensor::Tensor;

/// What one evaluation found.
pub struct Evaluation {
    /// Logged as an `eval` record with the step (e.g. `val_loss`, `val_cer`).
    pub metrics: Vec<(&'static str, f64)>,
    /// Lower is better: the evaluation with the lowest score is saved as `best`.
    pub score: f64,
    /// For the console: what a person watching the run wants to read.
    pub report: String,
    /// Files that replace the task's own in the `best` checkpoint (e.g. a config naming the
    /// decoding that won).
    pub best_files: Vec<(String, Vec<u8>)>,
}

pub trait Task {
    type Batch;
    /// "CLM", "ASR": the plot's title and messages.
    const NAME: &'static str;
    /// The name of the training rate logged with each `train` record (`tokens_per_s`, ...).
    const RATE: &'static str;
    /// The `eval` metric plotted beside the training loss.
    const PLOT_METRIC: &'static str;
    /// The config keys that size a step's tensors: what an error at the adapter's buffer
    /// limit tells the user to lower.
    const SIZE_KEYS: &'static str;

    /// The trainable parameters, named (the optimizer's and every checkpoint's).
    fn params(&self) -> Vec<Tensor>;
    /// Every tensor a checkpoint's `model.safetensors` holds, named: the parameters, and any
    /// constant the model's file format stores beside them.
    fn saved_tensors(&self) -> Vec<Tensor> {
        self.params()
    }
    /// Optimizer steps the run takes (the learning-rate schedule's horizon).
    fn total_steps(&self) -> usize;
    /// This process's part (`shard`) of the micro-batches of optimizer step `step` (one
    /// micro-batch unless gradients accumulate). Called for steps in increasing order, starting
    /// wherever a resumed run starts.
    fn batches(&mut self, step: usize, shard: Shard) -> Result<Vec<Self::Batch>>;
    /// The mean training loss of one batch, recorded on the tape ([] tensor, not read back).
    fn loss(&self, batch: &Self::Batch, ctx: &Ctx) -> Result<Tensor>;
    /// How many terms the batch's mean loss averages (its non-padding targets): how much its
    /// loss weighs against other processes' shards.
    fn loss_terms(&self, batch: &Self::Batch) -> f64;
    /// How much training data a batch holds, in the unit of `RATE` (tokens, seconds of audio).
    fn amount(&self, batch: &Self::Batch) -> f64;
    /// Validation, first half: additive statistics (sums and counts) of this process's part
    /// of the validation set, which the loop sums over processes.
    fn validation_sums(&mut self, shard: Shard) -> Result<Vec<f64>>;
    /// Validation, second half: the evaluation from the statistics of the whole set. `report`
    /// says whether this process writes the report (the first process of a run does).
    fn evaluation(&mut self, step: usize, sums: &[f64], report: bool) -> Result<Evaluation>;
    /// The final test, after training; `best` is the best checkpoint's directory, if any.
    fn test(&mut self, best: Option<&std::path::Path>) -> Result<Vec<(&'static str, f64)>>;
    /// Files every checkpoint carries besides the parameters, the optimizer state and the
    /// training state: `config.yaml` (always), tokenizer, feature pipeline...
    fn checkpoint_files(&self) -> &[(String, Vec<u8>)];
    /// Where the task is in its data, saved with each checkpoint (`serde_json::Value::Null`
    /// when the step alone says it).
    fn data_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn restore_data_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}
