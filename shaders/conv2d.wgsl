// 2-D convolution as im2col + matmul: the data-movement kernels around the product.
// Launched by src/ops/conv2d.rs, which runs the product itself with ops::matmul.
//
// Layout (row-major): x, dx [B, C_in, H, W]; weight [C_out, C_in, KH, KW], seen as the matrix
// [C_out, K] with K = C_in * KH * KW; out [B, C_out, OH, OW]; N = B * OH * OW output pixels.
//   cols [K, N]:  cols[(ci, kh, kw), (b, oh, ow)] = x[b, ci, oh * sh + kh - ph, ow * sw + kw - pw]
//                 (0 where that falls in the padding). The big dim N is last so that the
//                 product weight [C_out, K] @ cols [K, N] -> y [C_out, N] puts C_out (32..64,
//                 a whole number of matmul row tiles) on M and the many pixels on N.
//   y [C_out, N] = y [C_out, B, OH * OW] -> out [B, C_out, OH * OW] (+ bias[c_out]).
//
// `im2col`:         fills cols; no two invocations write the same element.
// `col2im`:         the backward of im2col: dx[b, ci, h, w] = sum of the cols gradients of the
//                   taps that read it, gathered (no atomics, a fixed order: deterministic).
// `channels_first`: out[b, co, s] = y[co, b, s] + bias[co] (bias skipped when has_bias is 0; a
//                   dummy buffer is bound then).
// All three run on a 2-D grid of WG-wide workgroups (linear index wid.x + wid.y * nwg.x).

struct Params {
    batch: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// im2col
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
// col2im
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read> dcols: array<f32>;
// channels_first
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> y: array<f32>;
@group(0) @binding(7) var<storage, read> bias: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Each invocation owns one row of OW (or W) contiguous outputs: the index arithmetic (integer
// divisions, slow on a CPU adapter) is done once per row, not once per element.

// Row r = (k, b, oh) of cols, k = (ci * KH + kh) * KW + kw.
@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let r = element(wid, nwg, lid);
    if (r >= p.c_in * p.kh * p.kw * p.batch * p.oh) { return; }
    let oh = r % p.oh;
    let b = (r / p.oh) % p.batch;
    let k = r / (p.oh * p.batch);
    let kw = k % p.kw;
    let kh = (k / p.kw) % p.kh;
    let ci = k / (p.kw * p.kh);
    let dst = r * p.ow; // = k * N + (b * OH + oh) * OW
    // Signed: the tap may land in the padding above / left of the image.
    let h = i32(oh * p.sh + kh) - i32(p.ph);
    if (h < 0 || h >= i32(p.h)) {
        for (var ow = 0u; ow < p.ow; ow++) {
            cols[dst + ow] = 0.0;
        }
        return;
    }
    let src = ((b * p.c_in + ci) * p.h + u32(h)) * p.w;
    for (var ow = 0u; ow < p.ow; ow++) {
        let w = i32(ow * p.sw + kw) - i32(p.pw);
        var v = 0.0;
        if (w >= 0 && w < i32(p.w)) {
            v = x[src + u32(w)];
        }
        cols[dst + ow] = v;
    }
}

// Row r = (b, ci, h) of dx. Input pixel (h, w) is read by output pixel (oh, ow) through tap
// (kh, kw) when oh * sh + kh = h + ph and ow * sw + kw = w + pw: the taps kh = (h + ph) % sh,
// + sh, + 2 sh, ... with oh = (h + ph) / sh, - 1, - 2, ... (same along w). Those phases and
// bases advance by counting, so no integer division runs per element. Each dx element is one
// sum over its taps in a fixed order (kh, then kw): no atomics, deterministic.
@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let r = element(wid, nwg, lid);
    if (r >= p.batch * p.c_in * p.h) { return; }
    let h = r % p.h;
    let ci = (r / p.h) % p.c_in;
    let b = r / (p.h * p.c_in);
    let n = p.batch * p.oh * p.ow;
    let first_kh = (h + p.ph) % p.sh;
    let first_oh = i32((h + p.ph) / p.sh);
    var first_kw = p.pw % p.sw;   // for w = 0, then counted up
    var first_ow = i32(p.pw / p.sw);
    for (var w = 0u; w < p.w; w++) {
        var acc = 0.0;
        var oh = first_oh;
        for (var kh = first_kh; kh < p.kh && oh >= 0; kh += p.sh) {
            if (oh < i32(p.oh)) {
                let row = (b * p.oh + u32(oh)) * p.ow;
                var ow = first_ow;
                for (var kw = first_kw; kw < p.kw && ow >= 0; kw += p.sw) {
                    if (ow < i32(p.ow)) {
                        acc += dcols[((ci * p.kh + kh) * p.kw + kw) * n + row + u32(ow)];
                    }
                    ow -= 1;
                }
            }
            oh -= 1;
        }
        dx[r * p.w + w] = acc;
        first_kw += 1u;
        if (first_kw == p.sw) {
            first_kw = 0u;
            first_ow += 1;
        }
    }
}

// Row r = (b, co, oh) of out.
@compute @workgroup_size(WG)
fn channels_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let r = element(wid, nwg, lid);
    if (r >= p.batch * p.c_out * p.oh) { return; }
    let oh = r % p.oh;
    let co = (r / p.oh) % p.c_out;
    let b = r / (p.oh * p.c_out);
    var shift = 0.0;
    if (p.has_bias != 0u) {
        shift = bias[co];
    }
    let src = ((co * p.batch + b) * p.oh + oh) * p.ow;
    let dst = r * p.ow;
    for (var ow = 0u; ow < p.ow; ow++) {
        out[dst + ow] = y[src + ow] + shift;
    }
}
