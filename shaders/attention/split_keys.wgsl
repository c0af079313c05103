// Attention split over the keys, for few queries against many keys: a decoding step's one
// query against its self-attention cache, or against the encoder's 1,500 frames in Whisper's
// cross-attention (needs common.wgsl; DV, CHUNK and WG are defined by the launching code).
//
// The other forward kernels give each query row to one invocation (Rows) or one workgroup
// (Tiled) that walks every key: with one query per head that is a handful of invocations, one
// CPU core or a few GPU lanes doing all the work. Here the keys are cut into chunks of CHUNK
// and every (query row, chunk) pair is its own invocation, so Tk / CHUNK times more of them
// run at once. Two passes:
//   split_keys_partial   one (row, chunk): the running max m, the sum l of exp(s - m) and
//                        the unnormalised output sum_j exp(s_j - m) v_j over the chunk's
//                        visible keys (l = 0 when none is visible);
//   split_keys_combine   one row: rescale each chunk to the largest m and add up, then
//                        o = acc / l and lse = m + log l (0 and 0 when no key is visible),
// which is the same online softmax the fused kernels run, with the chunks combined at the
// end. lse has the meaning the backward kernels expect, so the backward of this forward is
// any fused backward.

// (m, l) and the output sum of each (row, chunk): [B * H * Tq, chunks] and that x D.
@group(0) @binding(20) var<storage, read_write> partial_out: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read_write> partial_stats_out: array<vec2<f32>>;
@group(0) @binding(22) var<storage, read> partial: array<vec4<f32>>;
@group(0) @binding(23) var<storage, read> partial_stats: array<vec2<f32>>;

fn chunks() -> u32 {
    return (p.tk + CHUNK - 1u) / CHUNK;
}

fn invocation(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn split_keys_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = invocation(gid, nwg);
    let n = chunks();
    if (id >= p.batch * p.heads * p.tq * n) { return; }
    // row = (b * H + h) * Tq + i: q, o and lse are indexed by it.
    let row = id / n;
    let bh = row / p.tq;
    let j0 = id % n * CHUNK;
    let j1 = min(j0 + CHUNK, key_limit(bh / p.heads, row % p.tq));

    // The query, scaled once here rather than every score.
    var qs: array<vec4<f32>, DV>;
    let q_at = query_row_at(row) * DV;
    for (var x = 0u; x < DV; x++) {
        qs[x] = q[q_at + x] * p.scale;
    }
    var acc: array<vec4<f32>, DV>;
    var m = NEG_BIG;
    var l = 0.0;
    for (var j = j0; j < j1; j++) {
        let kv = key_row_at(bh * p.tk + j) * DV;
        var s4 = vec4(0.0);
        for (var x = 0u; x < DV; x++) {
            s4 = fma(qs[x], k[kv + x], s4);
        }
        let s = s4.x + s4.y + s4.z + s4.w;
        let m_new = max(m, s);
        let rescale = exp(m - m_new);
        let w = exp(s - m_new);
        l = l * rescale + w;
        for (var x = 0u; x < DV; x++) {
            acc[x] = fma(vec4(w), v[kv + x], acc[x] * rescale);
        }
        m = m_new;
    }
    for (var x = 0u; x < DV; x++) {
        partial_out[id * DV + x] = acc[x];
    }
    partial_stats_out[id] = vec2(m, l);
}

@compute @workgroup_size(WG)
fn split_keys_combine(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = invocation(gid, nwg);
    if (row >= p.batch * p.heads * p.tq) { return; }
    let n = chunks();
    var m = NEG_BIG;
    for (var c = 0u; c < n; c++) {
        let st = partial_stats[row * n + c];
        if (st.y > 0.0) {
            m = max(m, st.x);
        }
    }
    var acc: array<vec4<f32>, DV>;
    var l = 0.0;
    for (var c = 0u; c < n; c++) {
        let st = partial_stats[row * n + c];
        if (st.y > 0.0) {
            let w = exp(st.x - m);
            l += st.y * w;
            let at = (row * n + c) * DV;
            for (var x = 0u; x < DV; x++) {
                acc[x] = fma(vec4(w), partial[at + x], acc[x]);
            }
        }
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let at = query_row_at(row) * DV;
    for (var x = 0u; x < DV; x++) {
        o_out[at + x] = acc[x] * inv;
    }
    lse_out[row] = select(0.0, m + log(l), l > 0.0);
}
