// `activated` for the matmul kernels without a fused activation (see pre_out.wgsl): never
// called (`p.activation` is 0), no binding.

fn activated(e: u32, v: f32) -> f32 {
    return v;
}
