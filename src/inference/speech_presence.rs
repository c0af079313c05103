//! Is there speech in a window of audio? Three cheap pieces of evidence must all agree:
//! - loudness: under `SILENCE_DB` is silence;
//! - modulation: speech comes in syllables and words with gaps between them, so its quiet
//!   frames lie well below its loud ones; steady noise (white, pink, fan, hum) varies by a dB
//!   or two (`MIN_RANGE_DB`);
//! - the model's own CTC head (posteriors from the GPU once per window), which puts nearly all
//!   its mass on blank for silence, hum and steady tones (`MIN_LETTERS`).
//!
//! Steady noise needs the second: the recognizer, trained on speech alone, hears 13 letters a
//! second in white noise at -20 dBFS, as many as in speech. Thresholds are calibrated on the
//! synthetic test sets and real recordings (README, `examples/asr_robustness.rs no-speech`).

use crate::audio::Levels;
use crate::decode::log_softmax;

/// Quieter than this (the loud frames' level, dB relative to full scale) is silence whatever
/// the model says.
pub const SILENCE_DB: f32 = -60.0;

/// Quiet frames less than this far below the loud ones: steady noise, no speech. White, pink
/// and brown noise stay under 3.5 dB; speech with white noise 5 dB under it stays above 8 dB.
pub const MIN_RANGE_DB: f32 = 5.0;

/// Fewer expected letters than this per window: the CTC head hears no speech.
pub const MIN_LETTERS: f32 = 2.0;

/// What one window offers as evidence of speech.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeechEvidence {
    /// `Levels::speech_db` of the window.
    pub speech_db: f32,
    /// How far its quiet frames lie below its loud ones (`Levels::range_db`): speech comes in
    /// syllables and words with gaps between them, steady noise does not.
    pub range_db: f32,
    /// Length of the window.
    pub seconds: f32,
    /// The letters the CTC head expects in the window: the posterior mass of letter classes
    /// (not blank, space, apostrophe or the special tokens) summed over frames.
    pub letters: f32,
}

impl SpeechEvidence {
    /// `ctc_logits`: [frames, vocab] of the window; `is_letter`: which classes are letters.
    pub fn of(samples: &[f32], ctc_logits: &[f32], vocab: usize, is_letter: &[bool]) -> Self {
        let letters = ctc_logits
            .chunks(vocab)
            .map(|row| {
                log_softmax(row)
                    .iter()
                    .zip(is_letter)
                    .filter(|(_, &l)| l)
                    .map(|(lp, _)| lp.exp())
                    .sum::<f64>()
            })
            .sum::<f64>() as f32;
        let levels = Levels::of(samples);
        SpeechEvidence {
            speech_db: levels.speech_db,
            range_db: levels.range_db(),
            seconds: samples.len() as f32 / 16_000.0,
            letters,
        }
    }

    pub fn is_speech(&self) -> bool {
        sounds_like_speech(self.speech_db, self.range_db) && self.letters >= MIN_LETTERS
    }
}

/// The evidence of the levels alone (no model): loud enough, and modulated as speech is.
pub fn sounds_like_speech(speech_db: f32, range_db: f32) -> bool {
    speech_db >= SILENCE_DB && range_db >= MIN_RANGE_DB
}
