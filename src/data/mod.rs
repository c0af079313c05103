//! Text data for the causal LM: tokenizers (character level and BPE), the corpus and its
//! train/val/test split, and the batcher that cuts token streams into padded next-token windows.
//! `asr`: the speech recognizer's data (transcripts, manifests, corpus builder, readers, batcher).

pub mod asr;
mod batches;
mod bpe;
mod byte_bpe;
mod char_tokenizer;
mod corpus;
mod prepare;
mod tokenizer;
mod tokenizer_file;

pub use batches::{Batch, Batcher, Stream};
pub use bpe::BpeTokenizer;
pub use byte_bpe::ByteBpe;
pub use char_tokenizer::CharTokenizer;
pub use corpus::{read_text, Corpus, TokenSplits};
pub use prepare::{build_tokenizer, prepare_text};
pub use tokenizer::{Tokenizer, EOS, NUM_SPECIAL, PAD, SOS, SPECIAL_TOKENS, UNK};
