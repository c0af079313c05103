//! The CMU 11-785 HW4P2 layout: `<dir>/fbank/*.npy` holds float features `[T, bins]` and
//! `<dir>/text/*.npy` the transcript as a 1-D array of strings, one character (or token) per
//! element, possibly framed by `<sos>` / `<eos>`. The two are paired by file name.

use super::npy::{read_npy, NpyData};
use super::transcript::normalize_transcript;
use crate::audio::Features;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Sentence markers some HW4 releases store inside the transcript arrays.
const MARKERS: [&str; 2] = ["<sos>", "<eos>"];

/// Every (features, normalised transcript) pair of a HW4 folder, in file-name order.
pub fn read_hw4(dir: impl AsRef<Path>) -> Result<Vec<(Features, String)>> {
    let dir = dir.as_ref();
    let fbanks = npy_files(&dir.join("fbank"))?;
    let texts = npy_files(&dir.join("text"))?;
    if fbanks.len() != texts.len() {
        return Err(Error::format(
            dir,
            format!(
                "{} files in fbank/ but {} in text/",
                fbanks.len(),
                texts.len()
            ),
        ));
    }
    let mut pairs = Vec::with_capacity(fbanks.len());
    let mut bins = None;
    for (fbank, text) in fbanks.iter().zip(&texts) {
        if fbank.file_name() != text.file_name() {
            return Err(Error::format(
                text,
                format!(
                    "pairs with {} by sorted order, but the file names differ",
                    fbank.display()
                ),
            ));
        }
        let features = read_features(fbank)?;
        if *bins.get_or_insert(features.bins) != features.bins {
            return Err(Error::format(
                fbank,
                format!(
                    "{} feature bins, the files before it have {}",
                    features.bins,
                    bins.unwrap_or(0)
                ),
            ));
        }
        pairs.push((features, read_transcript(text)?));
    }
    Ok(pairs)
}

/// The `.npy` files directly in `dir`, sorted by name.
fn npy_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "npy") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_features(path: &Path) -> Result<Features> {
    let array = read_npy(path)?;
    let [frames, bins] = array.shape[..] else {
        return Err(Error::format(
            path,
            format!("shape {:?}, expected [frames, bins]", array.shape),
        ));
    };
    let data = match array.data {
        NpyData::F32(v) => v,
        NpyData::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        NpyData::Str(_) => {
            return Err(Error::format(
                path,
                "holds strings, expected float features",
            ))
        }
    };
    Ok(Features::new(frames, bins, data))
}

fn read_transcript(path: &Path) -> Result<String> {
    let array = read_npy(path)?;
    let (NpyData::Str(symbols), [_]) = (array.data, &array.shape[..]) else {
        return Err(Error::format(path, "expected a 1-D array of strings"));
    };
    let text: String = symbols
        .iter()
        .filter(|s| !MARKERS.contains(&s.as_str()))
        .map(String::as_str)
        .collect();
    Ok(normalize_transcript(&text))
}
