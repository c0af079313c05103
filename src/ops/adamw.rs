//! The AdamW update (`shaders/adamw.wgsl`): one fused kernel that updates a parameter and its
//! two moment buffers in place (`adamw_update`), and the same for six parameters per dispatch
//! (`adamw_update_group`, what the optimizer calls). Not an op on the tape: it runs outside
//! autograd, on leaves.

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{grid, shader_file, Kernel, ShaderFile, Storage};
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("adamw.wgsl");
const WG: u32 = 256;

/// AdamW hyper-parameters; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Plain Adam: weight decay as an L2 term in the gradient (torch.optim.Adam) instead of
    /// AdamW's decoupled decay of the weights.
    pub coupled_weight_decay: bool,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            coupled_weight_decay: false,
        }
    }
}

/// Parameters one `adamw_group` dispatch updates (`TENSORS` in adamw.wgsl).
const GROUP: usize = 6;
/// Storage buffers `adamw_group` binds: four per tensor and the clipping coefficient.
const GROUP_BINDINGS: usize = 4 * GROUP + 1;

/// `struct Params` of adamw.wgsl, field for field: per-tensor sizes and step scalars (entry 0
/// only for the one-tensor kernel), the shared ones folded on the CPU.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: [u32; 8],
    first_group: [u32; 8],
    step_size: [f32; 8],
    inv_bc2: [f32; 8],
    l2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    /// WGSL rounds the struct up to its 16-byte alignment (the vec4 arrays).
    _pad: [f32; 3],
}

fn kernel() -> Kernel {
    Kernel::new(&[SHADER], "adamw")
        .define("WG", WG)
        .write(1)
        .read(2)
        .write(3)
        .write(4)
        .read(5)
}

fn group_kernel() -> Kernel {
    let mut k = Kernel::new(&[SHADER], "adamw_group")
        .define("WG", WG)
        .write(1)
        .read(2)
        .write(3)
        .write(4)
        .read(5);
    for t in 1..GROUP as u32 {
        let b = 6 + 4 * (t - 1);
        k = k.write(b).read(b + 1).write(b + 2).write(b + 3);
    }
    k
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![kernel(), group_kernel()]
}

/// One parameter's part of an AdamW step: the parameter, its gradient and moments (updated in
/// place) and its 1-based step.
#[derive(Clone, Copy)]
pub struct AdamWSlot<'a> {
    pub param: &'a Tensor,
    pub grad: &'a Tensor,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
    pub step: u32,
}

impl AdamWSlot<'_> {
    fn check(&self, op: &'static str) -> Result<()> {
        if self.step == 0 {
            return Err(Error::shape(op, "step is 1-based; got 0"));
        }
        let param = self.param;
        let n = param.numel();
        for (what, t) in [
            ("param", param),
            ("grad", self.grad),
            ("m", self.m),
            ("v", self.v),
        ] {
            if t.dtype() != DType::F32 || t.numel() != n {
                return Err(Error::shape(
                    op,
                    format!("{what} must be f32 with {n} values like param {param:?}, got {t:?}"),
                ));
            }
        }
        Ok(())
    }

    fn buffers(&self) -> [&Storage; 4] {
        [
            self.param.storage(),
            self.grad.storage(),
            self.m.storage(),
            self.v.storage(),
        ]
    }
}

/// A buffer bound writable may not be bound a second time in the same dispatch.
fn check_distinct(op: &'static str, bufs: &[&Storage]) -> Result<()> {
    for (i, a) in bufs.iter().enumerate() {
        if bufs[i + 1..].iter().any(|b| std::ptr::eq(*a, *b)) {
            return Err(Error::shape(
                op,
                "every param, grad, m and v must be a distinct buffer",
            ));
        }
    }
    Ok(())
}

/// The scalars every tensor of a step shares, from `h`.
fn shared(h: &AdamWParams) -> Params {
    let lr = f64::from(h.lr);
    let (decay, l2) = if h.coupled_weight_decay {
        (1.0, h.weight_decay)
    } else {
        (1.0 - lr * f64::from(h.weight_decay), 0.0)
    };
    Params {
        l2,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        decay: decay as f32,
        ..Params::default()
    }
}

/// Step-dependent factors of entry `t` in f64 on the CPU (beta^t underflows gracefully there).
fn set_step(params: &mut Params, t: usize, h: &AdamWParams, step: u32) {
    let s = f64::from(step);
    let bc1 = 1.0 - f64::from(h.beta1).powf(s);
    let bc2 = 1.0 - f64::from(h.beta2).powf(s);
    params.step_size[t] = (f64::from(h.lr) / bc1) as f32;
    params.inv_bc2[t] = (1.0 / bc2.sqrt()) as f32;
}

/// `clip` (a [norm, coefficient, loss] tensor of `ops::grad_norm_and_clip`) checked, or for
/// `None` a coefficient of 1 made here.
fn clip_or_ones<'a>(
    op: &'static str,
    gpu: &crate::gpu::Gpu,
    clip: Option<&'a Tensor>,
    ones: &'a mut Option<Tensor>,
) -> Result<&'a Tensor> {
    match clip {
        Some(c) if c.numel() >= 2 && c.dtype() == DType::F32 => Ok(c),
        Some(c) => Err(Error::shape(
            op,
            format!("clip must be the f32 [norm, coefficient, loss] tensor of grad_norm_and_clip, got {c:?}"),
        )),
        None => Ok(ones.insert(Tensor::ones(gpu, &[2])?)),
    }
}

/// One AdamW step (1-based `step`) of `param` with gradient `grad`, updating `param`, `m` and
/// `v` in place on the GPU. Nothing is read back. `clip`, the [norm, coefficient, loss] tensor
/// from `ops::grad_norm_and_clip`, scales the gradient first (a coefficient of 0 skips the
/// step); `None` means no clipping.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    h: &AdamWParams,
    step: u32,
    clip: Option<&Tensor>,
) -> Result<()> {
    let slot = AdamWSlot {
        param,
        grad,
        m,
        v,
        step,
    };
    adamw_update_one("adamw_update", &slot, h, clip)
}

fn adamw_update_one(
    op: &'static str,
    slot: &AdamWSlot,
    h: &AdamWParams,
    clip: Option<&Tensor>,
) -> Result<()> {
    slot.check(op)?;
    check_distinct(op, &slot.buffers())?;
    let gpu = slot.param.gpu();
    let mut ones = None;
    let clip = clip_or_ones(op, gpu, clip, &mut ones)?;
    let n = slot.param.numel();
    let mut params = shared(h);
    params.n[0] = n as u32;
    set_step(&mut params, 0, h, slot.step);
    let mut bufs = slot.buffers().to_vec();
    bufs.push(clip.storage());
    gpu.dispatch(&kernel(), &params, &bufs, groups_for(n, WG))
}

/// `adamw_update` of every slot: six parameters per dispatch (`adamw_group`) where the
/// adapter binds the 25 storage buffers that takes and the policy groups updates
/// (`Gpu::groups_optimizer_updates`: GPUs), the rest one per dispatch. The same arithmetic
/// either way, so the same bits.
pub fn adamw_update_group(
    slots: &[AdamWSlot],
    h: &AdamWParams,
    clip: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "adamw_update_group";
    let Some(first) = slots.first() else {
        return Ok(());
    };
    for s in slots {
        s.check(OP)?;
    }
    let gpu = first.param.gpu();
    let mut ones = None;
    let clip = clip_or_ones(OP, gpu, clip, &mut ones)?;
    let grouped =
        match gpu.max_storage_buffers() >= GROUP_BINDINGS && gpu.groups_optimizer_updates() {
            true => slots.len() / GROUP * GROUP,
            false => 0,
        };
    for group in slots[..grouped].chunks(GROUP) {
        let mut params = shared(h);
        let mut bufs = Vec::with_capacity(GROUP_BINDINGS);
        let mut groups = 0;
        for (t, s) in group.iter().enumerate() {
            let n = s.param.numel();
            params.n[t] = n as u32;
            params.first_group[t] = groups as u32;
            set_step(&mut params, t, h, s.step);
            groups += n.div_ceil(WG as usize);
            bufs.extend(s.buffers());
            if t == 0 {
                bufs.push(clip.storage());
            }
        }
        params.first_group[GROUP] = groups as u32;
        check_distinct(OP, &bufs)?;
        gpu.dispatch(&group_kernel(), &params, &bufs, grid(groups as u32))?;
    }
    for s in &slots[grouped..] {
        adamw_update_one(OP, s, h, Some(clip))?;
    }
    Ok(())
}
