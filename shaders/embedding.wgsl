// Embedding lookup (a gather of table rows) and its deterministic scatter-add backward.
// Launched by src/ops/embedding.rs.
//
// Layout: `table` is [vocab, dim] row-major, `ids` is [n] (the flattened id tensor), the
// output and its gradient `dout` are [n, dim].
//
// Ids >= vocab do not read the table: the forward writes a zero row for them, and the backward
// leaves them out (a zero row has no gradient w.r.t. the table).
//
// Backward without float atomics, in two dispatches:
//   1. `sort_positions` (ONE workgroup): a stable counting sort of the positions by id. It
//      writes `order` (the positions 0..n grouped by id, increasing within each id) and
//      `ends[v]` (where id v's positions end in `order`; they start at ends[v - 1], or 0).
//      Positions are taken WG at a time (a "chunk"): every invocation compares its id with the
//      chunk's others to find how many equal ids come before and after it, so no two
//      invocations ever update the same counter at once. Work: O(n * WG) comparisons in
//      workgroup memory plus O(vocab) for the prefix sum; n / WG chunks, a few barriers each.
//   2. `accumulate`: one invocation per (v, d) sums dout[order[k], d] for k in row v's range.
//      Work: O(n * dim + vocab * dim) loads. Every gradient element is summed by one
//      invocation in increasing position order, so the result is the same on every run.
// Compared with one invocation per (v, d) scanning all n ids (O(vocab * n * dim)), only the
// sort depends on n without dim, and it never touches a float.

struct Params {
    n: u32,      // number of ids (positions)
    vocab: u32,  // rows of the table
    dim: u32,    // columns of the table
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;    // gather: [n, dim]
@group(0) @binding(2) var<storage, read> table: array<f32>;        // gather: [vocab, dim]
@group(0) @binding(3) var<storage, read> ids: array<u32>;          // gather, sort: [n]
// Written by sort_positions, read by accumulate (bound read-write by both, hence one binding).
@group(0) @binding(4) var<storage, read_write> order: array<u32>;  // [n] positions by id
@group(0) @binding(5) var<storage, read_write> ends: array<u32>;   // [vocab]
@group(0) @binding(6) var<storage, read_write> dtable: array<f32>; // accumulate: [vocab, dim]
@group(0) @binding(7) var<storage, read> dout: array<f32>;         // accumulate: [n, dim]

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// out[r, d] = table[ids[r], d], or 0 where ids[r] >= vocab.
@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n * p.dim) { return; }
    let id = ids[e / p.dim];
    var value = 0.0;
    if (id < p.vocab) {
        value = table[id * p.dim + e % p.dim];
    }
    out[e] = value;
}

// Fills the chunk slots past the last position. It is >= vocab, so those slots are skipped
// exactly like out-of-range ids.
const NO_ID: u32 = 0xffffffffu;

var<workgroup> chunk_ids: array<u32, WG>;
var<workgroup> partial: array<u32, WG>;

// Load chunk `c` of the ids into workgroup memory.
fn load_chunk(c: u32, t: u32) {
    let r = c * WG + t;
    var id = NO_ID;
    if (r < p.n) {
        id = ids[r];
    }
    chunk_ids[t] = id;
    workgroupBarrier();
}

// How many slots of the loaded chunk before and after slot t hold the same id.
fn same_id_around(t: u32) -> vec2<u32> {
    let id = chunk_ids[t];
    var before = 0u;
    var after = 0u;
    for (var k = 0u; k < WG; k++) {
        if (chunk_ids[k] == id) {
            before += select(0u, 1u, k < t);
            after += select(0u, 1u, k > t);
        }
    }
    return vec2<u32>(before, after);
}

@compute @workgroup_size(WG)
fn sort_positions(@builtin(local_invocation_index) t: u32) {
    let chunks = (p.n + WG - 1u) / WG;

    // Count each id's positions into ends[]; per chunk only the last slot holding an id
    // adds that id's count, so each counter has one writer per chunk.
    for (var v = t; v < p.vocab; v += WG) {
        ends[v] = 0u;
    }
    storageBarrier();
    for (var c = 0u; c < chunks; c++) {
        load_chunk(c, t);
        let id = chunk_ids[t];
        let around = same_id_around(t);
        if (id < p.vocab && around.y == 0u) {
            ends[id] += around.x + 1u;
        }
        storageBarrier();
        workgroupBarrier();
    }

    // Exclusive prefix sum of the counts, in place: ends[v] becomes where id v starts.
    // Invocation t owns one contiguous run of `per` ids.
    let per = (p.vocab + WG - 1u) / WG;
    let lo = min(t * per, p.vocab);
    let hi = min(lo + per, p.vocab);
    var run = 0u;
    for (var v = lo; v < hi; v++) {
        run += ends[v];
    }
    partial[t] = run;
    workgroupBarrier();
    var offset = 0u;
    for (var k = 0u; k < t; k++) {
        offset += partial[k];
    }
    for (var v = lo; v < hi; v++) {
        let count = ends[v];
        ends[v] = offset;
        offset += count;
    }
    storageBarrier();

    // Place the positions, chunk by chunk so that equal ids keep their position order. Every
    // slot reads its id's cursor first; after the barrier the id's last slot advances it, so
    // when all chunks are done ends[v] is where id v's positions end.
    for (var c = 0u; c < chunks; c++) {
        load_chunk(c, t);
        let id = chunk_ids[t];
        let around = same_id_around(t);
        var cursor = 0u;
        if (id < p.vocab) {
            cursor = ends[id];
            order[cursor + around.x] = c * WG + t;
        }
        storageBarrier();
        if (id < p.vocab && around.y == 0u) {
            ends[id] = cursor + around.x + 1u;
        }
        storageBarrier();
        workgroupBarrier();
    }
}

// dtable[v, d] = sum over the positions r of id v (in increasing r) of dout[r, d].
@compute @workgroup_size(WG)
fn accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.vocab * p.dim) { return; }
    let v = e / p.dim;
    let d = e % p.dim;
    var begin = 0u;
    if (v > 0u) {
        begin = ends[v - 1u];
    }
    let end = ends[v];
    var acc = 0.0;
    for (var k = begin; k < end; k++) {
        acc += dout[order[k] * p.dim + d];
    }
    dtable[e] = acc;
}
