//! Named tensors <-> safetensors bytes (PyTorch-compatible). Written as f32, little-endian;
//! read from f32, f16 or bf16 (half-precision values are widened to f32 exactly). Used by
//! checkpoints and by optimizer state; reading back from the GPU happens here.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Serialise named tensors to safetensors bytes (reads them back from the GPU).
pub fn tensors_to_bytes(tensors: &[(String, &Tensor)]) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in tensors {
        let data: Vec<f32> = t.to_vec()?;
        owned.push((
            name.clone(),
            t.shape().to_vec(),
            bytemuck::cast_slice(&data).to_vec(),
        ));
    }
    let views = owned
        .iter()
        .map(|(n, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Gpu(format!("safetensors view of {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| Error::Gpu(format!("safetensors: {e}")))
}

/// Tensors read from a file: name -> (shape, values).
pub type NamedArrays = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Read the tensors of safetensors bytes as f32 (F16 and BF16 are converted; other dtypes
/// are refused, naming the file and the tensor).
pub fn tensors_from_bytes(file: &Path, bytes: &[u8]) -> Result<NamedArrays> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(file, format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::format(
                    file,
                    format!("tensor {name:?} is {other:?}; this crate reads F32, F16 and BF16"),
                ))
            }
        };
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}
