//! Models built from `nn` modules.

mod decoder_only;
mod encoder_decoder;
pub mod whisper;

pub use decoder_only::{DecoderOnlyConfig, DecoderOnlyTransformer};
pub use encoder_decoder::{Encoded, EncoderDecoderConfig, EncoderDecoderTransformer};
