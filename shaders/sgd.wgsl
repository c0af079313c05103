// SGD with momentum and (coupled) weight decay, as torch.optim.SGD, one fused pass per
// parameter: one invocation per element, WG per workgroup, 2-D grid of workgroups.
// Launched by `sgd_update` in src/ops/sgd.rs.
//
//   g   = grad * clip[1] + weight_decay * p      (clip[1]: global-norm clipping coefficient)
//   buf = momentum * buf + g                     (buf starts at zero)
//   p   = p - lr * buf

struct Params {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>; // [norm, coefficient, ...]

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    // A zero coefficient marks a step with a non-finite loss or gradient: leave everything as is.
    if (i >= p.n || clip[1] == 0.0) { return; }
    let g = grad[i] * clip[1] + p.weight_decay * param[i];
    let b = p.momentum * buf[i] + g;
    buf[i] = b;
    param[i] = param[i] - p.lr * b;
}
