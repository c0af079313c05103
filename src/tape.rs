//! The autograd tape. Every op that produces a tensor from inputs that need gradients calls
//! `record(out, inputs, backward)`: `backward` maps the gradient of `out` to one gradient per
//! input (or `None` where an input needs none). The recorded ops form a graph hanging off the
//! loss; `Tensor::backward` walks it in reverse topological order, sums gradients that meet
//! at a tensor used twice, and accumulates the result into the leaves (parameters).
//!
//! The graph links each tensor's `Autograd` part, not its values: what a backward needs it
//! keeps itself (the closure captures it), so an activation no backward reads is freed as soon
//! as the forward is done with it, as in PyTorch's saved tensors.
//!
//! Inside `no_grad()` nothing is recorded, so inference holds no activations for a backward.

use crate::error::{Error, Result};
use crate::tensor::{Autograd, Tensor};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

type BackwardFn = Box<dyn FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send>;

pub(crate) struct GradFn {
    pub(crate) inputs: Vec<Arc<Autograd>>,
    pub(crate) backward: BackwardFn,
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
    if !is_recording() || !inputs.iter().any(|t| t.is_requires_grad()) {
        return out;
    }
    *out.0
        .autograd
        .grad_fn
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(GradFn {
        inputs: inputs.iter().map(|t| Arc::clone(&t.0.autograd)).collect(),
        backward: Box::new(backward),
    });
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
                    let input_grads = (f.backward)(&g)?;
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
