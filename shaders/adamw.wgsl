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
//
// `adamw_group` updates TENSORS parameters in one dispatch (where the adapter allows the 25
// storage buffers it binds; WebGPU promises 8): workgroups are numbered through the tensors in
// order, tensor t's being first_group[t] .. first_group[t + 1], and each tensor has its own
// step scalars (a parameter that missed a step has its own bias correction). `adamw` is the
// same update for one tensor, entry 0 of the arrays.

const TENSORS: u32 = 6u;

struct Params {
    // Per tensor (entry 0 only for `adamw`).
    n: array<vec4<u32>, 2>,
    first_group: array<vec4<u32>, 2>, // adamw_group: entry TENSORS is the dispatch's workgroups
    step_size: array<vec4<f32>, 2>,
    inv_bc2: array<vec4<f32>, 2>,
    // Shared by every tensor.
    l2: f32,      // Adam (not AdamW): L2 penalty added to the gradient; 0 for AdamW
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>; // [norm, coefficient, ...]
// adamw_group's tensors 1 .. 5 (tensor 0 is bound above).
@group(0) @binding(6) var<storage, read_write> param1: array<f32>;
@group(0) @binding(7) var<storage, read> grad1: array<f32>;
@group(0) @binding(8) var<storage, read_write> m1: array<f32>;
@group(0) @binding(9) var<storage, read_write> v1: array<f32>;
@group(0) @binding(10) var<storage, read_write> param2: array<f32>;
@group(0) @binding(11) var<storage, read> grad2: array<f32>;
@group(0) @binding(12) var<storage, read_write> m2: array<f32>;
@group(0) @binding(13) var<storage, read_write> v2: array<f32>;
@group(0) @binding(14) var<storage, read_write> param3: array<f32>;
@group(0) @binding(15) var<storage, read> grad3: array<f32>;
@group(0) @binding(16) var<storage, read_write> m3: array<f32>;
@group(0) @binding(17) var<storage, read_write> v3: array<f32>;
@group(0) @binding(18) var<storage, read_write> param4: array<f32>;
@group(0) @binding(19) var<storage, read> grad4: array<f32>;
@group(0) @binding(20) var<storage, read_write> m4: array<f32>;
@group(0) @binding(21) var<storage, read_write> v4: array<f32>;
@group(0) @binding(22) var<storage, read_write> param5: array<f32>;
@group(0) @binding(23) var<storage, read> grad5: array<f32>;
@group(0) @binding(24) var<storage, read_write> m5: array<f32>;
@group(0) @binding(25) var<storage, read_write> v5: array<f32>;

fn n_of(t: u32) -> u32 {
    return p.n[t / 4u][t % 4u];
}

fn first_group_of(t: u32) -> u32 {
    return p.first_group[t / 4u][t % 4u];
}

// One element's step for tensor t: (new param, new m, new v) from (param, grad, m, v).
fn step(t: u32, x: f32, g_raw: f32, m_old: f32, v_old: f32) -> vec3<f32> {
    let g = g_raw * clip[1] + p.l2 * x;
    let m_new = p.beta1 * m_old + (1.0 - p.beta1) * g;
    let v_new = p.beta2 * v_old + (1.0 - p.beta2) * g * g;
    let step_size = p.step_size[t / 4u][t % 4u];
    let inv_bc2 = p.inv_bc2[t / 4u][t % 4u];
    return vec3(x * p.decay - step_size * m_new / (sqrt(v_new) * inv_bc2 + p.eps), m_new, v_new);
}

@compute @workgroup_size(WG)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    // A zero coefficient marks a step with a non-finite loss or gradient: leave everything as is.
    if (i >= n_of(0u) || clip[1] == 0.0) { return; }
    let r = step(0u, param[i], grad[i], m[i], v[i]);
    param[i] = r.x;
    m[i] = r.y;
    v[i] = r.z;
}

@compute @workgroup_size(WG)
fn adamw_group(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = wid.x + wid.y * nwg.x;
    if (w >= first_group_of(TENSORS) || clip[1] == 0.0) { return; }
    var t = 0u;
    while (t + 1u < TENSORS && w >= first_group_of(t + 1u)) {
        t += 1u;
    }
    let i = (w - first_group_of(t)) * WG + lid;
    if (i >= n_of(t)) { return; }
    // WGSL cannot index bindings, hence one case per tensor.
    switch t {
        case 0u: {
            let r = step(t, param[i], grad[i], m[i], v[i]);
            param[i] = r.x; m[i] = r.y; v[i] = r.z;
        }
        case 1u: {
            let r = step(t, param1[i], grad1[i], m1[i], v1[i]);
            param1[i] = r.x; m1[i] = r.y; v1[i] = r.z;
        }
        case 2u: {
            let r = step(t, param2[i], grad2[i], m2[i], v2[i]);
            param2[i] = r.x; m2[i] = r.y; v2[i] = r.z;
        }
        case 3u: {
            let r = step(t, param3[i], grad3[i], m3[i], v3[i]);
            param3[i] = r.x; m3[i] = r.y; v3[i] = r.z;
        }
        case 4u: {
            let r = step(t, param4[i], grad4[i], m4[i], v4[i]);
            param4[i] = r.x; m4[i] = r.y; v4[i] = r.z;
        }
        default: {
            let r = step(t, param5[i], grad5[i], m5[i], v5[i]);
            param5[i] = r.x; m5[i] = r.y; v5[i] = r.z;
        }
    }
}
