//! Inference: load a trained model from its checkpoint directory and use it. A causal LM
//! (`clm`: load, sample a continuation), the speech recognizer (`Recognizer`: a WAV in, a
//! `Transcript` out; `Decoding`: how to decode, one description for every caller;
//! `transcribe`: batched decoding of prepared utterances; `speech_presence`: no transcript
//! for silence or noise) and its scoring on test sets (`asr_eval`, `error_rate`). Nothing here trains; the trainers use it to validate.

pub mod asr_eval;
pub mod clm;
pub mod decoding;
pub mod error_rate;
pub mod recognizer;
pub mod speech_presence;
pub mod transcribe;
pub mod whisper;

pub use asr_eval::{evaluate_checkpoint, test_report, Rates, TestReport};
pub use decoding::{Decoding, Method};
pub use error_rate::ErrorRates;
pub use recognizer::{
    CheckpointFile, Recognizer, RecognizerFiles, Transcript, Window, WINDOW_SECONDS,
};
pub use speech_presence::SpeechEvidence;
pub use whisper::{Timestamps, WhisperOptions, WhisperRecognizer, WhisperTimings};
