//! A strict reader for NumPy `.npy` files (format versions 1 and 2), for the arrays speech
//! corpora ship: little-endian `<f4` / `<f8` numbers and `<U<n>` unicode strings, C order.
//! The shape is checked against the file's length before anything is allocated, so a corrupt
//! header cannot ask for gigabytes.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Real headers are a few hundred bytes; anything larger is not a speech array.
const MAX_HEADER: usize = 1 << 16;

#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// One string per element, trailing NULs removed (NumPy pads to the dtype's width).
    Str(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

#[derive(Debug, PartialEq)]
enum Dtype {
    F32,
    F64,
    /// `<U<n>`: n UTF-32 code units per element.
    Str(usize),
}

impl Dtype {
    fn parse(descr: &str) -> std::result::Result<Dtype, String> {
        match descr {
            "<f4" => Ok(Dtype::F32),
            "<f8" => Ok(Dtype::F64),
            _ => match descr.strip_prefix("<U").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Dtype::Str(n)),
                _ => Err(format!(
                    "dtype {descr:?} is not supported (expected <f4, <f8 or <U<n>)"
                )),
            },
        }
    }

    fn item_size(&self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::Str(n) => 4 * n,
        }
    }
}

/// The array in the `.npy` file at `path`; errors name the file and what is wrong with it.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bad = |msg: String| Error::format(path, msg);
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| bad("too short for a .npy file".into()))?;
    if &prefix[..6] != MAGIC {
        return Err(bad("not a .npy file (magic \\x93NUMPY missing)".into()));
    }
    let header_len = match prefix[6] {
        1 => {
            let mut n = [0u8; 2];
            file.read_exact(&mut n)
                .map_err(|_| bad("truncated header length".into()))?;
            u16::from_le_bytes(n) as usize
        }
        2 => {
            let mut n = [0u8; 4];
            file.read_exact(&mut n)
                .map_err(|_| bad("truncated header length".into()))?;
            u32::from_le_bytes(n) as usize
        }
        v => {
            return Err(bad(format!(
                "format version {v}.{} is not supported (1 or 2)",
                prefix[7]
            )))
        }
    };
    let data_start = 8 + if prefix[6] == 1 { 2 } else { 4 } + header_len as u64;
    if header_len > MAX_HEADER || data_start > file_len {
        return Err(bad(format!(
            "header length {header_len} does not fit the file ({file_len} bytes)"
        )));
    }
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header)
        .map_err(|_| bad("truncated header".into()))?;
    let header = std::str::from_utf8(&header).map_err(|_| bad("header is not text".into()))?;
    let (dtype, shape) =
        parse_header(header).map_err(|msg| bad(format!("header {}: {msg}", header.trim())))?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let data_len = file_len - data_start;
    if count.checked_mul(dtype.item_size()).map(|n| n as u64) != Some(data_len) {
        return Err(bad(format!(
            "shape {shape:?} of {} byte items needs {} data bytes, the file has {data_len}",
            dtype.item_size(),
            count.saturating_mul(dtype.item_size()),
        )));
    }
    let mut bytes = vec![0u8; data_len as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let data = match dtype {
        Dtype::F32 => NpyData::F32(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
        ),
        Dtype::F64 => NpyData::F64(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
        ),
        Dtype::Str(n) => NpyData::Str(
            bytes
                .chunks_exact(4 * n)
                .enumerate()
                .map(|(i, item)| {
                    utf32_string(item)
                        .ok_or_else(|| bad(format!("element {i} is not valid UTF-32")))
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(NpyArray { shape, data })
}

fn utf32_string(item: &[u8]) -> Option<String> {
    let units = item
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let text: Option<String> = units.map(char::from_u32).collect();
    Some(text?.trim_end_matches('\0').to_string())
}

/// The header is a Python dict literal: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 80), }`.
fn parse_header(header: &str) -> std::result::Result<(Dtype, Vec<usize>), String> {
    let body = header
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("is not a dict literal")?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).ok_or("expected a quoted key")?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or("expected ':' after a key")?
            .trim_start();
        let value_end = if after.starts_with('(') {
            after.find(')').ok_or("unclosed shape tuple")? + 1
        } else {
            after.find(',').unwrap_or(after.len())
        };
        let value = after[..value_end].trim();
        match key {
            "descr" => {
                descr = Some(
                    quoted(value)
                        .filter(|(_, r)| r.is_empty())
                        .ok_or("descr is not a string")?
                        .0,
                )
            }
            "fortran_order" => fortran = Some(value),
            "shape" => shape = Some(parse_shape(value)?),
            other => return Err(format!("unexpected key {other:?}")),
        }
        rest = after[value_end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    match fortran {
        Some("False") => {}
        Some("True") => return Err("Fortran order is not supported (save a C-order array)".into()),
        _ => return Err("fortran_order missing or not True/False".into()),
    }
    let dtype = Dtype::parse(descr.ok_or("descr missing")?)?;
    Ok((dtype, shape.ok_or("shape missing")?))
}

/// `'text'rest` -> (`text`, `rest`).
fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|&c| c == '\'' || c == '"')?;
    let end = s[1..].find(q)? + 1;
    Some((&s[1..end], &s[end + 1..]))
}

/// `(3, 80)`, `(7,)` or `()`.
fn parse_shape(value: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = value
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("shape {value} is not a tuple"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse()
                .map_err(|_| format!("shape dimension {d:?} is not a number"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` file as NumPy writes it (header padded to 64 bytes with a newline).
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("wgformer-npy-{}-{name}.npy", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_f32_matrix_and_strings() {
        let values: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0, 9.0, 10.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let path = write(
            "f4",
            &npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                &values,
            ),
        );
        let a = read_npy(&path).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(vec![1.5, -2.0, 0.25, 8.0, 9.0, 10.0]));

        let strings: Vec<u8> = ["<s", "A", "é"]
            .iter()
            .flat_map(|s| {
                let mut units: Vec<u32> = s.chars().map(u32::from).collect();
                units.resize(2, 0);
                units.into_iter().flat_map(u32::to_le_bytes)
            })
            .collect();
        let path = write(
            "u2",
            &npy(
                "{'descr': '<U2', 'fortran_order': False, 'shape': (3,), }",
                &strings,
            ),
        );
        assert_eq!(
            read_npy(&path).unwrap().data,
            NpyData::Str(vec!["<s".into(), "A".into(), "é".into()])
        );
    }

    #[test]
    fn shape_that_disagrees_with_the_file_length_is_refused_before_allocating() {
        let header =
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }";
        let msg = read_npy(write("huge", &npy(header, &[0; 16])))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("huge.npy") && msg.contains("the file has 16"),
            "{msg}"
        );
    }

    #[test]
    fn unsupported_files_get_clear_errors() {
        let cases = [
            (
                npy(
                    "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 4],
                ),
                "dtype \">f4\"",
            ),
            (
                npy(
                    "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 8],
                ),
                "not supported",
            ),
            (
                npy(
                    "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                    &[0; 4],
                ),
                "Fortran order",
            ),
            (
                npy("{'descr': '<f4', 'shape': (1,), }", &[0; 4]),
                "fortran_order missing",
            ),
            (b"PK\x03\x04 not numpy".to_vec(), "magic"),
            (b"\x93NU".to_vec(), "too short"),
        ];
        for (i, (bytes, expected)) in cases.into_iter().enumerate() {
            let msg = read_npy(write(&format!("bad{i}"), &bytes))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("bad{i}.npy")) && msg.contains(expected),
                "{msg}"
            );
        }
    }
}
