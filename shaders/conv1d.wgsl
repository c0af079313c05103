// 1-D convolution over time, channels last, as im2col + a Linear product: the data-movement
// kernels around the product. Launched by src/ops/conv1d.rs, which runs the product (and its
// bias) with ops::linear.
//
// Layout (row-major): x, dx [B, T, C_in]; weight [C_out, C_in, K] (PyTorch's Conv1d layout),
// seen as the matrix [C_out, C_in * K]; out [B, T_out, C_out].
//   cols [B * T_out, C_in * K]:
//     cols[(b, t), ci * K + k] = x[b, t * stride + k - pad, ci]   (0 where that is padding)
//   out = cols @ weight^T + bias (ops::linear), already [B, T_out, C_out].
//
// `im2col`: one invocation per (b, t, k): it copies the C_in channels of one input frame into
//           one tap of one row of cols (or zeros where the tap falls in the padding).
// `col2im`: the backward of im2col, one invocation per input frame (b, t):
//           dx[b, t, ci] = sum over the taps (t_out, k) with t_out * stride + k - pad = t of
//           dcols[(b, t_out), ci * K + k], gathered in a fixed order (no atomics).
// Both run on a 2-D grid of WG-wide workgroups (linear index wid.x + wid.y * nwg.x).

struct Params {
    batch: u32,
    t_in: u32,
    c_in: u32,
    k: u32,
    t_out: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// im2col
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
// col2im
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read> dcols: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let r = element(wid, nwg, lid); // r = (b * T_out + t) * K + k
    if (r >= p.batch * p.t_out * p.k) { return; }
    let k = r % p.k;
    let row = r / p.k;           // b * T_out + t
    let t = row % p.t_out;
    let b = row / p.t_out;
    let width = p.c_in * p.k;    // one row of cols
    let dst = row * width + k;   // cols[row, ci * K + k] = dst + ci * K
    // Signed: the tap may land in the padding before the first frame.
    let t_src = i32(t * p.stride + k) - i32(p.pad);
    if (t_src < 0 || t_src >= i32(p.t_in)) {
        for (var ci = 0u; ci < p.c_in; ci++) {
            cols[dst + ci * p.k] = 0.0;
        }
        return;
    }
    let src = (b * p.t_in + u32(t_src)) * p.c_in;
    for (var ci = 0u; ci < p.c_in; ci++) {
        cols[dst + ci * p.k] = x[src + ci];
    }
}

@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let r = element(wid, nwg, lid); // r = b * T_in + t
    if (r >= p.batch * p.t_in) { return; }
    let t = r % p.t_in;
    let b = r / p.t_in;
    let width = p.c_in * p.k;
    for (var ci = 0u; ci < p.c_in; ci++) {
        var acc = 0.0;
        // Tap k reads frame t for output t_out = (t + pad - k) / stride when that divides.
        for (var k = 0u; k < p.k; k++) {
            let shifted = i32(t + p.pad) - i32(k);
            if (shifted < 0 || u32(shifted) % p.stride != 0u) { continue; }
            let t_out = u32(shifted) / p.stride;
            if (t_out >= p.t_out) { continue; }
            acc += dcols[(b * p.t_out + t_out) * width + ci * p.k + k];
        }
        dx[r * p.c_in + ci] = acc;
    }
}
