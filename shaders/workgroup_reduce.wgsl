// Workgroup-wide reductions shared by the one-row-per-workgroup kernels (layer_norm.wgsl,
// softmax.wgsl, cross_entropy.wgsl, ctc.wgsl, grad_norm.wgsl): their kernels compile this file
// before their own (`Kernel::new`, src/gpu/kernel.rs). A tree reduction in workgroup memory: log2(WG) barrier steps, so WG
// must be a power of two. Every invocation of the workgroup must call these (they contain
// barriers) and every invocation gets the result.

var<workgroup> scratch: array<vec2<f32>, WG>;

// Sum of `v` over the workgroup, two sums at once.
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    scratch[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    // Everyone has read the result before a later reduction overwrites scratch.
    workgroupBarrier();
    return total;
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
    return workgroup_sum2(lid, vec2(v, 0.0)).x;
}

// Max of `v` over the workgroup.
fn workgroup_max(lid: u32, v: f32) -> f32 {
    scratch[lid].x = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            scratch[lid].x = max(scratch[lid].x, scratch[lid + stride].x);
        }
        workgroupBarrier();
    }
    let total = scratch[0].x;
    workgroupBarrier();
    return total;
}
