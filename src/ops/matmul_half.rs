//! x @ W^T (+ bias) with W held in half precision (`shaders/matmul_half.wgsl`): for the
//! frozen projections of a pretrained model whose weights were shipped as f16, kept at that
//! precision on the device so that a decoding step reads half the bytes. Sums are f32.
//! Backward: the gradient of x (W is frozen and gets none).

use super::groups_for;
use crate::error::{Error, Result};
use crate::gpu::{shader_file, Gpu, Kernel, ShaderFile};
use crate::tape::record;
use crate::tensor::{DType, Tensor};

const SHADER: ShaderFile = shader_file!("matmul_half.wgsl");
const SUBGROUP: ShaderFile = shader_file!("matmul_half_subgroup.wgsl");
const WG: u32 = 64;

/// `struct Params` of matmul_half.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    k: u32,
    n: u32,
    has_bias: u32,
}

/// `forward`, or `forward_subgroup` (x shared through the subgroup) where the adapter has
/// subgroups of at least 8 lanes. Whisper tiny.en's decoder on lavapipe, 20 windows: 37.7-38.4
/// ms per token with `forward_subgroup`, 42.0-42.9 with the f32 weights (matmul's
/// `dot4_subgroup`), 43.9-44.7 with the portable `forward`, which has the loads of the f32
/// kernel: on lavapipe the count of loads, not their bytes, sets the speed.
fn forward_kernel(subgroups: bool) -> Kernel {
    let kernel = if subgroups {
        Kernel::new(&[SHADER, SUBGROUP], "forward_subgroup").with_subgroups()
    } else {
        Kernel::new(&[SHADER], "forward")
    };
    kernel.define("WG", WG).write(1).read(2).read(3).read(4)
}

fn backward_kernel() -> Kernel {
    Kernel::new(&[SHADER], "backward")
        .define("WG", WG)
        .write(5)
        .read(6)
        .read(7)
}

pub(crate) fn kernels() -> Vec<Kernel> {
    vec![
        forward_kernel(false),
        forward_kernel(true),
        backward_kernel(),
    ]
}

/// A [N, K] weight in half precision on the device: pairs of IEEE halves in u32, element 2i
/// in the low bits (WGSL's `unpack2x16float` order). K is a multiple of 8.
#[derive(Clone)]
pub struct HalfMatrix {
    packed: Tensor,
    pub n: usize,
    pub k: usize,
}

impl HalfMatrix {
    /// `values` ([n, k] row-major) rounded to the nearest half. Errors when K is not a
    /// multiple of 8 or the sizes do not match.
    pub fn new(gpu: &Gpu, values: &[f32], n: usize, k: usize) -> Result<HalfMatrix> {
        if !k.is_multiple_of(8) || values.len() != n * k || n == 0 {
            return Err(Error::shape(
                "HalfMatrix",
                format!(
                    "{} values for [{n}, {k}]: need n * k values, n > 0, k a multiple of 8",
                    values.len()
                ),
            ));
        }
        let bits = |v: f32| half::f16::from_f32(v).to_bits() as u32;
        let pairs: Vec<u32> = values
            .chunks_exact(2)
            .map(|p| bits(p[0]) | (bits(p[1]) << 16))
            .collect();
        let packed = Tensor::from_u32(gpu, &pairs, &[n, k / 2])?;
        Ok(HalfMatrix { packed, n, k })
    }

    /// Whether every value is a half exactly (f16 weights widened to f32 on load): then a
    /// `HalfMatrix` of them computes what the f32 weights would, reading half the bytes.
    pub fn is_exact(values: &[f32]) -> bool {
        values
            .iter()
            .all(|&v| half::f16::from_f32(v).to_f32().to_bits() == v.to_bits())
    }
}

/// x [..., K] @ W^T + bias -> [..., N]; W is a [N, K] [`HalfMatrix`], bias [N] (optional).
/// Gradients reach x only.
pub fn matmul_half(x: &Tensor, w: &HalfMatrix, bias: Option<&Tensor>) -> Result<Tensor> {
    let gpu = x.gpu();
    let subgroups = gpu.has_subgroups_of(8);
    matmul_half_with(x, w, bias, subgroups)
}

/// [`matmul_half`] through the kernel chosen here (for tests and benchmarks): `subgroups`
/// picks `forward_subgroup`, an error where the adapter cannot run it.
pub fn matmul_half_with(
    x: &Tensor,
    w: &HalfMatrix,
    bias: Option<&Tensor>,
    subgroups: bool,
) -> Result<Tensor> {
    let gpu = x.gpu();
    if subgroups && !gpu.has_subgroups_of(8) {
        return Err(Error::Gpu(
            "matmul_half: forward_subgroup needs subgroups of at least 8 lanes".into(),
        ));
    }
    let k = w.k;
    if x.dtype() != DType::F32 || x.shape().last() != Some(&k) || x.numel() == 0 {
        return Err(Error::shape(
            "matmul_half",
            format!(
                "x must be f32 [..., {k}] (K of the [{}, {k}] weight), got {x:?}",
                w.n
            ),
        ));
    }
    if let Some(b) = bias {
        if b.dtype() != DType::F32 || b.shape() != [w.n] {
            return Err(Error::shape(
                "matmul_half",
                format!("bias must be f32 [{}], got {b:?}", w.n),
            ));
        }
    }
    let m = x.numel() / k;
    let mut out_shape = x.shape().to_vec();
    *out_shape.last_mut().unwrap() = w.n;
    let out = Tensor::empty(gpu, &out_shape)?;
    let params = Params {
        m: m as u32,
        k: k as u32,
        n: w.n as u32,
        has_bias: bias.is_some() as u32,
    };
    // Without a bias any read-only buffer of the call stands in: the kernel never reads it.
    let bias_storage = bias.unwrap_or(x).storage();
    gpu.dispatch(
        &forward_kernel(subgroups),
        &params,
        &[out.storage(), x.storage(), w.packed.storage(), bias_storage],
        groups_for(w.n, WG),
    )?;
    let (w, x_shape) = (w.clone(), x.shape().to_vec());
    Ok(record(out, &[x], move |d_out| {
        let dx = Tensor::empty(d_out.gpu(), &x_shape)?;
        d_out.gpu().dispatch(
            &backward_kernel(),
            &params,
            &[dx.storage(), d_out.storage(), w.packed.storage()],
            groups_for(m * w.k, WG),
        )?;
        Ok(vec![Some(dx)])
    }))
}
