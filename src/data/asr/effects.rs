//! Voice transformations applied by sox when an utterance is converted to 16 kHz: a pitch shift
//! (which moves the formants too, so one TTS voice becomes several speakers), a room's
//! reverberation, and a telephone band. Drawn per utterance from the plan's seed, so a rebuilt
//! corpus is byte for byte the same; sox's `pitch`, `reverb` and `sinc` are deterministic.
//!
//! They widen what the training voices sound like. Held-out splits are spoken untransformed so
//! that their scores stay comparable with earlier models.

use crate::rng::SplitMix64;
use std::fmt;

/// Per-utterance sox effects; the default (all `None` / `false`) leaves the voice as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Pitch shift in cents (`sox pitch`), about +-4 semitones.
    pub pitch_cents: Option<i32>,
    /// Reverberance in percent (`sox reverb`), a small to medium room.
    pub reverb: Option<u32>,
    /// Telephone band, 300-3400 Hz (`sox sinc 300-3400`).
    pub telephone: bool,
}

/// Chance of each effect, out of 100.
const PITCH_CHANCE: u64 = 60;
const REVERB_CHANCE: u64 = 30;
const TELEPHONE_CHANCE: u64 = 10;
const PITCH_CENTS: (i32, i32) = (-400, 400);
const REVERB_PERCENT: (u32, u32) = (10, 60);

fn chance(rng: &mut SplitMix64, percent: u64) -> bool {
    rng.next_u64() % 100 < percent
}

fn in_range(rng: &mut SplitMix64, (lo, hi): (i64, i64)) -> i64 {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64
}

impl Effects {
    /// A draw: each effect independently, with its chance. Consumes a fixed number of random
    /// numbers, so the draws after it do not depend on which effects came out.
    pub fn draw(rng: &mut SplitMix64) -> Effects {
        let pitch = chance(rng, PITCH_CHANCE);
        let cents = in_range(rng, (PITCH_CENTS.0.into(), PITCH_CENTS.1.into())) as i32;
        let reverb = chance(rng, REVERB_CHANCE);
        let percent = in_range(rng, (REVERB_PERCENT.0.into(), REVERB_PERCENT.1.into())) as u32;
        let telephone = chance(rng, TELEPHONE_CHANCE);
        Effects {
            pitch_cents: pitch.then_some(cents),
            reverb: reverb.then_some(percent),
            telephone,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Effects::default()
    }

    /// The effects part of a sox command line (after the output file).
    pub fn sox_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(cents) = self.pitch_cents {
            args.extend(["pitch".to_string(), cents.to_string()]);
        }
        if let Some(percent) = self.reverb {
            args.extend(["reverb".to_string(), percent.to_string()]);
        }
        if self.telephone {
            args.extend(["sinc".to_string(), "300-3400".to_string()]);
        }
        args
    }
}

/// The manifest's form, after the voice: `pitch+200,reverb40,telephone` (empty for none).
impl fmt::Display for Effects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(cents) = self.pitch_cents {
            parts.push(format!("pitch{cents:+}"));
        }
        if let Some(percent) = self.reverb {
            parts.push(format!("reverb{percent}"));
        }
        if self.telephone {
            parts.push("telephone".to_string());
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_every_effect_in_range_and_some_none() {
        let mut rng = SplitMix64::new(11);
        let draws: Vec<Effects> = (0..1000).map(|_| Effects::draw(&mut rng)).collect();
        assert!(draws.iter().any(|e| e.is_none()));
        assert!(draws.iter().any(|e| e.telephone));
        assert!(draws
            .iter()
            .filter_map(|e| e.reverb)
            .all(|r| (10..=60).contains(&r)));
        let cents: Vec<i32> = draws.iter().filter_map(|e| e.pitch_cents).collect();
        assert!(cents.iter().all(|c| (-400..=400).contains(c)));
        assert!(cents.iter().any(|&c| c < -200) && cents.iter().any(|&c| c > 200));
        let pitched = cents.len() as f64 / 1000.0;
        assert!((0.5..0.7).contains(&pitched), "{pitched}");
    }

    #[test]
    fn effects_name_themselves_and_their_sox_arguments() {
        let e = Effects {
            pitch_cents: Some(-250),
            reverb: Some(40),
            telephone: true,
        };
        assert_eq!(e.to_string(), "pitch-250,reverb40,telephone");
        assert_eq!(
            e.sox_args(),
            ["pitch", "-250", "reverb", "40", "sinc", "300-3400"]
        );
        assert_eq!(Effects::default().to_string(), "");
        assert!(Effects::default().sox_args().is_empty());
    }
}
