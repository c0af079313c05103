//! Audio front end for the speech recognizer: WAV reading, resampling to 16 kHz, log-mel
//! features, per-utterance or global normalisation, augmentation (speed, noise,
//! SpecAugment), and frame levels that find pauses to cut long audio at. All of it runs on the CPU as data preparation, like tokenisation for text;
//! the model itself runs on the GPU.

mod augment;
mod features;
mod log_mel;
mod normalize;
mod pipeline;
mod resample;
mod segment;
mod wav;
mod whisper_mel;

pub use augment::{
    add_noise, narrowband, requantize, spec_augment, speed_perturb, SpecAugmentConfig,
};
pub use features::Features;
pub use log_mel::{log_mel, LogMel, LogMelConfig};
pub use normalize::{cepstral_mvn, MvnAccumulator, MvnStats, Normalization};
pub use pipeline::FeaturePipeline;
pub use resample::{load_16k, resample, TARGET_RATE};
pub use segment::{windows, Levels};
pub use wav::{read_wav, read_wav_limited, wav_from_bytes, write_wav_16k, Waveform, MAX_SECONDS};
pub use whisper_mel::{mel_filters, whisper_log_mel, WhisperMel, WINDOW_FRAMES};
