//! The YAML plumbing both configs share: parsing with line/column errors, `key.path=value`
//! overrides that know every key, and float fields that also accept numeric strings.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml::Value;

/// Parse YAML text into `T`. An empty (or comment-only) document is refused: it is more
/// likely a mistake than a wish for every default, which `{}` says explicitly.
pub fn parse<T: DeserializeOwned + Default>(text: &str, origin: &str) -> Result<T> {
    let tree: Value = serde_yaml::from_str(text).map_err(|e| Error::format(origin, e))?;
    if tree.is_null() {
        return Err(Error::format(
            origin,
            "holds no settings (it is empty or only comments); write `{}` to use every default, \
             or start from a config in configs/",
        ));
    }
    // Parsed from the text rather than from `tree` so errors keep line and column.
    serde_yaml::from_str(text).map_err(|e| Error::format(origin, e))
}

/// `value` with one `key.path=value` override applied (the value in YAML syntax: `2`, `1e-4`,
/// `bpe`, `[0.9, 0.95]`). Unknown keys are errors that list the known ones.
pub fn set<T: Serialize + DeserializeOwned>(value: &T, spec: &str, origin: &str) -> Result<T> {
    let fail = |msg: String| Error::format(origin, format!("--set {spec}: {msg}"));
    let (key, text) = spec
        .split_once('=')
        .ok_or_else(|| fail("expected key.path=value".to_string()))?;
    let key = key.trim();
    let new: Value =
        serde_yaml::from_str(text).map_err(|e| fail(format!("the value is not YAML: {e}")))?;
    // Overrides edit the value tree of the whole config (defaults included), so every key
    // exists there and a missing one is a misspelling.
    let mut tree = serde_yaml::to_value(value).map_err(|e| fail(e.to_string()))?;
    let mut node = &mut tree;
    let mut walked = String::new();
    for part in key.split('.') {
        let Value::Mapping(map) = node else {
            return Err(fail(format!("`{walked}` is a value, not a section")));
        };
        let known: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
        let where_ = if walked.is_empty() {
            "the config".to_string()
        } else {
            format!("`{walked}`")
        };
        if !known.contains(&part) {
            return Err(fail(format!(
                "unknown key `{part}` in {where_} (known keys: {})",
                known.join(", ")
            )));
        }
        node = map.get_mut(part).expect("checked above");
        walked = if walked.is_empty() {
            part.to_string()
        } else {
            format!("{walked}.{part}")
        };
    }
    *node = new;
    serde_yaml::from_value(tree).map_err(|e| fail(format!("{key}: {e}")))
}

/// Float fields that also accept a string holding a number (`"1e-4"`, or `1e-4` read under
/// YAML 1.1 rules).
pub mod float {
    use serde::de::{self, Deserializer, Unexpected, Visitor};
    use serde::Deserialize;
    use std::fmt;

    struct F64;

    impl Visitor<'_> for F64 {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
        }
    }

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(F64)
    }

    #[derive(Deserialize)]
    struct Num(#[serde(deserialize_with = "f64")] f64);

    pub fn pair<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 2], D::Error> {
        let [Num(a), Num(b)] = <[Num; 2]>::deserialize(d)?;
        Ok([a, b])
    }
}
