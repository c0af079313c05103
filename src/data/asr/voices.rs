//! The synthetic speakers: which TTS engines and voices exist, how one is drawn from a seed, and
//! the command line that makes it speak. Held-out voices (`HELD_OUT`) never speak training,
//! validation or test utterances; they speak only the `test_voices` split.

use crate::rng::SplitMix64;
use std::fmt;
use std::path::Path;
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Engine {
    EspeakNg,
    Flite,
    Festival,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::EspeakNg, Engine::Flite, Engine::Festival];

    pub fn name(self) -> &'static str {
        match self {
            Engine::EspeakNg => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Festival => "festival",
        }
    }

    /// The program run to synthesise (festival's is its `text2wave` script).
    pub fn program(self) -> &'static str {
        match self {
            Engine::EspeakNg => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Festival => "text2wave",
        }
    }
}

/// One synthetic speaker. `variant`, `speed` and `pitch` apply to espeak-ng only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voice {
    pub engine: Engine,
    /// espeak-ng language/accent, flite voice or festival voice name.
    pub name: &'static str,
    pub variant: Option<&'static str>,
    /// Words per minute (`espeak-ng -s`).
    pub speed: u32,
    /// 0-99 (`espeak-ng -p`).
    pub pitch: u32,
}

/// Accents listed by `espeak-ng --voices=en` on Debian 13 (espeak-ng 1.52).
const ESPEAK_ACCENTS: [&str; 8] = [
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en-gb-scotland",
];
const ESPEAK_VARIANTS: [&str; 11] = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
];
/// espeak-ng's named variants (`espeak-ng --voices=variant`) that still sound like a person
/// talking (no robots, croaks or whispers); with the Klatt synthesiser variants they speak the
/// modern-text training split only, so the older splits keep their voices.
const ESPEAK_WIDE_VARIANTS: [&str; 40] = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt",
    "klatt2", "klatt3", "klatt4", "klatt6", "Alex", "Alicia", "Andrea", "Andy", "Annie", "aunty",
    "belinda", "benjamin", "caleb", "david", "edward", "Gene", "grandma", "grandpa", "Lee",
    "linda", "max", "Michael", "paul", "quincy", "steph", "travis",
];
const ESPEAK_SPEED: (u32, u32) = (130, 190);
const ESPEAK_PITCH: (u32, u32) = (30, 70);
const FLITE_VOICES: [&str; 4] = ["awb", "rms", "slt", "kal16"];
/// Installed by festvox-kallpc16k, festvox-kdlpc16k and festvox-us-slt-hts.
const FESTIVAL_VOICES: [&str; 3] = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"];

/// Voices kept out of training: one flite speaker and one espeak-ng accent (every variant).
pub const HELD_OUT: [(Engine, &str); 2] =
    [(Engine::Flite, "rms"), (Engine::EspeakNg, "en-gb-scotland")];

/// Share of utterances per engine, out of 8: espeak-ng gives most of the speaker variety
/// (accents x variants x speed x pitch) and is the fastest.
const ENGINE_WEIGHTS: [(Engine, u64); 3] = [
    (Engine::EspeakNg, 4),
    (Engine::Flite, 2),
    (Engine::Festival, 2),
];

pub fn is_held_out(engine: Engine, name: &str) -> bool {
    HELD_OUT.contains(&(engine, name))
}

fn pick<T: Copy>(rng: &mut SplitMix64, items: &[T]) -> T {
    items[(rng.next_u64() % items.len() as u64) as usize]
}

fn in_range(rng: &mut SplitMix64, (lo, hi): (u32, u32)) -> u32 {
    lo + (rng.next_u64() % u64::from(hi - lo + 1)) as u32
}

impl Voice {
    /// Draw a voice: from the training pool, or (`held_out`) from the held-out voices only.
    pub fn draw(rng: &mut SplitMix64, held_out: bool) -> Voice {
        Voice::draw_from(rng, held_out, &ESPEAK_VARIANTS)
    }

    /// Draw a training voice, espeak-ng's variant from its wider list (`ESPEAK_WIDE_VARIANTS`).
    pub fn draw_wide(rng: &mut SplitMix64) -> Voice {
        Voice::draw_from(rng, false, &ESPEAK_WIDE_VARIANTS)
    }

    fn draw_from(rng: &mut SplitMix64, held_out: bool, variants: &[&'static str]) -> Voice {
        let engine = if held_out {
            pick(rng, &HELD_OUT).0
        } else {
            let total: u64 = ENGINE_WEIGHTS.iter().map(|w| w.1).sum();
            let mut r = rng.next_u64() % total;
            let mut chosen = ENGINE_WEIGHTS[0].0;
            for (engine, weight) in ENGINE_WEIGHTS {
                if r < weight {
                    chosen = engine;
                    break;
                }
                r -= weight;
            }
            chosen
        };
        let names: &[&'static str] = match engine {
            Engine::EspeakNg => &ESPEAK_ACCENTS,
            Engine::Flite => &FLITE_VOICES,
            Engine::Festival => &FESTIVAL_VOICES,
        };
        let names: Vec<&'static str> = names
            .iter()
            .copied()
            .filter(|n| is_held_out(engine, n) == held_out)
            .collect();
        let name = pick(rng, &names);
        if engine != Engine::EspeakNg {
            return Voice {
                engine,
                name,
                variant: None,
                speed: 0,
                pitch: 0,
            };
        }
        Voice {
            engine,
            name,
            variant: Some(pick(rng, variants)),
            speed: in_range(rng, ESPEAK_SPEED),
            pitch: in_range(rng, ESPEAK_PITCH),
        }
    }

    pub fn is_held_out(&self) -> bool {
        is_held_out(self.engine, self.name)
    }

    /// The command that speaks `text` into the WAV file `wav` (at the engine's own rate).
    /// `text_file` is a scratch path festival reads the text from.
    pub fn command(&self, text: &str, wav: &Path, text_file: &Path) -> Command {
        let mut cmd = Command::new(self.engine.program());
        match self.engine {
            Engine::EspeakNg => {
                let voice = match self.variant {
                    Some(v) => format!("{}+{v}", self.name),
                    None => self.name.to_string(),
                };
                cmd.arg("-v").arg(voice);
                cmd.arg("-s").arg(self.speed.to_string());
                cmd.arg("-p").arg(self.pitch.to_string());
                cmd.arg("-w").arg(wav).arg(text);
            }
            Engine::Flite => {
                cmd.arg("-voice")
                    .arg(self.name)
                    .arg("-t")
                    .arg(text)
                    .arg("-o")
                    .arg(wav);
            }
            Engine::Festival => {
                cmd.arg("-eval").arg(format!("(voice_{})", self.name));
                cmd.arg("-o").arg(wav).arg(text_file);
            }
        }
        cmd
    }
}

/// The manifest's voice column: `espeak-ng:en-us+m3:s150:p40`, `flite:slt`, `festival:kal_diphone`.
impl fmt::Display for Voice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.engine.name(), self.name)?;
        if let Some(variant) = self.variant {
            write!(f, "+{variant}:s{}:p{}", self.speed, self.pitch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn held_out_draws_use_only_held_out_voices_and_training_draws_never_do() {
        let mut rng = SplitMix64::new(7);
        let train: Vec<Voice> = (0..2000).map(|_| Voice::draw(&mut rng, false)).collect();
        let held: Vec<Voice> = (0..200).map(|_| Voice::draw(&mut rng, true)).collect();
        assert!(train.iter().all(|v| !v.is_held_out()));
        assert!(held.iter().all(|v| v.is_held_out()));
        for engine in Engine::ALL {
            assert!(
                train.iter().any(|v| v.engine == engine),
                "{engine:?} never drawn"
            );
        }
        for (engine, name) in HELD_OUT {
            assert!(held.iter().any(|v| v.engine == engine && v.name == name));
        }
    }

    #[test]
    fn wide_draws_are_training_voices_with_more_espeak_variants() {
        let mut rng = SplitMix64::new(5);
        let wide: Vec<Voice> = (0..3000).map(|_| Voice::draw_wide(&mut rng)).collect();
        assert!(wide.iter().all(|v| !v.is_held_out()));
        let variants: HashSet<&str> = wide.iter().filter_map(|v| v.variant).collect();
        assert_eq!(variants.len(), ESPEAK_WIDE_VARIANTS.len());
    }

    #[test]
    fn espeak_draws_stay_in_the_speed_and_pitch_ranges() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..1000 {
            let v = Voice::draw(&mut rng, false);
            if v.engine == Engine::EspeakNg {
                assert!(
                    (130..=190).contains(&v.speed) && (30..=70).contains(&v.pitch),
                    "{v}"
                );
                assert!(v.variant.is_some());
            }
        }
    }

    #[test]
    fn voice_names_its_engine_and_settings() {
        let v = Voice {
            engine: Engine::EspeakNg,
            name: "en-us",
            variant: Some("m3"),
            speed: 150,
            pitch: 40,
        };
        assert_eq!(v.to_string(), "espeak-ng:en-us+m3:s150:p40");
        let v = Voice {
            engine: Engine::Festival,
            name: "kal_diphone",
            variant: None,
            speed: 0,
            pitch: 0,
        };
        assert_eq!(v.to_string(), "festival:kal_diphone");
    }
}
