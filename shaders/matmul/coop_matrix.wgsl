// The matmul kernel `coop_matrix` (needs common.wgsl and packed.wgsl, compiled with
// `Packed = vec4<f16>`, `enable f16;` and `enable wgpu_cooperative_matrix;`): tensor cores.
//
// A cooperative matrix is a 16x16 tile held jointly by the lanes of one subgroup;
// `coopMultiplyAdd(a, b, c)` is a * b + c over the whole tile in one instruction (on NVIDIA,
// `VK_KHR_cooperative_matrix` maps it onto the tensor cores: f16 inputs, f32 sums). Which lane
// holds which element is the driver's business, so tiles move only through coopLoad /
// coopStore from memory with a row stride.
//
// A workgroup of 4 subgroups of 32 lanes (the Rust side runs this kernel only where every
// subgroup has 32 lanes; `subgroup_id` says which subgroup a lane is in, since the operands of
// a cooperative operation must be the same in every lane of its subgroup) computes a 64x64
// tile of C; subgroup s owns the 32x32 quarter at
// rows 32 * (s / 2), columns 32 * (s % 2): 2x2 accumulators. Per step of 16 along K the
// workgroup stages A's [64 x 16] and B's [16 x 64] from the packed f16 operands into
// workgroup memory, row-major (two vec4 of each per lane), and each subgroup loads its two A
// tiles and two B tiles from there and issues four multiply-adds. At the end each
// accumulator goes through a 16x16 f32 scratch tile of its subgroup, from which the lanes
// store C with the bounds checks and the bias epilogue (store4). Needs m_pad, n_pad
// multiples of 64 and k_pad of 16.
const CM_TILE: u32 = 64u;
const CM_K: u32 = 16u;

var<workgroup> stage_a: array<f16, 1024>; // [64 rows][16 k]
var<workgroup> stage_b: array<f16, 1024>; // [16 k][64 columns]
var<workgroup> stage_c: array<f32, 1024>; // 4 subgroups x [16][16]

// Stage element `i` (0 .. 256) of A's and B's tiles for the step at k0: A as 64 rows x 4
// k-quads (consecutive lanes read consecutive rows of packed A), B as 16 k x 16 column quads
// (consecutive lanes read consecutive quads of a panel of packed B).
fn stage(bi: u32, row0: u32, quad0: u32, k0: u32, i: u32) {
    let row = i % CM_TILE;
    let q = i / CM_TILE;
    let va = ap[ap_batch(bi) + ap_index(row0 + row, k0 / 4u + q)];
    let at = row * CM_K + 4u * q;
    stage_a[at] = va.x;
    stage_a[at + 1u] = va.y;
    stage_a[at + 2u] = va.z;
    stage_a[at + 3u] = va.w;
    let kk = i / 16u;
    let j = i % 16u;
    let vb = bp[bp_batch(bi) + bp_index(k0 + kk, quad0 + j)];
    let bt = kk * CM_TILE + 4u * j;
    stage_b[bt] = vb.x;
    stage_b[bt + 1u] = vb.y;
    stage_b[bt + 2u] = vb.z;
    stage_b[bt + 3u] = vb.w;
}

// Store one 16x16 accumulator at rows i0 .., columns 4 * j0 .. of C through the subgroup's
// scratch tile: lane x writes row x / 2, column quads 2 (x % 2) and 2 (x % 2) + 1.
fn store_tile(acc: coop_mat16x16<f32, C>, s: u32, lane: u32, bi: u32, i0: u32, j0: u32) {
    coopStoreT(acc, &stage_c[s * 256u], 16u);
    workgroupBarrier();
    let r = lane / 2u;
    let at = s * 256u + r * 16u + 8u * (lane % 2u);
    let v0 = vec4(stage_c[at], stage_c[at + 1u], stage_c[at + 2u], stage_c[at + 3u]);
    let v1 = vec4(stage_c[at + 4u], stage_c[at + 5u], stage_c[at + 6u], stage_c[at + 7u]);
    store4(bi, i0 + r, j0 + 2u * (lane % 2u), v0);
    store4(bi, i0 + r, j0 + 2u * (lane % 2u) + 1u, v1);
    workgroupBarrier();
}

@compute @workgroup_size(128)
fn coop_matrix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_id) s: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let tiles_m = p.m_pad / CM_TILE;
    let tiles_n = p.n_pad / CM_TILE;
    let t = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together: the barriers below need every lane.
    if (t >= p.batch * tiles_m * tiles_n) { return; }
    let bi = t / (tiles_m * tiles_n);
    let row0 = (t / tiles_n) % tiles_m * CM_TILE;
    let quad0 = t % tiles_n * (CM_TILE / 4u);
    let a_at = (s / 2u) * 32u * CM_K;
    let b_at = (s % 2u) * 32u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < p.k_pad; k0 += CM_K) {
        stage(bi, row0, quad0, k0, lid);
        stage(bi, row0, quad0, k0, lid + 128u);
        workgroupBarrier();
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&stage_a[a_at], CM_K);
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&stage_a[a_at + 16u * CM_K], CM_K);
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(&stage_b[b_at], CM_TILE);
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(&stage_b[b_at + 16u], CM_TILE);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
        workgroupBarrier();
    }
    let i0 = row0 + (s / 2u) * 32u;
    let j0 = quad0 + (s % 2u) * 8u;
    store_tile(c00, s, lane, bi, i0, j0);
    store_tile(c01, s, lane, bi, i0, j0 + 4u);
    store_tile(c10, s, lane, bi, i0 + 16u, j0);
    store_tile(c11, s, lane, bi, i0 + 16u, j0 + 4u);
}
