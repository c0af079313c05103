//! Named tensors <-> safetensors bytes (f32, little-endian, PyTorch-compatible). Used by
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

/// Read f32 tensors from safetensors bytes.
pub fn tensors_from_bytes(file: &Path, bytes: &[u8]) -> Result<NamedArrays> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(file, format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::format(
                file,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}
