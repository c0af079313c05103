//! Models built from `nn` modules.

mod decoder_only;

pub use decoder_only::{DecoderOnlyConfig, DecoderOnlyTransformer, SelfAttentionDecoderLayer};
