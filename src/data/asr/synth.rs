//! Running a corpus plan: each utterance is spoken by its TTS engine, converted to 16 kHz mono
//! 16-bit WAV by `sox -D` (no dither, so the bytes are the same on every run), and renamed into
//! `<out>/wav/<split>/<id>.wav` only when complete; the utterance's sox effects (pitch, reverb,
//! telephone band) are applied in the same conversion. An existing WAV is skipped, so an interrupted
//! build resumes where it stopped. Manifests `<out>/<split>.tsv` are written last.

use super::manifest::{write_manifest, ManifestEntry};
use super::plan::{
    corpus_sentences, plan_corpus, plan_modern, utterance_id, CorpusSizes, ModernSizes,
    PlannedUtterance, Split,
};
use super::voices::Engine;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub const SAMPLE_RATE: u32 = 16_000;

/// Utterances one engine made in this run and the wall time its jobs took, added up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub utterances: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SynthReport {
    pub made: BTreeMap<Engine, EngineStats>,
    /// Utterances whose WAV already existed.
    pub skipped: usize,
}

/// Where utterance `id` of `split` lives under the corpus folder `out`.
pub fn wav_path(out: &Path, split: Split, id: &str) -> PathBuf {
    out.join("wav").join(split.name()).join(format!("{id}.wav"))
}

/// Whether `entries`, a manifest of `split` read from the corpus folder `out`, lists exactly
/// the utterances `build_speech_corpus` writes there, in its order. Such a split can grow in
/// place with a larger size and the same seed: the plan cuts the held-out pools first and
/// draws each split's voices from its own stream, so the existing utterances keep their
/// sentences and voices, and their WAVs are skipped.
pub fn is_synthetic_split(out: &Path, split: Split, entries: &[ManifestEntry]) -> bool {
    entries
        .iter()
        .enumerate()
        .all(|(i, e)| e.audio == wav_path(out, split, &utterance_id(split, i)))
}

/// `program` in one of the folders of `path_var` (a PATH-style list).
pub fn find_program(program: &str, path_var: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Fail, naming the engine, when a program the plan needs is not on `path_var`.
pub fn check_tools(plan: &[PlannedUtterance], path_var: &OsStr) -> Result<()> {
    let mut needed: Vec<(&str, &str)> = vec![("sox", "sox")];
    for engine in Engine::ALL {
        if plan.iter().any(|u| u.voice.engine == engine) {
            needed.push((engine.name(), engine.program()));
        }
    }
    for (engine, program) in needed {
        if find_program(program, path_var).is_none() {
            return Err(Error::format(
                engine,
                format!("`{program}` not found on PATH; install the TTS engines with scripts/install_tts"),
            ));
        }
    }
    Ok(())
}

fn run(mut cmd: Command, tool: &str, what: &str) -> Result<()> {
    let output = cmd
        .output()
        .map_err(|e| Error::format(tool, format!("cannot run for {what}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Error::format(
        tool,
        format!("failed for {what} ({}): {}", output.status, stderr.trim()),
    ))
}

/// Speak one utterance into its WAV file; false when the file was already there.
fn synthesize_one(u: &PlannedUtterance, out: &Path) -> Result<bool> {
    let wav = wav_path(out, u.split, &u.id);
    if wav.exists() {
        return Ok(false);
    }
    let folder = wav.parent().expect("wav_path has a folder");
    std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    let raw = folder.join(format!("{}.raw.wav", u.id));
    let part = folder.join(format!("{}.part.wav", u.id));
    let text_file = folder.join(format!("{}.txt", u.id));
    // Engines get lower case: some spell out all-capital words as acronyms.
    let text = u.transcript.to_lowercase();
    std::fs::write(&text_file, format!("{text}\n")).map_err(|e| Error::io(&text_file, e))?;
    let what = format!("{} ({})", u.id, voice_column(u));
    run(
        u.voice.command(&text, &raw, &text_file),
        u.voice.engine.name(),
        &what,
    )?;
    let mut sox = Command::new("sox");
    sox.arg("-D").arg(&raw);
    sox.args([
        "-r",
        &SAMPLE_RATE.to_string(),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed-integer",
        "-t",
        "wav",
    ]);
    sox.arg(&part);
    sox.args(u.effects.sox_args());
    run(sox, "sox", &what)?;
    std::fs::rename(&part, &wav).map_err(|e| Error::io(&wav, e))?;
    for scratch in [&raw, &text_file] {
        std::fs::remove_file(scratch).map_err(|e| Error::io(scratch, e))?;
    }
    Ok(true)
}

/// Speak every utterance of `plan` on `workers` threads; `progress(done, total)` is called
/// after each one. The first failure stops the workers and is returned.
pub fn synthesize(
    plan: &[PlannedUtterance],
    out: &Path,
    workers: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SynthReport> {
    check_tools(plan, &std::env::var_os("PATH").unwrap_or_default())?;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let report = Mutex::new(SynthReport::default());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(u) = plan.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let start = Instant::now();
                    match synthesize_one(u, out) {
                        Ok(made) => {
                            let mut report = report.lock().expect("no worker panics");
                            if made {
                                let stats = report.made.entry(u.voice.engine).or_default();
                                stats.utterances += 1;
                                stats.seconds += start.elapsed().as_secs_f64();
                            } else {
                                report.skipped += 1;
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .expect("no worker panics")
                                .get_or_insert(e);
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, plan.len());
                }
            });
        }
    });
    match first_error.into_inner().expect("no worker panics") {
        Some(e) => Err(e),
        None => Ok(report.into_inner().expect("no worker panics")),
    }
}

/// The manifest's voice column: the voice, then its effects after a `/` when it has any.
fn voice_column(u: &PlannedUtterance) -> String {
    if u.effects.is_none() {
        u.voice.to_string()
    } else {
        format!("{}/{}", u.voice, u.effects)
    }
}

/// Write `<out>/<split>.tsv` for the main text's splits and for every other split `plan` has.
pub fn write_manifests(plan: &[PlannedUtterance], out: &Path) -> Result<()> {
    for split in Split::ALL {
        if !Split::BASE.contains(&split) && !plan.iter().any(|u| u.split == split) {
            continue;
        }
        let entries: Vec<ManifestEntry> = plan
            .iter()
            .filter(|u| u.split == split)
            .map(|u| ManifestEntry {
                audio: wav_path(out, split, &u.id),
                voice: voice_column(u),
                transcript: u.transcript.clone(),
            })
            .collect();
        write_manifest(out.join(format!("{}.tsv", split.name())), &entries)?;
    }
    Ok(())
}

/// A second text of modern English and the sizes of its two splits.
#[derive(Clone, Copy, Debug)]
pub struct ModernText<'a> {
    pub text: &'a str,
    pub sizes: ModernSizes,
}

/// The whole build: sentences of `text` (and of `modern`), the plans for `sizes` and `seed`, the
/// audio (resuming from what `out` already holds) and the manifests.
pub fn build_speech_corpus(
    text: &str,
    modern: Option<ModernText>,
    out: &Path,
    sizes: CorpusSizes,
    seed: u64,
    workers: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SynthReport> {
    if sizes.train + sizes.val + sizes.test + sizes.test_voices == 0 {
        return Err(Error::format(
            out,
            "every split size is 0 (--train, --val, --test, --test-voices): nothing to build",
        ));
    }
    let mut plan = plan_corpus(&corpus_sentences(text), sizes, seed)?;
    if let Some(modern) = modern {
        let held_out: HashSet<&str> = plan
            .iter()
            .filter(|u| u.split != Split::Train)
            .map(|u| u.transcript.as_str())
            .collect();
        let sentences = corpus_sentences(modern.text);
        let modern_plan = plan_modern(&sentences, &held_out, modern.sizes, seed)?;
        plan.extend(modern_plan);
    }
    let report = synthesize(&plan, out, workers, progress)?;
    write_manifests(&plan, out)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::asr::voices::Voice;

    fn utterance(engine: Engine, name: &'static str) -> PlannedUtterance {
        PlannedUtterance {
            split: Split::Train,
            id: "train-000000".into(),
            transcript: "TO BE OR NOT TO BE".into(),
            voice: Voice {
                engine,
                name,
                variant: None,
                speed: 0,
                pitch: 0,
            },
            effects: Default::default(),
        }
    }

    #[test]
    fn check_tools_names_the_missing_engine() {
        let dir = std::env::temp_dir().join(format!("wgformer-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for program in ["sox", "flite"] {
            std::fs::write(dir.join(program), "").unwrap();
        }
        let path = std::env::join_paths([&dir]).unwrap();
        let flite_only = [utterance(Engine::Flite, "slt")];
        assert!(check_tools(&flite_only, &path).is_ok());
        let with_festival = [
            utterance(Engine::Flite, "slt"),
            utterance(Engine::Festival, "kal_diphone"),
        ];
        let msg = check_tools(&with_festival, &path).unwrap_err().to_string();
        assert!(
            msg.starts_with("festival:")
                && msg.contains("text2wave")
                && msg.contains("scripts/install_tts"),
            "{msg}"
        );
    }

    #[test]
    fn synthetic_split_is_recognised_by_its_paths_and_order() {
        let out = Path::new("data/speech");
        let entry = |i: usize| ManifestEntry {
            audio: out.join(format!("wav/train/train-{i:06}.wav")),
            voice: "flite:slt".into(),
            transcript: "A B C".into(),
        };
        let ours: Vec<ManifestEntry> = (0..3).map(entry).collect();
        assert!(is_synthetic_split(out, Split::Train, &ours));
        assert!(!is_synthetic_split(out, Split::Val, &ours));
        let reordered = vec![entry(0), entry(2), entry(1)];
        assert!(!is_synthetic_split(out, Split::Train, &reordered));
        let mut foreign = ours.clone();
        foreign[1].audio = out.join("LibriSpeech/19/198/19-198-0001.flac");
        assert!(!is_synthetic_split(out, Split::Train, &foreign));
    }

    #[test]
    fn wav_path_is_split_folder_and_id() {
        let p = wav_path(
            Path::new("data/speech"),
            Split::TestVoices,
            "test_voices-000007",
        );
        assert_eq!(
            p,
            Path::new("data/speech/wav/test_voices/test_voices-000007.wav")
        );
    }
}
