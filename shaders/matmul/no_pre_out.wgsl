// `keep_pre` for the matmul kernels without a fused activation (see pre_out.wgsl): nothing to
// keep, no binding.

fn keep_pre(e: u32, v: f32) {}
