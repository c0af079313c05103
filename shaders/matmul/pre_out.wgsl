// A fused activation (`ops::linear_act`): compiled, with activation.wgsl (`Val` = f32), into
// the compute kernels of `linear_act` only, which bind storage binding 11. Every other matmul
// kernel takes no_pre_out.wgsl instead: no binding, and none of the activation's code, whose
// inlining into every store of the row-block kernel tripled lavapipe's compile time.
// Called by `epilogue` in common.wgsl.

@group(0) @binding(11) var<storage, read_write> pre_out: array<f32>;

// Output element e with the activation applied; the value before it kept for the backward.
fn activated(e: u32, v: f32) -> f32 {
    pre_out[e] = v;
    return activate(p.activation, v);
}
