//! Audio front end for the speech recognizer: WAV reading, resampling to 16 kHz, log-mel
//! features, per-utterance or global normalisation, and SpecAugment. All of it runs on the CPU
//! as data preparation, like tokenisation for text; the model itself runs on the GPU.

mod features;

pub use features::Features;
