//! The pretrained Whisper tiny.en against the references users know, on real speech:
//!
//! - its tokenizer against Hugging Face `tokenizers` and faster-whisper's suppressed tokens
//!   (`tests/fixtures/whisper_tokenizer.json`, from `scripts/whisper_tokenizer_fixture.py`);
//! - greedy transcripts of Asterisk prompts against faster-whisper's, which
//!   `scripts/whisper_reference.py` committed in `tests/fixtures/asterisk/`.
//!
//! These need the weights (`scripts/fetch_whisper tiny.en`) and the clips
//! (`scripts/asterisk_clips`); CI runs both first. Without them the tests fail and say so:
//! they are never skipped in silence.
mod common;
use common::gpu;
use std::collections::HashMap;
use std::path::Path;
use wgformer::audio::load_16k;
use wgformer::data::ByteBpe;
use wgformer::inference::{Timestamps, WhisperOptions, WhisperRecognizer};

const MODEL: &str = "models/whisper-tiny.en";
const MANIFEST: &str = "data/asterisk/manifest.tsv";

fn require(path: &str, how: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run `{how}` first (CI's .ci/run does)"
    );
}

fn recognizer() -> WhisperRecognizer {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    WhisperRecognizer::load(&gpu(), Path::new(MODEL)).unwrap()
}

#[test]
fn tokenizer_encodes_and_decodes_as_hugging_face_tokenizers() {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    let tok = ByteBpe::load(&Path::new(MODEL).join("tokenizer.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/whisper_tokenizer.json").unwrap(),
    )
    .unwrap();
    let texts = fixture["texts"].as_array().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let text = text.as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(fixture["ids"][i].clone()).unwrap();
        assert_eq!(tok.encode(text), want, "encoding {text:?}");
        assert_eq!(
            tok.decode(&want),
            fixture["decoded"][i].as_str().unwrap(),
            "decoding {text:?}"
        );
    }
}

#[test]
fn suppressed_tokens_are_faster_whispers() {
    let r = recognizer();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/whisper_tokenizer.json").unwrap(),
    )
    .unwrap();
    let want: Vec<u32> = serde_json::from_value(fixture["suppressed"].clone()).unwrap();
    assert_eq!(r.tokens.suppress, want);
    assert_eq!(
        r.tokens.prompt(false),
        [50257, 50362],
        "<|startoftranscript|><|notimestamps|>"
    );
}

/// tiny.en's weights are halves (f16 in the CTranslate2 file, f16 values stored as f32 on the
/// hub): the recognizer keeps its output projection in half precision, made from the values
/// as loaded, so loading reads nothing back from the device.
#[test]
fn the_output_projection_of_half_weights_is_kept_in_half_precision() {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    // A device of the test's own: the count must not see other tests' read-backs.
    let device = wgformer::Gpu::new().unwrap();
    let r = WhisperRecognizer::load(&device, Path::new(MODEL)).unwrap();
    let half = r
        .output_half
        .as_ref()
        .expect("a half-precision output projection");
    assert_eq!((half.n, half.k), (51864, 384));
    assert_eq!(device.counters().bytes_read_back, 0);
}

/// Short prompts with digits, names, contractions and punctuation; one over 10 s.
const CLIPS: [&str; 8] = [
    "agent-loggedoff",
    "auth-incorrect",
    "conf-onlyperson",
    "vm-nomore",
    "digits/7",
    "letters/w",
    "queue-thankyou",
    "vm-options",
];

/// Each Asterisk prompt's WAV path, by name.
fn asterisk_wavs() -> HashMap<String, String> {
    require(MANIFEST, "scripts/asterisk_clips");
    std::fs::read_to_string(MANIFEST)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut c = l.split('\t');
            Some((c.next()?.to_string(), c.next()?.to_string()))
        })
        .collect()
}

/// faster-whisper's greedy transcripts without timestamps, by prompt name.
fn faster_whisper_greedy() -> HashMap<String, String> {
    std::fs::read_to_string("tests/fixtures/asterisk/faster_whisper_greedy.tsv")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// faster-whisper's settings: greedy, without timestamps.
fn greedy_without_timestamps(batch_windows: usize) -> WhisperOptions {
    WhisperOptions {
        timestamps: Timestamps::Off,
        batch_windows,
        ..Default::default()
    }
}

#[test]
fn greedy_transcripts_match_faster_whisper_on_asterisk_prompts() {
    let (wavs, reference) = (asterisk_wavs(), faster_whisper_greedy());
    let r = recognizer();
    let opts = greedy_without_timestamps(1);
    for name in CLIPS {
        let wav = &wavs[name];
        let got = r
            .transcribe(&load_16k(Path::new(wav)).unwrap(), &opts)
            .unwrap();
        assert_eq!(got, reference[name], "{name} ({wav})");
    }
}

/// Windows decoded together give what one window at a time gives: short prompts in batches
/// of three whose sequences end at different steps (a silent clip among them is not decoded)
/// give faster-whisper's transcripts, and a clip of two windows its one-by-one transcript.
#[test]
fn windows_decoded_together_give_the_transcripts_of_one_at_a_time() {
    let (wavs, reference) = (asterisk_wavs(), faster_whisper_greedy());
    let r = recognizer();
    let names = &CLIPS[..5];
    let mut clips: Vec<Vec<f32>> = names
        .iter()
        .map(|n| load_16k(Path::new(&wavs[*n])).unwrap())
        .collect();
    clips.insert(2, vec![0.0; 2 * 16_000]);
    let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let (texts, timings) = r
        .transcribe_many(&refs, &greedy_without_timestamps(3))
        .unwrap();
    assert_eq!(
        timings.windows,
        names.len(),
        "the silent clip is not decoded"
    );
    assert_eq!(texts[2], "");
    let spoken = texts[..2].iter().chain(&texts[3..]);
    for (name, got) in names.iter().zip(spoken) {
        assert_eq!(*got, reference[*name], "{name} decoded with two others");
    }
    // Prompts one after the other with half a second between them, until past 30 s.
    let mut long = Vec::new();
    for clip in clips.iter().cycle().take(40) {
        long.extend_from_slice(clip);
        long.extend(std::iter::repeat_n(0.0, 8_000));
        if long.len() > 34 * 16_000 {
            break;
        }
    }
    let alone = r.transcribe(&long, &greedy_without_timestamps(1)).unwrap();
    let (together, timings) = r
        .transcribe_many(&[&long], &greedy_without_timestamps(2))
        .unwrap();
    assert_eq!(timings.windows, 2);
    assert!(alone.split(' ').count() > 20, "{alone}");
    assert_eq!(together[0], alone);
}

/// Whisper writes words for silence and noise; the recognizer does not decode audio whose
/// levels say it holds no speech, and no spoken Asterisk prompt is taken for such audio.
#[test]
fn silence_and_noise_get_no_transcript_and_every_prompt_is_heard() {
    require(MANIFEST, "scripts/asterisk_clips");
    let r = recognizer();
    let opts = WhisperOptions::default();
    let silence = vec![0.0f32; 3 * 16_000];
    assert_eq!(r.transcribe(&silence, &opts).unwrap(), "");
    let mut rng = wgformer::rng::SplitMix64::new(7);
    let noise: Vec<f32> = (0..3 * 16_000)
        .map(|_| 0.1 * ((rng.next_u64() % 2001) as f32 / 1000.0 - 1.0))
        .collect();
    assert_eq!(r.transcribe(&noise, &opts).unwrap(), "");
    // The package's own silence prompts ("(10 seconds of silence)") are the only ones not heard;
    // faster-whisper writes nothing for them either.
    let mut heard = 0;
    for line in std::fs::read_to_string(MANIFEST).unwrap().lines() {
        let mut cols = line.split('\t');
        let (name, wav) = (cols.next().unwrap(), cols.next().unwrap());
        let levels = wgformer::audio::Levels::of(&load_16k(Path::new(wav)).unwrap());
        let speech = wgformer::inference::speech_presence::sounds_like_speech(
            levels.speech_db,
            levels.range_db(),
        );
        assert_eq!(
            speech,
            !name.starts_with("silence/"),
            "{name}: loud frames {} dBFS, {} dB above the quiet ones",
            levels.speech_db,
            levels.range_db()
        );
        heard += speech as usize;
    }
    assert_eq!(heard, 553);
}

/// `train_asr` fine-tunes a Whisper named by `model.init_from`: two steps on one clip each,
/// then its best checkpoint is a Whisper directory that transcribes again.
#[test]
fn train_asr_fine_tunes_whisper_into_a_loadable_checkpoint() {
    require(MODEL, "scripts/fetch_whisper tiny.en");
    require("data/asterisk/train.tsv", "scripts/asterisk_clips");
    let dir = std::env::temp_dir().join(format!("wgformer-whisper-ft-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/asterisk");
    // Two short training clips, one validation and one test clip.
    for (split, clips) in [("train", 2), ("val", 1), ("test", 1)] {
        let text = std::fs::read_to_string(root.join(format!("{split}.tsv"))).unwrap();
        let mut out = String::from("audio\tvoice\ttranscript\n");
        for line in text.lines().skip(1).take(clips) {
            out.push_str(&format!("{}\n", root.join(line).display()));
        }
        std::fs::write(dir.join(format!("{split}.tsv")), out).unwrap();
    }
    let mut config = wgformer::config::AsrConfig::load_with_overrides(
        "configs/whisper-finetune.yaml",
        &[] as &[&str],
    )
    .unwrap();
    config.data.corpus_dir = dir.clone();
    config.model.init_from = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL));
    config.train.max_batch = 1;
    config.train.epochs = Some(1);
    config.train.eval_interval = 2;
    config.decode.beam_width = 1;
    config.train.out_dir = dir.join("run");
    let opts = wgformer::train::RunOptions::default();
    let summary = wgformer::train::asr::run(&config, &opts).unwrap();
    assert_eq!(summary.steps, 2);
    let test = summary.test.expect("the run tested its best checkpoint");
    assert_eq!(test.greedy.utterances, 1);
    let best = dir.join("run/checkpoints/best");
    assert!(
        WhisperRecognizer::is_whisper_dir(&best),
        "{}",
        best.display()
    );
    let tuned = WhisperRecognizer::load(&gpu(), &best).unwrap();
    let clip = std::fs::read_to_string(dir.join("test.tsv")).unwrap();
    let wav = clip
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let text = tuned.transcribe(
        &load_16k(Path::new(&wav)).unwrap(),
        &WhisperOptions::default(),
    );
    assert!(
        !text.unwrap().trim().is_empty(),
        "the tuned model transcribes {wav}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
