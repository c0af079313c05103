//! Speech data for the recogniser: transcript normalisation and its tokenizer, TSV manifests,
//! the synthetic corpus builder (TTS engines speaking Shakespeare and modern English), readers for LibriSpeech and
//! the CMU 11-785 HW4 layout, and the length-bucketing batcher that feeds the model.
//!
//! Audio decoding to features lives in `crate::audio`; `features.rs` runs it over a manifest
//! (with the training copies) on every core.

mod batcher;
mod dataset;
mod effects;
mod ensure;
mod features;
mod hw4;
mod librispeech;
mod manifest;
mod npy;
mod plan;
mod synth;
mod transcript;
mod voices;

pub use batcher::{AsrBatch, AsrBatcher};
pub use dataset::{load_utterances, Utterance};
pub use effects::Effects;
pub use ensure::ensure_corpus;
pub use features::{feature_pipeline, load_eval, load_train, manifest, mvn_stats, TrainUtterance};
pub use hw4::read_hw4;
pub use librispeech::{read_flac, read_librispeech};
pub use manifest::{
    read_manifest, without_transcripts_of, write_manifest, ManifestEntry, MANIFEST_HEADER,
};
pub use npy::{read_npy, NpyArray, NpyData};
pub use plan::{
    corpus_sentences, plan_corpus, plan_modern, utterance_id, CorpusSizes, ModernSizes,
    PlannedUtterance, Split,
};
pub use synth::{
    build_speech_corpus, check_tools, is_synthetic_split, synthesize, wav_path, write_manifests,
    EngineStats, ModernText, SynthReport, SAMPLE_RATE,
};
pub use transcript::{asr_tokenizer, normalize_transcript, TRANSCRIPT_ALPHABET};
pub use voices::{Engine, Voice, HELD_OUT};
