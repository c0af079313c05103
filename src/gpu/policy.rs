//! Which kernels the ops launch on a device: one `KernelPolicy` per `Gpu`, read from the
//! environment when the device opens (`Gpu::new`) and replaced with `Gpu::set_policy` (tests
//! and benchmarks that compare kernels) or chosen up front with `Gpu::with_policy`.
//!
//! This module only names the choices; the ops say what each means and how they choose when
//! nobody forced a kernel (`ops::matmul`'s built-in rules and tuning cache, `ops::attention`,
//! the row kernels). It sits in `gpu` so that a device carries its policy without the device
//! layer importing `ops`.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The choices behind every kernel launch that has more than one kernel to pick from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelPolicy {
    /// Every matmul runs this variant (where it can run the product; see
    /// `ops::MatmulVariant`). None: the tuning cache or the built-in rule choose per shape.
    pub matmul: Option<MatmulVariant>,
    /// What the matmuls multiply: f32 operands, or operands rounded to f16 (f32 sums).
    pub matmul_precision: MatmulPrecision,
    /// Whether the packed matmul kernels read operands in place where their layout allows.
    pub matmul_packing: MatmulPacking,
    /// The attention `ops::attention_auto` runs (what `nn::MultiHeadAttention` calls).
    pub attention: AttentionPath,
    /// The shape of the row kernels (layer norm, cross-entropy's row loss). None: per adapter.
    pub row_width: Option<RowWidth>,
    /// Whether the tuning cache is read, and whether missing shape classes are timed.
    pub tuning: Tuning,
    /// The tuning cache file. None: no cache (the built-in rules, and trials kept in memory).
    pub tune_cache: Option<PathBuf>,
    /// Submit the recorded work after this many dispatches, so a GPU starts on the first
    /// part of a step while the CPU records the rest. None: per adapter (see
    /// `Gpu::submit_every`).
    pub submit_every: Option<usize>,
    /// Whether activations that backward passes keep (matmul inputs, attention's q, k, v and
    /// output, activation-function inputs) are stored as f16 (`ops::to_half`), half the
    /// bytes, as PyTorch's autocast keeps them; mixed-precision training turns it on.
    pub save_half: bool,
    /// Whether `ops::linear_act` applies the activation in the matmul's epilogue (one dispatch)
    /// or after it (two). None: GPUs fuse; CPU adapters do not, since lavapipe took ~13 s to
    /// compile the row-block kernel with the activation inlined into its stores, which a first
    /// run would wait for.
    pub fuse_activation: Option<bool>,
    /// Whether `ops::adamw_update_group` updates six parameters per dispatch (where the
    /// adapter binds the 25 storage buffers that takes) or one. None: GPUs group, for fewer
    /// dispatches; CPU adapters do not, since lavapipe ran the grouped kernel 3.3x slower
    /// (every load and store of it sits under the branch that picks the tensor's bindings).
    pub optimizer_groups: Option<bool>,
}

impl KernelPolicy {
    /// The policy the environment asks for, as `Gpu::new` opens a device with it:
    /// - `WGFORMER_MATMUL=<variant>` (`MatmulVariant::name`) forces a matmul kernel;
    /// - `WGFORMER_MATMUL_PRECISION=f32|half` (see `MatmulPrecision`);
    /// - `WGFORMER_MATMUL_PACKING=auto|always` (see `MatmulPacking`);
    /// - `WGFORMER_ATTENTION=fused|unfused|auto` picks the attention path;
    /// - `WGFORMER_ROW_WIDTH=narrow|wide` forces the row kernels' shape;
    /// - `WGFORMER_AUTOTUNE=off|cached|trials` (`0` = off, `1` = trials; default `cached`);
    /// - `WGFORMER_AUTOTUNE_CACHE=<file>` moves the tuning cache from its default
    ///   `$XDG_CACHE_HOME/wgformer/autotune.json` (else `~/.cache/wgformer/autotune.json`).
    /// - `WGFORMER_SUBMIT_EVERY=<dispatches>` (a positive integer) sets `submit_every`.
    /// - `WGFORMER_FUSE_ACTIVATION=1|0` sets `fuse_activation`.
    /// - `WGFORMER_OPTIMIZER_GROUPS=1|0` sets `optimizer_groups`.
    ///
    /// A value that names nothing is an error that lists what it may be.
    pub fn from_env() -> Result<KernelPolicy> {
        let variants = MatmulVariant::ALL.map(MatmulVariant::name).join(", ");
        Ok(KernelPolicy {
            matmul: parse_env("WGFORMER_MATMUL", &variants, MatmulVariant::from_name)?,
            matmul_precision: parse_env(
                "WGFORMER_MATMUL_PRECISION",
                "f32, half",
                MatmulPrecision::from_name,
            )?
            .unwrap_or_default(),
            matmul_packing: parse_env(
                "WGFORMER_MATMUL_PACKING",
                "auto, always",
                MatmulPacking::from_name,
            )?
            .unwrap_or_default(),
            attention: parse_env("WGFORMER_ATTENTION", "auto, fused, unfused", |v| {
                AttentionPath::from_name(v)
            })?
            .unwrap_or_default(),
            row_width: parse_env("WGFORMER_ROW_WIDTH", "narrow, wide", RowWidth::from_name)?,
            tuning: parse_env("WGFORMER_AUTOTUNE", "off (0), cached, trials (1)", |v| {
                Tuning::from_name(v)
            })?
            .unwrap_or_default(),
            tune_cache: std::env::var_os("WGFORMER_AUTOTUNE_CACHE")
                .map(PathBuf::from)
                .or_else(default_tune_cache),
            submit_every: parse_env(
                "WGFORMER_SUBMIT_EVERY",
                "a positive number of dispatches",
                dispatch_count,
            )?,
            save_half: false,
            fuse_activation: parse_env("WGFORMER_FUSE_ACTIVATION", "1, 0", on_off)?,
            optimizer_groups: parse_env("WGFORMER_OPTIMIZER_GROUPS", "1, 0", on_off)?,
        })
    }
}

/// `$XDG_CACHE_HOME/wgformer/autotune.json`, else `~/.cache/wgformer/autotune.json`.
pub fn default_tune_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wgformer").join("autotune.json"))
}

/// `1` on, `0` off.
fn on_off(value: &str) -> Option<bool> {
    match value {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// A positive number of dispatches.
fn dispatch_count(value: &str) -> Option<usize> {
    value.parse::<usize>().ok().filter(|&n| n > 0)
}

/// `var` parsed by `parse` (None when unset or empty); a value it does not know is an error
/// naming the `expected` ones.
fn parse_env<T>(
    var: &'static str,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    let Ok(value) = std::env::var(var) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match parse(value) {
        Some(v) => Ok(Some(v)),
        None => Err(Error::Environment {
            var,
            value: value.to_string(),
            expected: expected.to_string(),
        }),
    }
}

/// The kernels that can compute a matmul. All give the same result (up to f32 rounding);
/// they differ in speed on different adapters (benches/matmul.rs measures them). Every one
/// handles every transpose combination, batches, a shared B and any shape. The shaders are in
/// `shaders/matmul/`, the choice between them in `ops/matmul/variant.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// One output per invocation, operands read where they are.
    Naive,
    /// 16x16 tiles staged through workgroup memory, operands read where they are.
    Tiled,
    /// GPU style (the GPU default): operands packed first, 128x128 tiles staged through
    /// workgroup memory, 8x8 outputs per invocation; K split into slices summed afterwards
    /// where there are few output tiles.
    RegisterBlocked,
    /// CPU style (lavapipe): operands packed first, no workgroup memory and no barriers,
    /// 32 rows x 8 columns per invocation in registers.
    RowBlock,
    /// RowBlock with the rows of A shared across a subgroup by `subgroupBroadcast`. Needs
    /// subgroups of at least 8 lanes; elsewhere it runs as RowBlock.
    RowBlockSubgroup,
    /// One output per invocation as a vec4 dot product of contiguous rows: row-major A
    /// against a transposed B (a Linear layer's [out, in] weight) with K a multiple of 4.
    /// For skinny products (one token at a time); elsewhere it runs as Naive.
    Dot4,
    /// Dot4 with the row of A shared across a subgroup by `subgroupBroadcast`. Needs N and
    /// the workgroup to be whole subgroups of at least 8 lanes; elsewhere it runs as Dot4.
    Dot4Subgroup,
    /// Tensor cores: operands packed as f16, 64x64 tiles of 16x16 cooperative matrices per
    /// workgroup, f32 accumulators. Always rounds A and B to f16, so it runs only where it is
    /// asked for or the policy's precision is `Half`. Needs 16x16 f16 cooperative matrices
    /// (`Gpu::has_coop_matrix`) and subgroups of 32 lanes; elsewhere it runs as
    /// RegisterBlocked, in the policy's precision.
    CoopMatrix,
}

impl MatmulVariant {
    /// The variants that compute in f32 whatever the precision asks (A and B as stored),
    /// the ones the tuning trials time.
    pub const ALL: [MatmulVariant; 7] = [
        MatmulVariant::Naive,
        MatmulVariant::Dot4,
        MatmulVariant::Dot4Subgroup,
        MatmulVariant::Tiled,
        MatmulVariant::RegisterBlocked,
        MatmulVariant::RowBlock,
        MatmulVariant::RowBlockSubgroup,
    ];

    /// The name used by `WGFORMER_MATMUL` and the tuning cache.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::RegisterBlocked => "register",
            MatmulVariant::RowBlock => "rowblock",
            MatmulVariant::RowBlockSubgroup => "rowblock_subgroup",
            MatmulVariant::Dot4 => "dot4",
            MatmulVariant::Dot4Subgroup => "dot4_subgroup",
            MatmulVariant::CoopMatrix => "coop_matrix",
        }
    }

    pub fn from_name(name: &str) -> Option<MatmulVariant> {
        Self::ALL
            .into_iter()
            .chain([MatmulVariant::CoopMatrix])
            .find(|v| v.name() == name)
    }
}

/// What a matmul multiplies. `Half` is mixed precision as PyTorch's autocast does it for
/// matmuls: A and B are rounded to f16 as they are packed for the tiled kernels (half the
/// bytes to read, and the tensor cores' input type), every sum is f32 and the result is f32.
/// It applies where the adapter has shader-f16 (or cooperative matrices) and to the packed
/// kernels only: small or skinny products that take the naive or Dot4 kernels stay f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulPrecision {
    #[default]
    F32,
    Half,
}

impl MatmulPrecision {
    pub fn from_name(name: &str) -> Option<MatmulPrecision> {
        match name {
            "f32" | "fp32" => Some(MatmulPrecision::F32),
            "half" | "f16" | "fp16" => Some(MatmulPrecision::Half),
            _ => None,
        }
    }
}

/// Where the packed matmul kernels (register-blocked, row-block) read their operands. Packing
/// copies an operand into zero-padded panels first (one more dispatch and one more pass over
/// it) so that the product's loads need no bounds or layout logic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulPacking {
    /// An operand is read where it is stored when its layout allows (no K padding, whole
    /// vec4 along the loaded dimension; `ops::matmul`'s rules say where), else packed.
    #[default]
    Auto,
    /// Every operand is packed: what the in-place reads are measured against.
    Always,
}

impl MatmulPacking {
    pub fn from_name(name: &str) -> Option<MatmulPacking> {
        match name {
            "auto" => Some(MatmulPacking::Auto),
            "always" => Some(MatmulPacking::Always),
            _ => None,
        }
    }
}

/// Which attention `ops::attention_auto` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttentionPath {
    /// The faster of the two measured on this kind of adapter for the head dim and length
    /// (see `ops::attention_auto`).
    #[default]
    Auto,
    /// The fused kernels (`ops::attention`) wherever the head dim is compiled.
    Fused,
    /// The unfused path (`ops::attention_unfused`).
    Unfused,
}

impl AttentionPath {
    pub fn from_name(name: &str) -> Option<AttentionPath> {
        match name {
            "auto" => Some(AttentionPath::Auto),
            "fused" => Some(AttentionPath::Fused),
            "unfused" => Some(AttentionPath::Unfused),
            _ => None,
        }
    }
}

/// The two shapes of the row kernels (layer norm, cross-entropy's row loss).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowWidth {
    /// One 8-lane SIMD chunk per row: the CPU-adapter default.
    Narrow,
    /// A wide workgroup per row (64 lanes) reduced in workgroup memory: the GPU default.
    Wide,
}

impl RowWidth {
    pub fn from_name(name: &str) -> Option<RowWidth> {
        match name {
            "narrow" => Some(RowWidth::Narrow),
            "wide" => Some(RowWidth::Wide),
            _ => None,
        }
    }
}

/// How kernel choices use the tuning cache (`examples/tune.rs` fills it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tuning {
    /// The built-in rules only; the cache is not read.
    Off,
    /// A choice stored in the cache for this adapter and shape class where there is one,
    /// else the built-in rule. Never times anything.
    #[default]
    Cached,
    /// As `Cached`, and a shape class missing from the cache is timed on the spot (every
    /// candidate kernel, on scratch data) and the fastest stored: the explicit tuning step.
    Trials,
}

impl Tuning {
    pub fn from_name(name: &str) -> Option<Tuning> {
        match name {
            "off" | "0" | "false" => Some(Tuning::Off),
            "cached" => Some(Tuning::Cached),
            "trials" | "1" | "true" => Some(Tuning::Trials),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_matmul_variant_name_reads_back() {
        for v in MatmulVariant::ALL
            .into_iter()
            .chain([MatmulVariant::CoopMatrix])
        {
            assert_eq!(MatmulVariant::from_name(v.name()), Some(v));
        }
        assert_eq!(MatmulVariant::from_name("fastest"), None);
    }

    #[test]
    fn submit_every_takes_a_positive_count_only() {
        assert_eq!(dispatch_count("128"), Some(128));
        for bad in ["0", "-1", "many", "1.5"] {
            assert_eq!(dispatch_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_unknown_environment_value_names_what_it_may_be() {
        let unset = parse_env(
            "WGFORMER_POLICY_TEST_UNSET",
            "narrow, wide",
            RowWidth::from_name,
        );
        assert_eq!(unset.unwrap(), None);
        std::env::set_var("WGFORMER_POLICY_TEST_WIDTH", "medium");
        let e = parse_env(
            "WGFORMER_POLICY_TEST_WIDTH",
            "narrow, wide",
            RowWidth::from_name,
        );
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("medium") && msg.contains("narrow, wide"),
            "{msg}"
        );
    }
}
