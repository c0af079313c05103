// Scaled dot-product attention with causal and key-length masks: what every attention kernel
// shares. Launched by src/ops/attention/ (`attention`, `attention_unfused`); the math is that
// of src/reference/attention.rs. Each kernel compiles this file with the files of its family:
// tiled.wgsl (the GPU-shaped fused kernels), rows.wgsl with rows_fetch_portable.wgsl or
// rows_fetch_subgroup.wgsl (the CPU-shaped fused kernels), delta.wgsl (the fused backward's
// first pass), masked_softmax.wgsl (the unfused path's softmax).
//
// Math, per (batch b, head h), with c = 1 / sqrt(D) (`p.scale`):
//   s[i, j] = c q_i . k_j       P[i, :] = softmax of s[i, :] over the keys visible to query i
//   o_i = sum_j P[i, j] v_j     lse_i = log sum_{visible j} exp(s[i, j])   (saved for backward)
// Backward, from dO and the saved lse (P is recomputed as exp(s - lse), never stored):
//   delta_i = dO_i . o_i                    dv_j = sum_i P[i, j] dO_i
//   dS[i, j] = P[i, j] (dO_i . v_j - delta_i)
//   dq_i = c sum_j dS[i, j] k_j             dk_j = c sum_i dS[i, j] q_i
//
// Masks. Key j is visible to query i iff j < key_limit(b, i), where
//   key_limit(b, i) = min(Tk, key_lens[b], causal ? i + 1 + Tk - Tq (0 if negative) : Tk).
// Key padding and the bottom-right aligned causal mask (key j masked when j > i + Tk - Tq, so
// with Tq = 1 the query sees every key) together always leave a PREFIX of the keys visible,
// and the prefix never shrinks as i grows. So a block of queries sees keys 0 .. limit of its
// last query, and a block of keys is seen from `first_query` of its first key on: tiles
// outside those ranges are never staged nor visited. Inside a tile every invocation walks the
// same rows in lockstep (a loop count uniform over the workgroup, so staged rows are read as
// broadcasts and nothing diverges) and a key a row does not see gets probability exactly 0
// (a `select`, not exp(-big)). A query whose limit is 0 sees nothing: its output, lse and
// gradients are 0.
//
// Layout: q, o, dO, dq are [B, H, Tq, D]; k, v, dk, dv are [B, H, Tk, D]; lse and delta are
// [B, H, Tq]; key_lens is [B] u32; scores, probs and their gradients (unfused path) are
// [B, H, Tq, Tk]. All row-major. The fused kernels read head rows as DV vec4s: DV = D / 4
// (D is a multiple of 4) is a constant the launching code defines. With `p.token_major` the
// fused kernels take the eight head tensors as [B, T, H, D] instead: a projection's output
// [B, T, H * D] viewed per head, so no permute splits or merges the heads. Rows are still
// numbered per head, (b * H + h) * T + t (lse and delta stay [B, H, Tq]); `query_row_at` and
// `key_row_at` say where such a row sits in memory.

struct Params {
    batch: u32,
    heads: u32,
    tq: u32,
    tk: u32,
    causal: u32,    // 1: bottom-right aligned causal mask
    has_lens: u32,  // 1: key_lens holds each batch item's valid key count (else it is unread)
    scale: f32,     // 1 / sqrt(D)
    token_major: u32, // 1: the head tensors are [B, T, H, D] (else [B, H, T, D])
}

// Start value of a running max; loses every max against a real score (no -inf in WGSL).
// -f32::MAX written in hex: its decimal forms round above it, which Chromium's compiler refuses.
const NEG_BIG: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> p: Params;
// forward
@group(0) @binding(1) var<storage, read_write> o_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;
// inputs shared by the forward and backward kernels
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> key_lens: array<u32>;
// backward. The forward's lse and the backward's delta share one buffer, lse for every query row
// then delta (`backward_delta` writes that half through `delta_out`): the dK/dV kernel then
// binds eight storage buffers, the most WebGPU promises.
@group(0) @binding(7) var<storage, read_write> delta_out: array<f32>;
@group(0) @binding(8) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> d_o: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> lse_delta: array<f32>;
@group(0) @binding(12) var<storage, read_write> dq_out: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> dk_out: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> dv_out: array<vec4<f32>>;
// unfused masked softmax
@group(0) @binding(15) var<storage, read_write> probs_out: array<f32>;
@group(0) @binding(16) var<storage, read> scores: array<f32>;
@group(0) @binding(17) var<storage, read_write> dscores_out: array<f32>;
@group(0) @binding(18) var<storage, read> probs: array<f32>;
@group(0) @binding(19) var<storage, read> dprobs: array<f32>;

// Query rows of all heads: where delta starts in the lse / delta buffer.
fn query_rows() -> u32 {
    return p.batch * p.heads * p.tq;
}

// Where head row `row` ((b * H + h) * T + t, T = `len`) sits, in rows of D values.
fn head_row_at(row: u32, len: u32) -> u32 {
    if (p.token_major == 0u) { return row; }
    let bh = row / len;
    return ((bh / p.heads) * len + row % len) * p.heads + bh % p.heads;
}

// Rows of q, o, dO and dq.
fn query_row_at(row: u32) -> u32 {
    return head_row_at(row, p.tq);
}

// Rows of k, v, dk and dv.
fn key_row_at(row: u32) -> u32 {
    return head_row_at(row, p.tk);
}

fn lse(row: u32) -> f32 {
    return lse_delta[row];
}

fn delta(row: u32) -> f32 {
    return lse_delta[query_rows() + row];
}

// Keys 0 .. key_limit(b, i) - 1 are visible to query i of batch item b.
fn key_limit(b: u32, i: u32) -> u32 {
    var limit = p.tk;
    if (p.has_lens == 1u) {
        limit = min(limit, key_lens[b]);
    }
    if (p.causal == 1u) {
        // j visible iff j <= i + Tk - Tq, i.e. j < i + 1 + Tk - Tq, kept in unsigned range.
        limit = min(limit, select(0u, i + 1u + p.tk - p.tq, i + 1u + p.tk > p.tq));
    }
    return limit;
}

// Queries first_query(b, j) .. Tq - 1 see key j (none when it returns Tq): key_limit inverted.
fn first_query(b: u32, j: u32) -> u32 {
    if (p.has_lens == 1u && j >= key_lens[b]) {
        return p.tq;
    }
    if (p.causal == 1u && j + p.tq > p.tk) {
        return j + p.tq - p.tk;
    }
    return 0u;
}

// Linear workgroup index on the 2-D grid.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
