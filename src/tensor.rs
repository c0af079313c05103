//! `Tensor`: a shape and a GPU buffer, plus (from `tape.rs`) how to send a gradient back
//! through the op that made it. The arithmetic is in `ops/`, but `tensor`, `tape` and `ops`
//! are one autograd core that call each other: `Tensor::full` fills through `ops::fill`, and
//! `reshape` (a view) records its own backward on the tape.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Storage};
use crate::tape::GradFn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Element type. Everything trainable is f32; token ids and targets are u32; F16 holds IEEE
/// halves two per 4-byte word (`ops::to_half`), which mixed precision keeps for backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    F16,
}

impl DType {
    /// 4-byte words that hold `numel` values of this type.
    pub fn words(self, numel: usize) -> usize {
        match self {
            DType::F32 | DType::U32 => numel,
            DType::F16 => numel.div_ceil(2),
        }
    }
}

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

pub(crate) struct Node {
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) storage: Arc<Storage>,
    pub(crate) name: Option<String>,
    pub(crate) autograd: Arc<Autograd>,
}

/// A tensor's place in the autograd graph, apart from its values: the tape links these, not
/// tensors, so an activation's buffer goes back to the pool as soon as neither the model nor
/// a backward closure (which keeps what it saved for the backward) holds the tensor.
pub(crate) struct Autograd {
    pub(crate) id: u64,
    pub(crate) requires_grad: bool,
    /// How to back-propagate into the inputs; taken (freed) by `backward`.
    pub(crate) grad_fn: Mutex<Option<GradFn>>,
    /// The accumulated gradient of a leaf that requires one.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

impl Autograd {
    fn new(requires_grad: bool) -> Arc<Autograd> {
        Arc::new(Autograd {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requires_grad,
            grad_fn: Mutex::new(None),
            grad: Mutex::new(None),
        })
    }

    pub(crate) fn grad_fn_present(&self) -> bool {
        self.grad_fn.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    pub(crate) fn is_requires_grad(&self) -> bool {
        self.requires_grad || self.grad_fn_present()
    }

    pub(crate) fn grad(&self) -> Option<Tensor> {
        self.grad.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        *self.grad.lock().unwrap_or_else(|p| p.into_inner()) = g;
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    pub(crate) fn from_storage(storage: Arc<Storage>, shape: Vec<usize>, dtype: DType) -> Tensor {
        debug_assert_eq!(storage.len(), dtype.words(numel(&shape)));
        Tensor(Arc::new(Node {
            shape,
            dtype,
            storage,
            name: None,
            autograd: Autograd::new(false),
        }))
    }

    /// A new f32 tensor that ops write into.
    pub(crate) fn empty(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Tensor::empty_of(gpu, shape, DType::F32)
    }

    /// A new tensor of `dtype` that ops write into.
    pub(crate) fn empty_of(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let storage = gpu.alloc(dtype.words(numel(shape)))?;
        Ok(Tensor::from_storage(
            Arc::new(storage),
            shape.to_vec(),
            dtype,
        ))
    }

    fn check_len(what: &'static str, len: usize, shape: &[usize]) -> Result<()> {
        if len != numel(shape) {
            return Err(Error::shape(
                what,
                format!(
                    "{len} values do not fill shape {shape:?} ({} values)",
                    numel(shape)
                ),
            ));
        }
        Ok(())
    }

    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Self::check_len("Tensor::from_slice", data.len(), shape)?;
        let storage = gpu.upload(data)?;
        Ok(Tensor::from_storage(
            Arc::new(storage),
            shape.to_vec(),
            DType::F32,
        ))
    }

    /// Token ids, targets, lengths.
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        Self::check_len("Tensor::from_u32", data.len(), shape)?;
        let storage = gpu.upload(data)?;
        Ok(Tensor::from_storage(
            Arc::new(storage),
            shape.to_vec(),
            DType::U32,
        ))
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Self::full(gpu, shape, 0.0)
    }

    pub fn ones(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        Self::full(gpu, shape, 1.0)
    }

    /// Filled on the GPU by a kernel: nothing is uploaded.
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape)?;
        crate::ops::fill(&t, value)?;
        Ok(t)
    }

    /// Normal(0, std^2) values from a seeded generator (same values on every adapter).
    pub fn randn(gpu: &Gpu, shape: &[usize], std: f32, seed: u64) -> Result<Tensor> {
        let data = crate::rng::normal_vec(numel(shape), std, seed);
        Self::from_slice(gpu, &data, shape)
    }

    /// Uniform values in [lo, hi) from a seeded generator.
    pub fn rand_uniform(gpu: &Gpu, shape: &[usize], lo: f32, hi: f32, seed: u64) -> Result<Tensor> {
        let data = crate::rng::uniform_vec(numel(shape), lo, hi, seed);
        Self::from_slice(gpu, &data, shape)
    }

    /// Mark as a trainable leaf with a name (used by optimizers and checkpoints).
    /// This tensor under a name but without a gradient: a constant a checkpoint stores beside
    /// the parameters (a fixed position table).
    pub fn into_named_constant(self, name: impl Into<String>) -> Tensor {
        Tensor(Arc::new(Node {
            shape: self.0.shape.clone(),
            dtype: self.0.dtype,
            storage: self.0.storage.clone(),
            name: Some(name.into()),
            autograd: Autograd::new(false),
        }))
    }

    pub fn into_param(self, name: impl Into<String>) -> Tensor {
        Tensor(Arc::new(Node {
            shape: self.0.shape.clone(),
            dtype: self.0.dtype,
            storage: self.0.storage.clone(),
            name: Some(name.into()),
            autograd: Autograd::new(true),
        }))
    }

    /// A leaf that wants a gradient but has no name (tests, inputs).
    pub fn requires_grad(self) -> Tensor {
        self.into_param("")
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn dims(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    pub fn id(&self) -> u64 {
        self.0.autograd.id
    }
    pub fn gpu(&self) -> &Gpu {
        self.0.storage.gpu()
    }
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }
    pub fn is_requires_grad(&self) -> bool {
        self.0.autograd.is_requires_grad()
    }

    /// Copy to the CPU (flushes pending GPU work).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        if self.0.dtype != DType::F32 {
            return Err(Error::shape(
                "Tensor::to_vec",
                format!(
                    "tensor holds {:?}; f32 only (u32: to_vec_u32)",
                    self.0.dtype
                ),
            ));
        }
        self.gpu().read(&self.0.storage)
    }

    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.gpu().read(&self.0.storage)
    }

    /// `to_vec` as a future (a browser page awaits it; natively it is ready at once).
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        if self.0.dtype != DType::F32 {
            return Err(Error::shape(
                "Tensor::to_vec_async",
                format!(
                    "tensor holds {:?}; f32 only (u32: to_vec_u32_async)",
                    self.0.dtype
                ),
            ));
        }
        self.gpu().read_async(&self.0.storage).await
    }

    pub async fn to_vec_u32_async(&self) -> Result<Vec<u32>> {
        self.gpu().read_async(&self.0.storage).await
    }

    /// Overwrite the values in place (loading a checkpoint). Lengths must match.
    pub fn copy_from_slice(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() || self.dtype() != DType::F32 {
            return Err(Error::shape(
                "copy_from_slice",
                format!("{} values into {self:?}", data.len()),
            ));
        }
        self.gpu().write(&self.0.storage, data)
    }

    /// The single value of a one-element tensor (a loss).
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "Tensor::to_scalar",
                format!("shape {:?} is not one value", self.shape()),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// `to_scalar` as a future.
    pub async fn to_scalar_async(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "Tensor::to_scalar_async",
                format!("shape {:?} is not one value", self.shape()),
            ));
        }
        Ok(self.to_vec_async().await?[0])
    }

    /// The same storage under another shape (no copy). One dimension may be `usize::MAX`
    /// meaning "whatever is left". Gradients flow through it.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let known: usize = shape.iter().filter(|&&d| d != usize::MAX).product();
        let holes = shape.iter().filter(|&&d| d == usize::MAX).count();
        let mut shape = shape.to_vec();
        if holes == 1 && known > 0 && self.numel().is_multiple_of(known) {
            let fill = self.numel() / known;
            shape
                .iter_mut()
                .filter(|d| **d == usize::MAX)
                .for_each(|d| *d = fill);
        }
        if holes > 1 || numel(&shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{:?} cannot become {:?}", self.shape(), shape),
            ));
        }
        let out = Tensor::from_storage(self.0.storage.clone(), shape, self.0.dtype);
        let in_shape = self.shape().to_vec();
        Ok(crate::tape::record(out, &[self], move |g| {
            Ok(vec![Some(g.reshape(&in_shape)?)])
        }))
    }

    /// The gradient accumulated into this leaf by `backward`.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.autograd.grad()
    }

    pub fn zero_grad(&self) {
        self.0.autograd.set_grad(None);
    }

    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        self.0.autograd.set_grad(g);
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor#{}{:?}{:?}",
            self.0.autograd.id, self.0.shape, self.0.dtype
        )?;
        if let Some(n) = &self.0.name {
            write!(f, " {n:?}")?;
        }
        Ok(())
    }
}
