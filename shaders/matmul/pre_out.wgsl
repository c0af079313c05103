// The values before a fused activation, kept for its backward: compiled into the compute
// kernels of `ops::linear_act` (with storage binding 11); every other matmul kernel takes
// no_pre_out.wgsl instead, so it binds nothing there. Called by `epilogue` in common.wgsl.

@group(0) @binding(11) var<storage, read_write> pre_out: array<f32>;

fn keep_pre(e: u32, v: f32) {
    pre_out[e] = v;
}
