// One AdamW step (decoupled weight decay, as torch.optim.AdamW), fused into a single pass over
// a parameter: one invocation per element, WG per workgroup, 2-D grid of workgroups (see `grid`
// in src/gpu/kernel.rs). Launched by `adamw_update` in src/ops/adamw.rs.
//
// Layout: param, grad, m, v are flat arrays of the same length n. param, m and v are updated
// in place (each element is read and written by the same invocation, so no races); grad is
// only read. One pass loads 4 and stores 3 values per element instead of the ~10 passes an
// unfused chain of elementwise ops would take.
//
// The step-dependent scalars are computed on the CPU in f64 each step and arrive here as f32:
//   decay     = 1 - lr * weight_decay
//   step_size = lr / (1 - beta1^t)
//   inv_bc2   = 1 / sqrt(1 - beta2^t)
// so the update reads like PyTorch's:
//   p = p * decay
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   p = p - step_size * m / (sqrt(v) * inv_bc2 + eps)
// Plain Adam (`l2` > 0, decay = 1) folds weight decay into the gradient instead: g += l2 * p.
// The gradient is first multiplied by clip[1], the global-norm clipping coefficient that
// `grad_norm_and_clip` (shaders/grad_norm.wgsl) left on the GPU: clipping costs no readback.
// That kernel writes a coefficient of 0 when the loss or the gradient norm is not finite: the
// step is then skipped, and param, m and v keep their last good values.

struct Params {
    n: u32,
    l2: f32,      // Adam (not AdamW): L2 penalty added to the gradient; 0 for AdamW
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    inv_bc2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>; // [norm, coefficient, ...]

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    // A zero coefficient marks a step with a non-finite loss or gradient: leave everything as is.
    if (i >= p.n || clip[1] == 0.0) { return; }
    let g = grad[i] * clip[1] + p.l2 * param[i];
    let m1 = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let v1 = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = m1;
    v[i] = v1;
    param[i] = param[i] * p.decay - p.step_size * m1 / (sqrt(v1) * p.inv_bc2 + p.eps);
}
