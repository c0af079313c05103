//! A reader for CTranslate2's `model.bin` (what faster-whisper loads), binary versions 4 to 6:
//!
//! ```text
//! u32 version | string spec name | u32 spec revision            (strings: u16 length
//! u32 count, then per variable:                                 counting a closing NUL,
//!   string name | u8 rank | u32 dims[rank] | u8 dtype |         then the UTF-8 bytes
//!   u32 byte count | the values, little-endian, row-major       and the NUL)
//! u32 count, then per alias: string alias | string variable name
//! ```
//! dtype ids: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. Every value is converted to f32 on load
//! (f16 and bf16 exactly; integers too, which holds for the small scalars a spec stores such as
//! `encoder/num_heads`). Quantized weights (an int8 `weight` with a `weight_scale`) are read as
//! their raw integers: a model loader must refuse them.

use super::NamedArrays;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The element types a variable may be stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Ct2Dtype> {
        Some(match id {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }

    /// Little-endian element bytes -> f32.
    fn to_f32(self, b: &[u8]) -> f32 {
        match self {
            Ct2Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Ct2Dtype::I8 => b[0] as i8 as f32,
            Ct2Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Ct2Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Ct2Dtype::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Ct2Dtype::Bf16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
        }
    }
}

/// IEEE half -> single, exact (subnormals, infinities and NaN included).
pub fn f16_to_f32(h: u16) -> f32 {
    let negative = h >> 15 == 1;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    if exp == 0 {
        // Zero or subnormal: mant * 2^-24, which an f32 holds exactly.
        let v = mant as f32 * 2f32.powi(-24);
        return if negative { -v } else { v };
    }
    let sign = (negative as u32) << 31;
    let bits = match exp {
        0x1f => sign | 0x7f80_0000 | (mant << 13), // infinity or NaN
        e => sign | ((e + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// One `model.bin`: its spec (e.g. `WhisperSpec`), every variable as f32, and the aliases.
pub struct Ct2Model {
    pub spec: String,
    pub revision: u32,
    /// name -> (shape, values).
    pub variables: NamedArrays,
    /// The dtype each variable was stored as.
    pub dtypes: HashMap<String, Ct2Dtype>,
    /// alias -> the variable it names (`decoder/projection/weight` -> `decoder/embeddings/weight`).
    pub aliases: HashMap<String, String>,
}

impl Ct2Model {
    /// Read and convert `path`.
    pub fn read(path: &Path) -> Result<Ct2Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ct2Model::parse(path, &bytes)
    }

    /// Parse the bytes of a `model.bin`; `path` names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Ct2Model> {
        let mut r = Reader { path, bytes, at: 0 };
        let version = r.u32("the binary version")?;
        if !(4..=6).contains(&version) {
            return Err(Error::format(
                path,
                format!(
                    "CTranslate2 binary version {version}; this reader knows versions 4 to 6 \
                     (CTranslate2 2.x-4.x): is this a CTranslate2 model.bin?"
                ),
            ));
        }
        let spec = r.string("the spec name")?;
        let revision = r.u32("the spec revision")?;
        let count = r.u32("the variable count")?;
        let mut variables = HashMap::new();
        let mut dtypes = HashMap::new();
        for i in 0..count {
            let what = format!("variable {i} of {count}");
            let name = r.string(&what)?;
            let rank = r.u8(&name)? as usize;
            let shape = (0..rank)
                .map(|_| r.u32(&name).map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            let id = r.u8(&name)?;
            let dtype = Ct2Dtype::from_id(id).ok_or_else(|| {
                Error::format(path, format!("variable {name:?} has unknown dtype id {id}"))
            })?;
            let n_bytes = r.u32(&name)? as usize;
            let numel: usize = shape.iter().product();
            if numel * dtype.size() != n_bytes {
                return Err(Error::format(
                    path,
                    format!(
                        "variable {name:?}: shape {shape:?} of {dtype:?} needs {} bytes, the \
                         file says {n_bytes}",
                        numel * dtype.size()
                    ),
                ));
            }
            let raw = r.take(n_bytes, &name)?;
            let values = raw
                .chunks_exact(dtype.size())
                .map(|b| dtype.to_f32(b))
                .collect();
            dtypes.insert(name.clone(), dtype);
            variables.insert(name, (shape, values));
        }
        let mut aliases = HashMap::new();
        // Binary version 4 and later always end with the (possibly empty) alias table.
        let n_aliases = r.u32("the alias count")?;
        for _ in 0..n_aliases {
            let alias = r.string("an alias")?;
            let target = r.string(&alias)?;
            if !variables.contains_key(&target) {
                return Err(Error::format(
                    path,
                    format!("alias {alias:?} names {target:?}, which is not a variable"),
                ));
            }
            aliases.insert(alias, target);
        }
        if r.at != bytes.len() {
            return Err(Error::format(
                path,
                format!("{} bytes left after the alias table", bytes.len() - r.at),
            ));
        }
        Ok(Ct2Model {
            spec,
            revision,
            variables,
            dtypes,
            aliases,
        })
    }

    /// The variable `name`, following an alias; an error naming the file and the key if absent.
    pub fn get(&self, path: &Path, name: &str) -> Result<&(Vec<usize>, Vec<f32>)> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.variables
            .get(target)
            .ok_or_else(|| Error::format(path, format!("has no variable {name:?}")))
    }
}

/// A cursor over the file's bytes whose errors say what was being read.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::format(
                self.path,
                format!(
                    "ends at byte {} while reading {what} ({n} bytes wanted at byte {}): \
                     truncated or not a CTranslate2 model.bin",
                    self.bytes.len(),
                    self.at
                ),
            ));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let b = self.take(2, what)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        let raw = self.take(len, what)?;
        match raw.split_last() {
            Some((0, text)) => String::from_utf8(text.to_vec())
                .map_err(|_| Error::format(self.path, format!("{what}: a name that is not UTF-8"))),
            _ => Err(Error::format(
                self.path,
                format!("{what}: a string without its closing NUL (not a CTranslate2 model.bin?)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a model.bin with `vars` (name, shape, dtype id, raw bytes) and `aliases`.
    fn model_bin(vars: &[(&str, &[u32], u8, Vec<u8>)], aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u16 + 1).to_le_bytes());
            out.extend(s.as_bytes());
            out.push(0);
        };
        out.extend(6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend((vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, raw) in vars {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for d in *shape {
                out.extend(d.to_le_bytes());
            }
            out.push(*dtype);
            out.extend((raw.len() as u32).to_le_bytes());
            out.extend(raw);
        }
        out.extend((aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
        out
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn reads_variables_of_every_dtype_and_follows_aliases() {
        let f16: Vec<u8> = [0x3c00u16, 0xc000]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let f32s: Vec<u8> = [0.5f32, -1.5, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = model_bin(
            &[
                ("encoder/num_heads", &[], 2, 6i16.to_le_bytes().to_vec()),
                ("decoder/embeddings/weight", &[1, 2], 4, f16),
                ("x", &[3], 0, f32s),
                ("bf", &[1], 5, 0x3fc0u16.to_le_bytes().to_vec()),
                ("flag", &[], 1, vec![1]),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        let path = Path::new("model.bin");
        let m = Ct2Model::parse(path, &bytes).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.get(path, "encoder/num_heads").unwrap().1, vec![6.0]);
        let tied = m.get(path, "decoder/projection/weight").unwrap();
        assert_eq!(tied, &(vec![1, 2], vec![1.0, -2.0]));
        assert_eq!(m.get(path, "x").unwrap().1, vec![0.5, -1.5, 2.0]);
        assert_eq!(m.get(path, "bf").unwrap().1, vec![1.5]);
        assert_eq!(m.dtypes["decoder/embeddings/weight"], Ct2Dtype::F16);
        let msg = m
            .get(path, "encoder/conv1/weight")
            .err()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("model.bin") && msg.contains("encoder/conv1/weight"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_files_give_errors_that_say_what_is_wrong() {
        let path = Path::new("bad/model.bin");
        let good = model_bin(&[("x", &[2], 0, vec![0; 8])], &[]);
        assert!(Ct2Model::parse(path, &good).is_ok());
        let err = |b: &[u8]| Ct2Model::parse(path, b).err().unwrap().to_string();

        let truncated = err(&good[..good.len() - 7]);
        assert!(
            truncated.contains("bad/model.bin") && truncated.contains("truncated"),
            "{truncated}"
        );
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        assert!(err(&wrong_version).contains("binary version 9"));
        let wrong_size = model_bin(&[("x", &[3], 0, vec![0; 8])], &[]);
        assert!(err(&wrong_size).contains("needs 12 bytes"));
        let bad_dtype = model_bin(&[("x", &[2], 7, vec![0; 8])], &[]);
        assert!(err(&bad_dtype).contains("unknown dtype id 7"));
        let dangling = model_bin(&[("x", &[2], 0, vec![0; 8])], &[("y", "z")]);
        assert!(err(&dangling).contains("\"z\""));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(err(&trailing).contains("1 bytes left"));
        assert!(err(b"PK\x03\x04 a zip file").contains("binary version"));
    }
}
