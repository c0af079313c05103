//! One error type for the whole crate. Every variant carries what a user needs to act on it:
//! the adapter, the shape, the shader file and line, the limit that was hit.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found (backends tried: {backends}). On Linux without a GPU install \
         Mesa's CPU Vulkan driver: `sudo apt-get install -y mesa-vulkan-drivers libvulkan1`"
    )]
    NoAdapter { backends: String },

    #[error("WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("{var}={value:?} is not one of: {expected}")]
    Environment {
        var: &'static str,
        value: String,
        expected: String,
    },

    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    Device { adapter: String, reason: String },

    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },

    #[error("shader {file}, entry {entry}: {msg}")]
    Shader {
        file: &'static str,
        entry: &'static str,
        msg: String,
    },

    #[error("{what} needs {bytes} bytes but the adapter's {limit_name} is {limit} bytes")]
    TooLarge {
        what: String,
        bytes: u64,
        limit_name: &'static str,
        limit: u64,
    },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Training stopped on request (Ctrl-C) after saving its state.
    #[error(
        "interrupted at step {step}; training state saved in {} (continue with --resume)",
        checkpoint.display()
    )]
    Interrupted {
        step: usize,
        checkpoint: std::path::PathBuf,
    },
    /// A training step whose loss or gradient norm was NaN or infinite; its update was not
    /// applied, so the weights in memory and every saved checkpoint are the last good ones.
    #[error(
        "step {step}: the loss is {loss} and the gradient norm {grad_norm} ({in_a_row} such \
         step(s) in a row); the update was not applied and the last good checkpoint is kept. \
         Lower optimizer.lr, set train.max_grad_norm, or set train.on_non_finite: skip"
    )]
    NonFinite {
        step: usize,
        loss: f32,
        grad_norm: f32,
        in_a_row: usize,
    },
    /// A file that exists but does not hold what was expected (checkpoint, tokenizer, WAV...).
    #[error("{file}: {msg}")]
    Format { file: String, msg: String },
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn format(file: impl AsRef<std::path::Path>, msg: impl fmt::Display) -> Self {
        Error::Format {
            file: file.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error for op `op`; `msg` says what was expected and what came.
    pub fn shape(op: &'static str, msg: impl fmt::Display) -> Self {
        Error::Shape {
            op,
            msg: msg.to_string(),
        }
    }
}
