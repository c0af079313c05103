//! Planning and running one batched product: the checked shapes (`plan`), the kernels and
//! their launch (`gemm_epilogue`), packing of the operands, and the K split of the
//! register-blocked kernel. Which kernel runs is `variant.rs`'s choice.

use super::variant::resolve;
use crate::error::{Error, Result};
use crate::gpu::{
    grid, shader_file, Kernel, MatmulPacking, MatmulPrecision, MatmulVariant, ShaderFile, Storage,
};
use crate::ops::{groups_for, Activation};
use crate::tensor::{DType, Tensor};

/// What the kernels' epilogue does to C before storing it (`epilogue` in matmul/common.wgsl),
/// in this order.
#[derive(Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    /// [N], added to every row.
    pub bias: Option<&'a Tensor>,
    /// Applied after the bias; the values before it are written to the tensor (shaped like C),
    /// which the activation's backward reads.
    pub activation: Option<(Activation, &'a Tensor)>,
    /// As many values as C, added last.
    pub residual: Option<&'a Tensor>,
}

/// One batched product: C[bi] = op(A[bi]) @ op(B[bi]), C is [batch, m, n].
/// An operand that is not `batched` is one matrix shared by every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_batched: bool,
    pub b_batched: bool,
}

impl Gemm {
    /// The same product with the batch folded into M where the layout allows it: a batch of
    /// row-major A against one shared B is a single taller product.
    fn folded(self) -> Gemm {
        if self.batch > 1 && self.a_batched && !self.b_batched && !self.trans_a {
            return Gemm {
                batch: 1,
                m: self.batch * self.m,
                ..self
            };
        }
        self
    }

    fn a_stride(&self) -> u32 {
        if self.a_batched {
            (self.m * self.k) as u32
        } else {
            0
        }
    }

    fn b_stride(&self) -> u32 {
        if self.b_batched {
            (self.k * self.n) as u32
        } else {
            0
        }
    }
}

/// `struct Params` of matmul/common.wgsl, field for field (see there for what each means).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    a_stride: u32,
    b_stride: u32,
    trans_a: u32,
    trans_b: u32,
    m_pad: u32,
    k_pad: u32,
    n_pad: u32,
    a_direct: u32,
    has_bias: u32,
    b_direct: u32,
    k_split: u32,
    k_slice: u32,
    has_residual: u32,
    activation: u32,
}

/// Invocations per workgroup of the naive and packing kernels.
pub(super) const WG: u32 = 64;
/// Rows of A per workgroup of the Dot4Subgroup kernel (two at a time).
const DOT4_ROWS: u32 = 8;
/// Invocations per workgroup of the row-block kernels.
pub(super) const RB_WG: u32 = 16;
/// Tiles of the packed operands (see the layout comment in matmul/packed.wgsl).
pub(super) const PACK_ROWS: usize = 32;
const PANEL_COLS: usize = 32;
pub(super) const REGISTER_TILE: usize = 128;
/// Output tile and K step of the cooperative-matrix kernel (matmul/coop_matrix.wgsl).
pub(super) const COOP_TILE: usize = 64;
const COOP_K: usize = 16;
const REGISTER_K: usize = 8;
/// The register-blocked kernel splits K when it has fewer output tiles than this (a GPU has
/// ~100 multiprocessors to fill; the H200 has 132), into slices of at least SPLIT_MIN_K.
const SPLIT_TILES: usize = 128;
const SPLIT_MIN_K: usize = 256;

/// (slices, k per slice) of a register-blocked product with `tiles` output tiles and padded
/// inner size `k_pad`: one slice when there are tiles enough or K is short.
fn k_split(tiles: usize, k_pad: usize) -> (usize, usize) {
    let slices = (SPLIT_TILES / tiles.max(1)).min(k_pad / SPLIT_MIN_K);
    if slices < 2 {
        return (1, k_pad);
    }
    let slice = round_up(k_pad.div_ceil(slices), REGISTER_K);
    (k_pad.div_ceil(slice), slice)
}

const COMMON: ShaderFile = shader_file!("matmul/common.wgsl");
const SIMPLE: ShaderFile = shader_file!("matmul/simple.wgsl");
const DOT4_SUBGROUP: ShaderFile = shader_file!("matmul/dot4_subgroup.wgsl");
const PACKED: ShaderFile = shader_file!("matmul/packed.wgsl");
const PACK: ShaderFile = shader_file!("matmul/pack.wgsl");
const REGISTER_BLOCKED: ShaderFile = shader_file!("matmul/register_blocked.wgsl");
const ROWBLOCK: ShaderFile = shader_file!("matmul/rowblock.wgsl");
const ROWBLOCK_FETCH_PORTABLE: ShaderFile = shader_file!("matmul/rowblock_fetch_portable.wgsl");
const ROWBLOCK_FETCH_SUBGROUP: ShaderFile = shader_file!("matmul/rowblock_fetch_subgroup.wgsl");
const COOP_MATRIX: ShaderFile = shader_file!("matmul/coop_matrix.wgsl");
const PRE_OUT: ShaderFile = shader_file!("matmul/pre_out.wgsl");
const NO_PRE_OUT: ShaderFile = shader_file!("matmul/no_pre_out.wgsl");

/// A kernel of the family: its files, compiled with the packed operands' element type
/// (`Packed` in matmul/common.wgsl): f16 when `half`.
fn family_kernel(files: &[ShaderFile], entry: &'static str, half: bool) -> Kernel {
    let files: Vec<ShaderFile> = std::iter::once(NO_PRE_OUT)
        .chain(files.iter().copied())
        .collect();
    let k = Kernel::new(&files, entry);
    if half {
        k.alias("Packed", "vec4<f16>").with_f16()
    } else {
        k.alias("Packed", "vec4<f32>")
    }
}

/// Whether `v` reads packed operands (the packing kernels run first).
fn is_packed(v: MatmulVariant) -> bool {
    matches!(
        v,
        MatmulVariant::RegisterBlocked
            | MatmulVariant::RowBlock
            | MatmulVariant::RowBlockSubgroup
            | MatmulVariant::CoopMatrix
    )
}

/// The kernel that computes the product with `v`. `a_stored_t` / `b_stored_t`: the kernel
/// reads A / B stored transposed in place (A: the register-blocked kernel only; see its
/// header and `b_at_quad` in matmul/rowblock.wgsl). `half`: the packed operands are f16
/// (`MatmulPrecision::Half`; always for CoopMatrix). Every compute kernel binds C, its A, its
/// B and the bias; the simple kernels read A and B as stored (as vec4 rows for Dot4), the
/// others packed A and packed B (or A and B in place).
fn compute_kernel(v: MatmulVariant, a_stored_t: bool, b_stored_t: bool, half: bool) -> Kernel {
    let half = half && is_packed(v);
    let row_block = |fetch, entry| {
        family_kernel(&[COMMON, PACKED, ROWBLOCK, fetch], entry, half)
            .define("RB_WG", RB_WG)
            .define("B_STORED_T", b_stored_t as u32)
    };
    let simple = |entry| family_kernel(&[COMMON, SIMPLE], entry, false).define("WG", WG);
    let (kernel, a, b) = match v {
        MatmulVariant::Naive => (simple("naive"), 2, 3),
        MatmulVariant::Tiled => (simple("tiled"), 2, 3),
        MatmulVariant::Dot4 => (simple("dot4"), 7, 8),
        MatmulVariant::Dot4Subgroup => {
            let k = family_kernel(&[COMMON, DOT4_SUBGROUP], "dot4_subgroup", false)
                .define("WG", WG)
                .define("DOT4_ROWS", DOT4_ROWS);
            (k.with_subgroups(), 7, 8)
        }
        MatmulVariant::RegisterBlocked => {
            let files = [COMMON, PACKED, REGISTER_BLOCKED];
            let k = family_kernel(&files, "register_blocked", half)
                .define("A_STORED_T", a_stored_t as u32)
                .define("B_STORED_T", b_stored_t as u32);
            (k, 5, 6)
        }
        MatmulVariant::CoopMatrix => {
            let files = [COMMON, PACKED, COOP_MATRIX];
            let k = family_kernel(&files, "coop_matrix", true).with_coop_matrix();
            (k.with_subgroups(), 5, 6)
        }
        MatmulVariant::RowBlock => (row_block(ROWBLOCK_FETCH_PORTABLE, "rowblock"), 5, 6),
        MatmulVariant::RowBlockSubgroup => {
            let k = row_block(ROWBLOCK_FETCH_SUBGROUP, "rowblock_subgroup");
            (k.with_subgroups(), 5, 6)
        }
    };
    kernel.write(1).read(a).read(b).read(9).read(10)
}

/// `k`, a compute kernel, applying an activation and writing the values before it
/// (`ops::linear_act`): activation.wgsl and pre_out.wgsl with binding 11 instead of
/// no_pre_out.wgsl. Separate variants keep the activation's code out of every other product
/// (lavapipe compiled the row-block kernels ~3x slower with it inlined), and a browser refuses
/// C bound twice as writable in its place.
fn keeping_pre(k: Kernel) -> Kernel {
    let mut sources = vec![crate::ops::elementwise::ACTIVATION, PRE_OUT];
    sources.extend(k.sources.iter().copied().filter(|f| *f != NO_PRE_OUT));
    Kernel { sources, ..k }.alias("Val", "f32").write(11)
}

/// Packing kernels bind their source twice: as scalars and as vec4. `half`: they write f16.
fn pack_a_kernel(half: bool) -> Kernel {
    family_kernel(&[COMMON, PACKED, PACK], "pack_a", half)
        .write(4)
        .read(2)
        .read(7)
}

fn pack_b_kernel(half: bool) -> Kernel {
    family_kernel(&[COMMON, PACKED, PACK], "pack_b", half)
        .write(4)
        .read(3)
        .read(8)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    let mut k = Vec::new();
    for half in [false, true] {
        let packed = MatmulVariant::ALL.into_iter().filter(|&v| is_packed(v));
        if half {
            k.extend(packed.map(|v| compute_kernel(v, false, false, true)));
        } else {
            k.extend(MatmulVariant::ALL.map(|v| compute_kernel(v, false, false, false)));
            // The register-blocked kernel reading transposed operands in place (f32 only).
            let register =
                |a_t, b_t| compute_kernel(MatmulVariant::RegisterBlocked, a_t, b_t, false);
            k.extend([
                register(true, false),
                register(false, true),
                register(true, true),
            ]);
        }
        k.extend(
            [MatmulVariant::RowBlock, MatmulVariant::RowBlockSubgroup]
                .map(|v| compute_kernel(v, false, true, half)),
        );
        k.extend([pack_a_kernel(half), pack_b_kernel(half)]);
    }
    k.push(compute_kernel(
        MatmulVariant::CoopMatrix,
        false,
        false,
        true,
    ));
    // The variants `ops::linear_act` runs: every family once with the values before the
    // activation kept.
    k.extend(MatmulVariant::ALL.map(|v| keeping_pre(compute_kernel(v, false, false, false))));
    k
}

/// The row-block kernels read B in place (no packing pass) up to this many rows of A, where a
/// pass over B costs about as much as the product itself. On lavapipe the speech
/// convolution's forward product (32 x 288 x 60,160) ran 1.5x faster (38 vs 58 ms), and its
/// weight gradient (B = the im2col matrix read transposed) took an ASR step 2.46 -> 2.34 s; for
/// products with hundreds of rows (the transformer's weight gradients, the convolution's
/// input gradient with 288) the side-by-side timings were within this VM's noise either way,
/// so they keep the packed panels.
const B_DIRECT_MAX_M: usize = 64;

pub(super) fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Run `g` on the storage of `a` and `b` with variant `v` (or the default); returns C as
/// [batch * m * n] values.
pub(super) fn gemm(a: &Tensor, b: &Tensor, g: Gemm, v: Option<MatmulVariant>) -> Result<Tensor> {
    gemm_epilogue(a, b, Epilogue::default(), g, v)
}

/// `gemm` with `e` applied to C in the kernels' epilogue.
pub(crate) fn gemm_epilogue(
    a: &Tensor,
    b: &Tensor,
    e: Epilogue,
    g: Gemm,
    v: Option<MatmulVariant>,
) -> Result<Tensor> {
    let Epilogue {
        bias,
        activation,
        residual,
    } = e;
    let g = g.folded();
    let gpu = a.gpu();
    let out = Tensor::empty(gpu, &[g.batch * g.m * g.n])?;
    if out.numel() == 0 {
        return Ok(out);
    }
    if g.k == 0 && activation.is_some() {
        return Err(Error::shape(
            "linear_act",
            "an input of 0 features leaves nothing to activate",
        ));
    }
    if g.k == 0 {
        crate::ops::fill(&out, 0.0)?;
        let out = match bias {
            Some(bias) => crate::ops::add(&out.reshape(&[g.batch * g.m, g.n])?, bias)?
                .reshape(&[out.numel()])?,
            None => out,
        };
        return match residual {
            Some(r) => crate::ops::add(&out, &r.reshape(&[out.numel()])?),
            None => Ok(out),
        };
    }
    let v = resolve(gpu, &g, v);
    // f16 packed operands: for CoopMatrix always, for the other packed kernels when the
    // policy asks for half precision and the adapter has f16 in shaders.
    let half = v == MatmulVariant::CoopMatrix
        || (is_packed(v) && gpu.matmul_precision() == MatmulPrecision::Half && gpu.has_f16());
    let (m_tile, k_tile, n_tile) = match v {
        MatmulVariant::RegisterBlocked => (REGISTER_TILE, REGISTER_K, REGISTER_TILE),
        MatmulVariant::CoopMatrix => (COOP_TILE, COOP_K, COOP_TILE),
        _ => (PACK_ROWS, 4, PANEL_COLS),
    };
    let (m_pad, k_pad, n_pad) = (
        round_up(g.m, m_tile),
        round_up(g.k, k_tile),
        round_up(g.n, n_tile),
    );
    // Operands needing no k padding are read in place where the kernel's loads are whole vec4
    // of them (never in half precision: the kernels then read f16 panels, which only packing
    // makes): row-major A by every packed kernel; A stored transposed with M a multiple of 4,
    // and B either way (stored transposed, or row-major with N a multiple of 4), by the
    // register-blocked kernel (see its header); B by the row-block kernels where A has too few
    // rows to repay packing B (see `b_at_quad` in matmul/rowblock.wgsl).
    let in_place = !half && k_pad == g.k && gpu.matmul_packing() == MatmulPacking::Auto;
    let register = v == MatmulVariant::RegisterBlocked;
    let row_block = matches!(v, MatmulVariant::RowBlock | MatmulVariant::RowBlockSubgroup);
    let a_direct = in_place && (!g.trans_a || (register && g.m.is_multiple_of(4)));
    let b_direct = in_place
        && match v {
            _ if register => g.trans_b || g.n.is_multiple_of(4),
            _ if row_block => g.n.is_multiple_of(4) && g.m <= B_DIRECT_MAX_M,
            _ => false,
        };
    // A split K writes one product per slice, summed below; a bias, an activation or a
    // residual would be applied per slice.
    let tiles = g.batch * (m_pad / m_tile) * (n_pad / n_tile);
    let (slices, k_slice) = match v {
        MatmulVariant::RegisterBlocked
            if bias.is_none() && residual.is_none() && activation.is_none() =>
        {
            k_split(tiles, k_pad)
        }
        _ => (1, k_pad),
    };
    let out = match slices {
        1 => out,
        _ => Tensor::empty(gpu, &[slices, g.batch * g.m * g.n])?,
    };
    let params = Params {
        batch: g.batch as u32,
        m: g.m as u32,
        k: g.k as u32,
        n: g.n as u32,
        a_stride: g.a_stride(),
        b_stride: g.b_stride(),
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        m_pad: m_pad as u32,
        k_pad: k_pad as u32,
        n_pad: n_pad as u32,
        a_direct: a_direct as u32,
        has_bias: bias.is_some() as u32,
        b_direct: b_direct as u32,
        k_split: slices as u32,
        k_slice: k_slice as u32,
        has_residual: residual.is_some() as u32,
        activation: activation.map_or(0, |(act, _)| act.code()),
    };
    // Without a bias or a residual their bindings still need a buffer: A's, never read.
    let bias = bias.unwrap_or(a).storage();
    let residual = residual.unwrap_or(a).storage();
    let run =
        |k: Kernel, bufs: &[&Storage], groups: [u32; 3]| gpu.dispatch(&k, &params, bufs, groups);
    // The product itself: C, its A and B, the bias, the residual, and with an activation the
    // values before it.
    let compute = |k: Kernel, [a, b]: [&Storage; 2], groups: [u32; 3]| match activation {
        Some((_, pre)) => run(
            keeping_pre(k),
            &[out.storage(), a, b, bias, residual, pre.storage()],
            groups,
        ),
        None => run(k, &[out.storage(), a, b, bias, residual], groups),
    };
    match v {
        MatmulVariant::Naive | MatmulVariant::Dot4 => compute(
            compute_kernel(v, false, false, false),
            [a.storage(), b.storage()],
            groups_for(out.numel(), WG),
        )?,
        MatmulVariant::Dot4Subgroup => {
            let blocks = g.m.div_ceil(DOT4_ROWS as usize);
            let chunks = g.n.div_ceil(WG as usize);
            compute(
                compute_kernel(v, false, false, false),
                [a.storage(), b.storage()],
                grid((g.batch * blocks * chunks) as u32),
            )?
        }
        MatmulVariant::Tiled => {
            let tiles = g.batch * g.m.div_ceil(16) * g.n.div_ceil(16);
            compute(
                compute_kernel(v, false, false, false),
                [a.storage(), b.storage()],
                grid(tiles as u32),
            )?
        }
        _ => {
            let batches = |batched: bool| if batched { g.batch } else { 1 };
            // Packing workgroups: 2 k-quads of 4 panels of B; 2 k-quads of 128 rows of A.
            // Panels in f16 take half the 4-byte words (`gpu.alloc` counts words).
            let words = |values: usize| if half { values / 2 } else { values };
            let pb = if b_direct {
                None
            } else {
                let pb = gpu.alloc(words(batches(g.b_batched) * k_pad * n_pad))?;
                let b_groups = [
                    k_pad.div_ceil(8) as u32,
                    n_pad.div_ceil(4 * PANEL_COLS) as u32,
                    batches(g.b_batched) as u32,
                ];
                run(
                    pack_b_kernel(half),
                    &[&pb, b.storage(), b.storage()],
                    b_groups,
                )?;
                Some(pb)
            };
            let pb = pb.as_ref().unwrap_or(b.storage());
            let pa = if a_direct {
                None
            } else {
                let pa = gpu.alloc(words(batches(g.a_batched) * m_pad * k_pad))?;
                let a_groups = [
                    k_pad.div_ceil(8) as u32,
                    m_pad.div_ceil(128) as u32,
                    batches(g.a_batched) as u32,
                ];
                run(
                    pack_a_kernel(half),
                    &[&pa, a.storage(), a.storage()],
                    a_groups,
                )?;
                Some(pa)
            };
            let pa = pa.as_ref().unwrap_or(a.storage());
            let workgroups = match v {
                MatmulVariant::RegisterBlocked | MatmulVariant::CoopMatrix => slices * tiles,
                // Each invocation owns two column quads.
                _ => g.batch * (m_pad / PACK_ROWS) * (n_pad / 4).div_ceil(2 * RB_WG as usize),
            };
            compute(
                compute_kernel(v, a_direct && g.trans_a, b_direct && g.trans_b, half),
                [pa, pb],
                grid(workgroups as u32),
            )?
        }
    }
    match slices {
        1 => Ok(out),
        _ => crate::ops::sum_axis(&out, 0),
    }
}

/// The checked shapes of one call: the product, the output shape.
pub(crate) fn plan(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<(Gemm, Vec<usize>)> {
    for (name, t) in [("a", a), ("b", b)] {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(op, format!("{name} must be f32, got {t:?}")));
        }
        if t.dims() < 2 {
            return Err(Error::shape(
                op,
                format!("{name} must have at least 2 dims, got {:?}", t.shape()),
            ));
        }
    }
    let (sa, sb) = (a.shape(), b.shape());
    let batch_dims = &sa[..sa.len() - 2];
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let b_batched = sb.len() > 2;
    if b_batched && sb[..sb.len() - 2] != *batch_dims {
        return Err(Error::shape(
            op,
            format!(
                "b {sb:?} must be 2-D (shared) or have the batch dims {batch_dims:?} of a {sa:?}"
            ),
        ));
    }
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if kb != k {
        let a_form = if trans_a { "[.., K, M]" } else { "[.., M, K]" };
        let b_form = if trans_b { "[.., N, K]" } else { "[.., K, N]" };
        return Err(Error::shape(
            op,
            format!("inner dims differ: a {sa:?} is {a_form} with K = {k}, b {sb:?} is {b_form} with K = {kb}"),
        ));
    }
    let batch = batch_dims.iter().product();
    let g = Gemm {
        batch,
        m,
        k,
        n,
        trans_a,
        trans_b,
        a_batched: true,
        b_batched,
    };
    let mut out_shape = batch_dims.to_vec();
    out_shape.extend([m, n]);
    Ok((g, out_shape))
}
