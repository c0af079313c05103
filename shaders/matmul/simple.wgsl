// The matmul kernels that read A and B where they are (needs common.wgsl): naive, dot4,
// tiled. Any layout, bounds-checked.

// Naive: one output element per invocation, a plain dot product over K. The fallback for
// tiny or skinny shapes, where any tile would mostly compute padding.
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    if (e >= p.batch * p.m * p.n) { return; }
    let at = output_at(e);
    let bi = at.x;
    let i = at.y;
    let j = at.z;
    // Where A[i, 0] and B[0, j] live, and how far one step along K moves in each.
    let ta = p.trans_a != 0u;
    let tb = p.trans_b != 0u;
    let a0 = bi * p.a_stride + select(i * p.k, i, ta);
    let a_step = select(1u, p.m, ta);
    let b0 = bi * p.b_stride + select(j, j * p.k, tb);
    let b_step = select(p.n, 1u, tb);
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc = fma(a[a0 + kk * a_step], b[b0 + kk * b_step], acc);
    }
    c[e] = epilogue(e, j, acc);
}

// Dot4: naive for row-major A against transposed B with K a multiple of 4, so row i of A
// and row j of stored B are both contiguous whole vec4: a quarter of the loads, and each
// lane (one output) streams its own row instead of gathering one float per step.
@compute @workgroup_size(WG)
fn dot4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid, WG);
    if (e >= p.batch * p.m * p.n) { return; }
    let at = output_at(e);
    let bi = at.x;
    let i = at.y;
    let j = at.z;
    let quads = p.k / 4u;
    let a0 = (bi * p.a_stride + i * p.k) / 4u;
    let b0 = (bi * p.b_stride + j * p.k) / 4u;
    var acc = vec4(0.0);
    for (var q = 0u; q < quads; q++) {
        acc = fma(a4[a0 + q], b4[b0 + q], acc);
    }
    c[e] = epilogue(e, j, (acc.x + acc.y) + (acc.z + acc.w));
}

// Tiled: a 16x16 workgroup stages 16x16 tiles of A and B through workgroup memory, one
// output per invocation; each loaded element is used 16 times. The textbook GPU kernel.
var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    // Workgroups: [batch][m / 16][n / 16], linear over a 2-D grid.
    let tiles_n = (p.n + 15u) / 16u;
    let tiles_m = (p.m + 15u) / 16u;
    let t = wid.x + wid.y * nwg.x;
    if (t >= p.batch * tiles_m * tiles_n) { return; }
    let bi = t / (tiles_m * tiles_n);
    let i = (t / tiles_n) % tiles_m * 16u + local.y;
    let j = t % tiles_n * 16u + local.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        tile_a[local.y][local.x] = a_at(bi, i, k0 + local.x);
        tile_b[local.y][local.x] = b_at(bi, k0 + local.y, j);
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            acc = fma(tile_a[local.y][kk], tile_b[kk][local.x], acc);
        }
        workgroupBarrier();
    }
    if (i < p.m && j < p.n) {
        let e = (bi * p.m + i) * p.n + j;
        c[e] = epilogue(e, j, acc);
    }
}
