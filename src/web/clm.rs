//! The causal LM in a page: a char-level model trained on text the page hands over, one
//! awaited step at a time, sampled from, and saved as the same `model.safetensors` (PyTorch
//! names and layouts) that `train_clm` writes.

use super::js_error;
use crate::checkpoint;
use crate::config::Config;
use crate::data::prepare_text;
use crate::error::{Error, Result};
use crate::inference::clm::sample_text_async;
use crate::nn::Module;
use crate::train::clm::ClmTraining;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// A training run held by the page. A call made while another is still awaiting the GPU is
/// refused rather than interleaved: the session stays borrowed across each call's awaits.
#[wasm_bindgen]
pub struct ClmTrainer {
    session: Rc<RefCell<Session>>,
    adapter: String,
    tokens_per_step: usize,
    total_steps: usize,
}

struct Session {
    config: Config,
    training: ClmTraining,
}

impl Session {
    async fn open(text: &str, config_yaml: &str) -> Result<Session> {
        let config = Config::from_yaml_str(config_yaml, "the page's config")?;
        let gpu = super::device().await?;
        let training = ClmTraining::new(&gpu, &config, text)?;
        Ok(Session { config, training })
    }
}

impl ClmTrainer {
    /// Run `work` on the session, as a Promise of its result.
    fn run<F, T>(&self, work: impl FnOnce(Rc<RefCell<Session>>) -> F + 'static) -> js_sys::Promise
    where
        F: std::future::Future<Output = Result<T>> + 'static,
        T: Into<JsValue>,
    {
        let session = Rc::clone(&self.session);
        future_to_promise(async move {
            if session.try_borrow_mut().is_err() {
                return Err(js_error(Error::Gpu(
                    "ClmTrainer: the previous call has not finished; await it first".into(),
                )));
            }
            work(session).await.map(Into::into).map_err(js_error)
        })
    }
}

#[wasm_bindgen]
impl ClmTrainer {
    /// Open WebGPU and build the tokenizer, model and optimizer a CLM config (the YAML of
    /// `configs/clm-small.yaml`) describes, on `text` (its train part, as `train_clm` splits it).
    pub async fn create(
        text: String,
        config_yaml: String,
    ) -> std::result::Result<ClmTrainer, JsValue> {
        let s = Session::open(&text, &config_yaml).await.map_err(js_error)?;
        let t = &s.config.train;
        Ok(ClmTrainer {
            adapter: s.training.model.token_embedding.weight.gpu().adapter_name(),
            tokens_per_step: t.batch_size * t.seq_len,
            total_steps: s.config.total_steps(s.training.train.batches_per_epoch()),
            session: Rc::new(RefCell::new(s)),
        })
    }

    /// The adapter WebGPU gave the page.
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Tokens one step trains on (batch size x sequence length).
    pub fn tokens_per_step(&self) -> usize {
        self.tokens_per_step
    }

    /// Steps the config's schedule runs (`train.max_steps` or its epochs).
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// One optimizer step on the next batch: a Promise of its loss (mean token cross-entropy).
    /// A non-finite loss rejects it, naming the step.
    // The borrow held across the awaits is what refuses an overlapping call.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn step(&self) -> js_sys::Promise {
        self.run(|session| async move {
            let mut s = session.borrow_mut();
            let step = s.training.trainer.step;
            let stats = s.training.step_async().await?;
            if stats.skipped || !stats.loss.is_finite() {
                return Err(Error::Gpu(format!(
                    "step {step}: the loss or the gradient norm is not finite (loss {})",
                    stats.loss
                )));
            }
            Ok(stats.loss)
        })
    }

    /// A Promise of `n` sampled characters after `prompt` (temperature 0.8, top-k 20), as
    /// `train_clm` prints at each evaluation.
    // The borrow held across the awaits is what refuses an overlapping call.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn sample(&self, prompt: String, n: usize, seed: u64) -> js_sys::Promise {
        self.run(move |session| async move {
            let s = session.borrow();
            let prompt = prepare_text(&s.config.tokenizer, &prompt);
            let t = &s.training;
            sample_text_async(&t.model, &t.tokenizer, &prompt, n, seed).await
        })
    }

    /// A Promise of the model's `model.safetensors` bytes (a Uint8Array).
    // The borrow held across the awaits is what refuses an overlapping call.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn checkpoint(&self) -> js_sys::Promise {
        self.run(|session| async move {
            let s = session.borrow();
            let params = s.training.model.params();
            let bytes =
                checkpoint::tensors_to_bytes_async(&checkpoint::named_params(&params)).await?;
            Ok(js_sys::Uint8Array::from(&bytes[..]))
        })
    }

    /// `tokenizer.json` of the run, as the native checkpoint holds it (a Promise: it waits
    /// for a running step).
    pub fn tokenizer_json(&self) -> js_sys::Promise {
        self.run(|session| async move {
            let bytes = session.borrow().training.tokenizer.to_json_bytes()?;
            String::from_utf8(bytes).map_err(|e| Error::Gpu(e.to_string()))
        })
    }

    /// `config.yaml` of the run (a Promise, like `tokenizer_json`).
    pub fn config_yaml(&self) -> js_sys::Promise {
        self.run(|session| async move { session.borrow().config.to_yaml() })
    }
}
