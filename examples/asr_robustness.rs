//! The recognizer on inputs nobody made for it, measured clip by clip through `Recognizer`
//! (what the `asr` example runs): long utterances, the same audio in other WAV formats, audio
//! without speech, and any manifest of real recordings.
//!
//!     cargo run --release --example asr_robustness -- long [--manifest data/speech/test.tsv]
//!     cargo run --release --example asr_robustness -- formats [--limit 50]     # needs sox
//!     cargo run --release --example asr_robustness -- no-speech --beam 1   # evidence only
//!     cargo run --release --example asr_robustness -- score --manifest data/asterisk/manifest.tsv
//!
//! Every command takes `--checkpoint DIR` and the decoding options `--beam N`,
//! `--ctc-weight W`, `--length-penalty A` (default: the checkpoint's decoding).

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use wgformer::audio::load_16k;
use wgformer::data::asr::{normalize_transcript, read_manifest, ManifestEntry};
use wgformer::inference::{Decoding, ErrorRates, Recognizer, SpeechEvidence};
use wgformer::rng::SplitMix64;
use wgformer::Result;

#[derive(Parser, Debug)]
#[command(name = "asr_robustness")]
struct Args {
    #[command(subcommand)]
    what: What,
    #[arg(long, default_value = "models/asr", value_name = "DIR", global = true)]
    checkpoint: PathBuf,
    /// The clips (a speech manifest: audio, voice, transcript).
    #[arg(long, default_value = "data/speech/test.tsv", global = true)]
    manifest: PathBuf,
    /// Use only the first N clips of the manifest.
    #[arg(long, global = true)]
    limit: Option<usize>,
    #[arg(long, global = true)]
    beam: Option<usize>,
    #[arg(long, global = true)]
    ctc_weight: Option<f32>,
    #[arg(long, global = true)]
    length_penalty: Option<f32>,
    /// Print every clip's reference and transcript.
    #[arg(long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Consecutive clips joined into 10-30 s utterances, against the same clips one by one.
    Long,
    /// Each clip as 16 kHz mono, 44.1 kHz stereo, 48 kHz float, 22.05 kHz 8-bit and 8 kHz
    /// (made with sox): how often the transcript matches the original's.
    Formats,
    /// The speech evidence of the manifest's clips and of made-up non-speech (silence, noise,
    /// hum, tones, clicks), and what the recognizer says to the latter.
    NoSpeech,
    /// CER / WER of the manifest's clips, and of each speaker's when there are several.
    Score,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("asr_robustness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let gpu = wgformer::Gpu::shared()?;
    let recognizer = Recognizer::load(&gpu, &args.checkpoint, None)?;
    let mut decoding = recognizer.decoding.clone();
    decoding.beam_width = args.beam.unwrap_or(decoding.beam_width);
    decoding.ctc_weight = args.ctc_weight.unwrap_or(decoding.ctc_weight);
    decoding.length_penalty = args.length_penalty.unwrap_or(decoding.length_penalty);
    println!("{decoding:?}");
    let mut clips = read_manifest(&args.manifest)?;
    clips.truncate(args.limit.unwrap_or(clips.len()));
    let r = Run {
        recognizer: &recognizer,
        decoding: &decoding,
        verbose: args.verbose,
    };
    match args.what {
        What::Long => r.long(&clips),
        What::Formats => r.formats(&clips),
        What::NoSpeech => r.no_speech(&clips),
        What::Score => r.score(&clips),
    }
}

struct Run<'a> {
    recognizer: &'a Recognizer,
    decoding: &'a Decoding,
    verbose: bool,
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The speaker of a manifest's voice column: a TTS voice without its variant, speed and pitch
/// (`espeak-ng:en-gb-scotland+f3:s166:p36` -> `espeak-ng:en-gb-scotland`), a speaker id as is.
fn speaker(voice: &str) -> &str {
    let voice = voice.split('+').next().unwrap_or(voice);
    match voice.match_indices(':').nth(1) {
        Some((end, _)) => &voice[..end],
        None => voice,
    }
}

fn pct(r: &ErrorRates) -> String {
    format!("CER {:5.2}% WER {:5.2}%", 100.0 * r.cer(), 100.0 * r.wer())
}

impl Run<'_> {
    fn text(&self, samples: &[f32]) -> Result<String> {
        Ok(self.recognizer.transcribe(samples, self.decoding)?.text)
    }

    fn score(&self, clips: &[ManifestEntry]) -> Result<()> {
        let mut rates = ErrorRates::default();
        let mut by_speaker: BTreeMap<&str, ErrorRates> = BTreeMap::new();
        let (mut ref_words, mut hyp_words) = (0, 0);
        for e in clips {
            let reference = normalize_transcript(&e.transcript);
            let hyp = self
                .recognizer
                .transcribe_file(&e.audio, self.decoding)?
                .text;
            if self.verbose {
                println!("{}\n  ref {reference}\n  hyp {hyp}", e.audio.display());
            }
            (ref_words, hyp_words) = (ref_words + words(&reference), hyp_words + words(&hyp));
            rates.add(&reference, &hyp);
            by_speaker
                .entry(speaker(&e.voice))
                .or_default()
                .add(&reference, &hyp);
        }
        println!(
            "{} clips: {}; words {hyp_words} / {ref_words} = {:.3} of the reference's",
            clips.len(),
            pct(&rates),
            hyp_words as f64 / ref_words.max(1) as f64
        );
        if by_speaker.len() > 1 {
            for (name, r) in &by_speaker {
                println!("  {name:28} {:4} clips: {}", r.utterances, pct(r));
            }
        }
        Ok(())
    }

    fn long(&self, clips: &[ManifestEntry]) -> Result<()> {
        // Utterance lengths drawn from 10-30 s; consecutive clips fill each one.
        let mut rng = SplitMix64::new(1);
        let (mut short, mut long) = (ErrorRates::default(), ErrorRates::default());
        let (mut ref_words, mut hyp_words, mut utterances, mut seconds) = (0, 0, 0, 0.0);
        let mut rest = clips;
        while !rest.is_empty() {
            let target = 10.0 + 20.0 * rng.next_f64();
            let (mut audio, mut refs) = (Vec::new(), Vec::new());
            while audio.len() as f64 / 16_000.0 < target && !rest.is_empty() {
                let samples = load_16k(&rest[0].audio)?;
                short.add(&rest[0].transcript, &self.text(&samples)?);
                audio.extend(samples);
                refs.push(rest[0].transcript.as_str());
                rest = &rest[1..];
            }
            if (audio.len() as f64 / 16_000.0) < 10.0 {
                break;
            }
            let reference = refs.join(" ");
            let heard = self.recognizer.transcribe(&audio, self.decoding)?;
            if self.verbose {
                println!(
                    "{:.1} s, {} windows\n  ref {reference}\n  hyp {}",
                    audio.len() as f64 / 16_000.0,
                    heard.windows.len(),
                    heard.text
                );
            }
            ref_words += words(&reference);
            hyp_words += words(&heard.text);
            long.add(&reference, &heard.text);
            utterances += 1;
            seconds += audio.len() as f64 / 16_000.0;
        }
        println!("clips one by one:      {}", pct(&short));
        println!(
            "{utterances} utterances of {:.1} s on average: {}; words {hyp_words} / {ref_words} = {:.3} of the reference's",
            seconds / utterances.max(1) as f64,
            pct(&long),
            hyp_words as f64 / ref_words.max(1) as f64
        );
        Ok(())
    }

    fn formats(&self, clips: &[ManifestEntry]) -> Result<()> {
        let dir = std::env::temp_dir().join(format!("asr_formats_{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| wgformer::Error::io(&dir, e))?;
        let variants: [(&str, &[&str]); 4] = [
            ("44.1 kHz stereo", &["-r", "44100", "-c", "2"]),
            (
                "48 kHz float",
                &["-r", "48000", "-e", "floating-point", "-b", "32"],
            ),
            ("22.05 kHz 8-bit", &["-r", "22050", "-b", "8"]),
            ("8 kHz", &["-r", "8000"]),
        ];
        let mut same = [0usize; 4];
        let mut rates: Vec<ErrorRates> = vec![ErrorRates::default(); 5];
        for e in clips {
            let original = self.text(&load_16k(&e.audio)?)?;
            rates[0].add(&e.transcript, &original);
            for (k, (name, sox_args)) in variants.iter().enumerate() {
                let out = dir.join(format!("variant{k}.wav"));
                // -R: a fixed seed for sox's dither, so every run converts to the same samples.
                let ok = Command::new("sox")
                    .arg("-R")
                    .arg(&e.audio)
                    .args(*sox_args)
                    .arg(&out)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(wgformer::Error::format(
                        &out,
                        "sox failed (is it installed?)",
                    ));
                }
                let text = self.recognizer.transcribe_file(&out, self.decoding)?.text;
                if text == original {
                    same[k] += 1;
                } else if self.verbose {
                    println!(
                        "{} {name}:\n  16k {original}\n  now {text}",
                        e.audio.display()
                    );
                }
                rates[k + 1].add(&e.transcript, &text);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        println!("16 kHz mono:      {}", pct(&rates[0]));
        for (k, (name, _)) in variants.iter().enumerate() {
            println!(
                "{name:16}  {}; transcript identical to 16 kHz mono on {} of {} clips ({:.1}%)",
                pct(&rates[k + 1]),
                same[k],
                clips.len(),
                100.0 * same[k] as f64 / clips.len().max(1) as f64
            );
        }
        Ok(())
    }

    fn no_speech(&self, clips: &[ManifestEntry]) -> Result<()> {
        let mut rng = SplitMix64::new(3);
        for snr in [None, Some(20.0), Some(10.0), Some(5.0)] {
            let mut evidence = Vec::new();
            let mut dropped = 0;
            for e in clips {
                let mut audio = load_16k(&e.audio)?;
                if let Some(snr) = snr {
                    add_white_noise(&mut audio, snr, &mut rng);
                }
                let t = self.recognizer.transcribe(&audio, self.decoding)?;
                evidence.extend(t.windows.iter().map(|w| w.evidence));
                if t.no_speech {
                    dropped += 1;
                    let ev: Vec<_> = t.windows.iter().map(|w| w.evidence).collect();
                    println!(
                        "no speech found in {} (SNR {snr:?}): {ev:?}",
                        e.audio.display()
                    );
                }
            }
            println!(
                "{} speech clips, white noise at SNR {snr:?} dB: {dropped} taken for no speech",
                clips.len()
            );
            show_evidence(&evidence);
        }
        for (name, audio) in non_speech() {
            let t = self.recognizer.transcribe(&audio, self.decoding)?;
            let worst = t
                .windows
                .iter()
                .map(|w| w.evidence)
                .max_by(|a, b| a.letters.total_cmp(&b.letters));
            println!(
                "{name:30} no_speech {:5} {} text {:?}",
                t.no_speech,
                worst.map_or(String::new(), |e| format!(
                    "letters/s {:5.2} range {:5.1} dB level {:6.1} dBFS",
                    e.letters / e.seconds,
                    e.range_db,
                    e.speech_db
                )),
                t.text
            );
        }
        Ok(())
    }
}

/// `audio` plus white noise `snr_db` below its mean square.
fn add_white_noise(audio: &mut [f32], snr_db: f32, rng: &mut SplitMix64) {
    let ms = audio.iter().map(|x| x * x).sum::<f32>() / audio.len().max(1) as f32;
    let a = (ms / 10f32.powf(snr_db / 10.0)).sqrt() * 3f32.sqrt();
    for x in audio {
        *x += a * (2.0 * rng.next_f64() as f32 - 1.0);
    }
}

/// Distribution of each piece of evidence over speech windows.
fn show_evidence(evidence: &[SpeechEvidence]) {
    let show = |name: &str, f: &dyn Fn(&SpeechEvidence) -> f32| {
        let mut v: Vec<f32> = evidence.iter().map(f).collect();
        v.sort_by(f32::total_cmp);
        let at = |q: f64| {
            v.get((v.len().saturating_sub(1) as f64 * q) as usize)
                .copied()
        };
        println!(
            "  {name:12} min {:7.2}  1% {:7.2}  5% {:7.2}  median {:7.2}",
            at(0.0).unwrap_or(f32::NAN),
            at(0.01).unwrap_or(f32::NAN),
            at(0.05).unwrap_or(f32::NAN),
            at(0.5).unwrap_or(f32::NAN)
        );
    };
    show("letters/s", &|e| e.letters / e.seconds);
    show("letters", &|e| e.letters);
    show("range dB", &|e| e.range_db);
    show("level dBFS", &|e| e.speech_db);
}

/// Made-up audio without speech, 16 kHz.
fn non_speech() -> Vec<(String, Vec<f32>)> {
    let n = |s: f64| (s * 16_000.0) as usize;
    let mut rng = SplitMix64::new(7);
    let mut white = |secs: f64, rms: f32| -> Vec<f32> {
        // Uniform noise of the given RMS (uniform on [-a, a] has RMS a / sqrt 3).
        let a = rms * 3f32.sqrt();
        (0..n(secs))
            .map(|_| a * (2.0 * rng.next_f64() as f32 - 1.0))
            .collect()
    };
    let db = |d: f32| 10f32.powf(d / 20.0);
    let mut out: Vec<(String, Vec<f32>)> = vec![
        ("silence 3 s".into(), vec![0.0; n(3.0)]),
        ("silence 0.5 s".into(), vec![0.0; n(0.5)]),
        ("silence 30 s".into(), vec![0.0; n(30.0)]),
        ("16-bit dither 3 s".into(), white(3.0, 1.0 / 32768.0)),
    ];
    for level in [-60.0, -45.0, -30.0, -20.0, -10.0, -3.0] {
        out.push((
            format!("white noise {level} dBFS 3 s"),
            white(3.0, db(level)),
        ));
    }
    out.push(("white noise -20 dBFS 20 s".into(), white(20.0, db(-20.0))));
    // Brown (integrated) and pink-ish (white minus brown-ish) noise at -20 dBFS.
    let w = white(3.0, 1.0);
    let mut acc = 0.0f32;
    let brown: Vec<f32> = w
        .iter()
        .map(|x| {
            acc = 0.995 * acc + x;
            acc
        })
        .collect();
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let scale = |v: Vec<f32>, level: f32| {
        let g = db(level) / rms(&v).max(1e-12);
        v.into_iter().map(|x| x * g).collect::<Vec<f32>>()
    };
    let mut prev = 0.0f32;
    let pinkish: Vec<f32> = w
        .iter()
        .map(|x| {
            prev = 0.9 * prev + 0.1 * x;
            prev + 0.3 * x
        })
        .collect();
    out.push(("brown noise -20 dBFS 3 s".into(), scale(brown, -20.0)));
    out.push(("pink-ish noise -20 dBFS 3 s".into(), scale(pinkish, -20.0)));
    let tone = |f: f32, secs: f64| -> Vec<f32> {
        (0..n(secs))
            .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / 16_000.0).sin())
            .collect()
    };
    out.push((
        "50 Hz hum -20 dBFS 3 s".into(),
        scale(tone(50.0, 3.0), -20.0),
    ));
    out.push((
        "1 kHz tone -20 dBFS 3 s".into(),
        scale(tone(1000.0, 3.0), -20.0),
    ));
    let beeps: Vec<f32> = tone(440.0, 3.0)
        .into_iter()
        .enumerate()
        .map(|(i, x)| if (i / 4000) % 2 == 0 { x } else { 0.0 })
        .collect();
    out.push(("440 Hz beeps -10 dBFS 3 s".into(), scale(beeps, -10.0)));
    let clicks: Vec<f32> = (0..n(3.0))
        .map(|i| if i % 3200 < 16 { 0.8 } else { 0.0 })
        .collect();
    out.push(("clicks 5/s 3 s".into(), clicks));
    out
}
