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
    let mut values = Vec::with_capacity(tensors.len());
    for (_, t) in tensors {
        values.push(t.to_vec()?);
    }
    serialize(tensors, &values)
}

/// `tensors_to_bytes` with its readbacks awaited (a browser page).
pub async fn tensors_to_bytes_async(tensors: &[(String, &Tensor)]) -> Result<Vec<u8>> {
    let mut values = Vec::with_capacity(tensors.len());
    for (_, t) in tensors {
        values.push(t.to_vec_async().await?);
    }
    serialize(tensors, &values)
}

/// Parameters under their own names (PyTorch's), tied ones once: a model's safetensors.
pub fn named_params(params: &[Tensor]) -> Vec<(String, &Tensor)> {
    params
        .iter()
        .map(|p| (p.name().unwrap_or_default().to_string(), p))
        .collect()
}

/// The safetensors bytes of `tensors` (names and shapes) holding `values`, f32.
fn serialize(tensors: &[(String, &Tensor)], values: &[Vec<f32>]) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .zip(values)
        .map(|((n, t), data)| {
            TensorView::new(Dtype::F32, t.shape().to_vec(), bytemuck::cast_slice(data))
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
