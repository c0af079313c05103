//! The autograd tape. Every op that produces a tensor from inputs that need gradients calls
//! `record(out, inputs, backward)`: `backward` maps the gradient of `out` to one gradient per
//! input (or `None` where an input needs none). The recorded ops form a graph hanging off the
//! loss; `Tensor::backward` walks it in reverse topological order, sums gradients that meet
//! at a tensor used twice, and accumulates the result into the leaves (parameters). An op
//! recorded with `record_accumulating` is handed what its inputs have gathered so far and may
//! add it in its own pass (a matmul's epilogue), which spares the tape that add.
//!
//! The graph links each tensor's `Autograd` part, not its values: what a backward needs it
//! keeps itself (the closure captures it), so an activation no backward reads is freed as soon
//! as the forward is done with it, as in PyTorch's saved tensors.
//!
//! Inside `no_grad()` nothing is recorded, so inference holds no activations for a backward.

use crate::error::{Error, Result};
use crate::tensor::{Autograd, DType, Tensor};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send>;
type AccumulatingFn =
    Box<dyn FnOnce(&Tensor, &mut [Option<Tensor>]) -> Result<Vec<Option<Tensor>>> + Send>;

pub(crate) struct GradFn {
    pub(crate) inputs: Vec<Arc<Autograd>>,
    pub(crate) backward: Backward,
}

pub(crate) enum Backward {
    /// Returns one gradient per input; the tape adds it to what the input has gathered.
    Plain(BackwardFn),
    /// Also given what each input has gathered so far: what it takes, it folds into the
    /// gradient it returns (a matmul adds it in its epilogue, sparing the tape an add).
    Accumulating(AccumulatingFn),
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// While this guard lives, ops on this thread record nothing.
pub struct NoGradGuard(());

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

pub fn no_grad() -> NoGradGuard {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    NoGradGuard(())
}

pub fn is_recording() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// Attach `backward` to `out` if any input needs a gradient and recording is on.
pub(crate) fn record(
    out: Tensor,
    inputs: &[&Tensor],
    backward: impl FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
) -> Tensor {
    attach(out, inputs, Backward::Plain(Box::new(backward)))
}

/// `record`, for a backward that can fold the gradients its inputs have gathered so far into
/// its own (`Backward::Accumulating`): `backward(dy, gathered)` takes from `gathered[i]` what
/// it adds to input i's gradient; the tape adds whatever it leaves there.
pub(crate) fn record_accumulating(
    out: Tensor,
    inputs: &[&Tensor],
    backward: impl FnOnce(&Tensor, &mut [Option<Tensor>]) -> Result<Vec<Option<Tensor>>>
        + Send
        + 'static,
) -> Tensor {
    attach(out, inputs, Backward::Accumulating(Box::new(backward)))
}

fn attach(out: Tensor, inputs: &[&Tensor], backward: Backward) -> Tensor {
    if !is_recording() || !inputs.iter().any(|t| t.is_requires_grad()) {
        return out;
    }
    let grad_fn = GradFn {
        inputs: inputs.iter().map(|t| Arc::clone(&t.0.autograd)).collect(),
        backward,
    };
    *out.0
        .autograd
        .grad_fn
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(grad_fn);
    out
}

/// Nodes reachable from `root` through recorded ops, each after all of its inputs.
fn topological_order(root: &Arc<Autograd>) -> Vec<Arc<Autograd>> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative depth-first search: (node, inputs already pushed?)
    let mut stack = vec![(Arc::clone(root), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id) {
            continue;
        }
        let inputs: Vec<Arc<Autograd>> = t
            .grad_fn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f.inputs.clone())
            .unwrap_or_default();
        stack.push((t, true));
        for i in inputs {
            if !seen.contains(&i.id) {
                stack.push((i, false));
            }
        }
    }
    order
}

impl Tensor {
    /// Back-propagate from this one-element tensor (d self / d self = 1).
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("start from a scalar loss, not shape {:?}", self.shape()),
            ));
        }
        let seed = Tensor::ones(self.gpu(), self.shape())?;
        self.backward_with(seed)
    }

    /// Back-propagate a given gradient of this tensor.
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        let _guard = no_grad();
        let order = topological_order(&self.0.autograd);
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        grads.insert(self.id(), grad);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id) else {
                continue;
            };
            let grad_fn = t.grad_fn.lock().unwrap_or_else(|p| p.into_inner()).take();
            match grad_fn {
                Some(f) => {
                    let input_grads = match f.backward {
                        Backward::Plain(backward) => backward(&g)?,
                        Backward::Accumulating(backward) => {
                            let mut gathered: Vec<Option<Tensor>> =
                                f.inputs.iter().map(|i| grads.remove(&i.id)).collect();
                            let own = backward(&g, &mut gathered)?;
                            // What the op did not fold in goes back, to be added below.
                            for (input, left) in f.inputs.iter().zip(gathered) {
                                if let Some(left) = left {
                                    grads.insert(input.id, left);
                                }
                            }
                            own
                        }
                    };
                    for (input, ig) in f.inputs.iter().zip(input_grads) {
                        let Some(ig) = ig else { continue };
                        if !input.is_requires_grad() {
                            continue;
                        }
                        let summed = match grads.remove(&input.id) {
                            Some(prev) => crate::ops::add(&prev, &ig)?,
                            None => ig,
                        };
                        grads.insert(input.id, summed);
                    }
                }
                None if t.requires_grad => {
                    let total = match t.grad() {
                        Some(prev) => crate::ops::add(&prev, &g)?,
                        None => g,
                    };
                    t.set_grad(Some(total));
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// A tensor a backward keeps. In mixed precision (`Gpu::save_half`) an activation is kept as
/// its f16 copy (`ops::to_half`), half the bytes, as PyTorch's autocast keeps the f16
/// activations its matmuls read; the f32 original is then freed as soon as the forward is done
/// with it, and the backward reads the copy back to f32 (`get`). Parameters and inputs (leaves)
/// are kept as they are: they are alive anyway. Backwards that keep the same tensor (the q, k
/// and v projections of one input) share one copy, and one read-back.
#[derive(Clone)]
pub(crate) enum SavedTensor {
    Full(Tensor),
    Half(Arc<HalfCopy>),
}

pub(crate) struct HalfCopy {
    half: Tensor,
    /// The f32 read-back, made by the first backward that asks, freed with the last.
    values: Mutex<Option<Tensor>>,
}

thread_local! {
    /// Half copies made on this thread, by the id of the tensor they copy, while any backward
    /// still holds them: a second backward keeping the same tensor shares the copy.
    static HALF_COPIES: RefCell<HashMap<u64, Weak<HalfCopy>>> = RefCell::new(HashMap::new());
}

impl SavedTensor {
    /// `x`, an input of the op whose backward keeps it.
    pub(crate) fn input(x: &Tensor) -> Result<SavedTensor> {
        let activation = x.0.autograd.grad_fn_present();
        match activation && Self::halves(x) {
            true => Self::half_copy(x),
            false => Ok(SavedTensor::Full(x.clone())),
        }
    }

    /// `x` kept as an input (above) when `needed` and the tape records; None otherwise.
    pub(crate) fn input_if(needed: bool, x: &Tensor) -> Result<Option<SavedTensor>> {
        match needed && is_recording() {
            true => Ok(Some(SavedTensor::input(x)?)),
            false => Ok(None),
        }
    }

    /// `y`, the output of the op whose backward keeps it (before `record` attaches that
    /// backward to it). Kept in full, it is a second node over `y`'s values, not `y`: `y`
    /// owning a closure that owns `y` would be a reference cycle.
    pub(crate) fn output(y: &Tensor) -> Result<SavedTensor> {
        match Self::halves(y) {
            true => Self::half_copy(y),
            false => Ok(SavedTensor::Full(Tensor::from_storage(
                Arc::clone(&y.0.storage),
                y.shape().to_vec(),
                y.dtype(),
            ))),
        }
    }

    /// Whether `t` is kept as f16: mixed precision, an f32 tensor, and a backward to keep it for.
    fn halves(t: &Tensor) -> bool {
        t.dtype() == DType::F32 && is_recording() && t.gpu().save_half()
    }

    fn half_copy(x: &Tensor) -> Result<SavedTensor> {
        let shared = HALF_COPIES.with(|c| c.borrow().get(&x.id()).and_then(Weak::upgrade));
        if let Some(copy) = shared {
            return Ok(SavedTensor::Half(copy));
        }
        let copy = Arc::new(HalfCopy {
            half: crate::ops::to_half(x)?,
            values: Mutex::new(None),
        });
        HALF_COPIES.with(|c| {
            let mut copies = c.borrow_mut();
            if copies.len() >= 1024 {
                copies.retain(|_, w| w.strong_count() > 0);
            }
            copies.insert(x.id(), Arc::downgrade(&copy));
        });
        Ok(SavedTensor::Half(copy))
    }

    /// The kept values in f32 (for a half copy, read back once and shared).
    pub(crate) fn get(&self) -> Result<Tensor> {
        match self {
            SavedTensor::Full(t) => Ok(t.clone()),
            SavedTensor::Half(copy) => {
                let mut values = copy.values.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(read_back) = values.as_ref() {
                    return Ok(read_back.clone());
                }
                let read_back = crate::ops::from_half(&copy.half)?;
                *values = Some(read_back.clone());
                Ok(read_back)
            }
        }
    }
}
