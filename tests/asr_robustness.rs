//! The shipped recognizer (`models/asr`) on inputs nobody made for it: silence and noise get no
//! transcript, a minute of speech is transcribed in windows, the same clip in other WAV
//! formats gives the same transcript, unsupported WAV encodings are refused with a way out, and
//! evaluation decodes exactly as the recognizer does.

use std::path::{Path, PathBuf};
use wgformer::audio::{load_16k, resample, speed_perturb};
use wgformer::data::asr::{AsrBatcher, Utterance};
use wgformer::inference::transcribe::transcribe_batch;
use wgformer::inference::{Decoding, ErrorRates, Recognizer};
use wgformer::rng::SplitMix64;
use wgformer::Gpu;

/// The held-out test sentence of `tests/fixtures/audio` (2.6 s, a training voice).
const REFERENCE: &str = "WITHIN MY TENT HIS BONES TO NIGHT SHALL LIE";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clip() -> Vec<f32> {
    load_16k(&root().join("tests/fixtures/audio/held_out_sentence.wav")).unwrap()
}

fn recognizer() -> Recognizer {
    let gpu = Gpu::shared().unwrap();
    Recognizer::load(&gpu, &root().join("models/asr"), None).unwrap()
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgformer_asr_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cer(reference: &str, hypothesis: &str) -> f64 {
    let mut r = ErrorRates::default();
    r.add(reference, hypothesis);
    r.cer()
}

fn white_noise(seconds: f64, rms: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let a = rms * 3f32.sqrt(); // uniform on [-a, a]
    (0..(seconds * 16_000.0) as usize)
        .map(|_| a * (2.0 * rng.next_f64() as f32 - 1.0))
        .collect()
}

#[test]
fn silence_and_white_noise_get_no_transcript_and_speech_still_does() {
    let r = recognizer();
    let decoding = r.decoding.clone();
    let cases = [
        ("3 s of digital silence", vec![0.0; 48_000]),
        ("white noise at -20 dBFS", white_noise(3.0, 0.1, 1)),
        ("white noise at -45 dBFS", white_noise(3.0, 0.0056, 2)),
        (
            "10 s of white noise at -30 dBFS",
            white_noise(10.0, 0.032, 3),
        ),
    ];
    for (name, audio) in &cases {
        let heard = r.transcribe(audio, &decoding).unwrap();
        assert!(heard.no_speech, "{name}: {heard:?}");
        assert_eq!(heard.text, "", "{name}");
    }
    // The held-out sentence, also with white noise 10 dB under it, is still heard.
    let speech = clip();
    let ms = speech.iter().map(|x| x * x).sum::<f32>() / speech.len() as f32;
    let noise = white_noise(speech.len() as f64 / 16_000.0, (ms / 10.0).sqrt(), 4);
    let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();
    for (name, audio) in [("clean", &speech), ("at 10 dB SNR", &noisy)] {
        let heard = r.transcribe(audio, &decoding).unwrap();
        assert!(!heard.no_speech, "{name}: {heard:?}");
        assert!(
            cer(REFERENCE, &heard.text) < 0.4,
            "{name}: {:?} is too far from {REFERENCE:?}",
            heard.text
        );
    }
}

#[test]
fn a_minute_of_speech_is_transcribed_in_windows_and_keeps_its_words() {
    // 60 s: the sentence at three speeds and two levels, with pauses of 0.3-0.8 s.
    let speech = clip();
    let mut rng = SplitMix64::new(5);
    let (mut audio, mut pieces) = (Vec::new(), Vec::new());
    while audio.len() < 60 * 16_000 {
        let speed = [0.9f32, 1.0, 1.1][pieces.len() % 3];
        let gain = [1.0f32, 0.5][pieces.len() % 2];
        let piece: Vec<f32> = speed_perturb(&speech, speed)
            .unwrap()
            .iter()
            .map(|x| x * gain)
            .collect();
        audio.extend(&piece);
        audio.extend(vec![
            0.0;
            (16_000.0 * (0.3 + 0.5 * rng.next_f64())) as usize
        ]);
        pieces.push(piece);
    }
    let r = recognizer();
    let decoding = r.decoding.clone();
    let heard = r.transcribe(&audio, &decoding).unwrap();
    let reference = vec![REFERENCE; pieces.len()].join(" ");
    assert!(heard.windows.len() > 1, "{:?}", heard.windows);
    let words = heard.text.split_whitespace().count() as f64;
    let ref_words = reference.split_whitespace().count() as f64;
    assert!(
        words >= 0.95 * ref_words,
        "{words} of {ref_words} words: {:?}",
        heard.text
    );
    // As good as the pieces one by one, within 2 points of CER.
    let mut one_by_one = ErrorRates::default();
    for piece in &pieces {
        one_by_one.add(REFERENCE, &r.transcribe(piece, &decoding).unwrap().text);
    }
    let long_cer = cer(&reference, &heard.text);
    assert!(
        long_cer <= one_by_one.cer() + 0.02,
        "CER {long_cer:.3} on the minute, {:.3} piece by piece: {:?}",
        one_by_one.cer(),
        heard.text
    );
}

/// `samples` (16 kHz mono) written at `rate` Hz with `channels` identical channels.
fn write_wav<S: hound::Sample + Copy>(
    path: &Path,
    samples: &[f32],
    rate: u32,
    channels: u16,
    format: hound::SampleFormat,
    bits: u16,
    convert: impl Fn(f32) -> S,
) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &x in &resample(samples, 16_000, rate).unwrap() {
        for _ in 0..channels {
            w.write_sample(convert(x.clamp(-1.0, 1.0))).unwrap();
        }
    }
    w.finalize().unwrap();
}

#[test]
fn the_same_clip_in_other_wav_formats_gives_the_same_transcript() {
    let dir = temp("formats");
    let speech = clip();
    let (int, float) = (hound::SampleFormat::Int, hound::SampleFormat::Float);
    let mono_16k = dir.join("16k_mono.wav");
    write_wav(&mono_16k, &speech, 16_000, 1, int, 16, |x| {
        (x * 32767.0).round() as i16
    });
    let stereo = dir.join("44k1_stereo.wav");
    write_wav(&stereo, &speech, 44_100, 2, int, 16, |x| {
        (x * 32767.0).round() as i16
    });
    let float_48k = dir.join("48k_float.wav");
    write_wav(&float_48k, &speech, 48_000, 1, float, 32, |x| x);
    // 8-bit WAV is unsigned; hound writes i8 and stores it offset by 128.
    let bytes_22k = dir.join("22k05_8bit.wav");
    write_wav(&bytes_22k, &speech, 22_050, 1, int, 8, |x| {
        (x * 127.0).round() as i8
    });
    let r = recognizer();
    let decoding = r.decoding.clone();
    let expected = r.transcribe_file(&mono_16k, &decoding).unwrap().text;
    assert!(cer(REFERENCE, &expected) < 0.4, "{expected:?}");
    for path in [&stereo, &float_48k] {
        let heard = r.transcribe_file(path, &decoding).unwrap();
        assert_eq!(heard.text, expected, "{}", path.display());
    }
    // 8 bits are not the same audio: their rounding noise, 48 dB under full scale, can flip a
    // word the model is unsure of (the shipped model hears the last word as LIE or LY).
    let heard = r.transcribe_file(&bytes_22k, &decoding).unwrap().text;
    let mut rates = ErrorRates::default();
    rates.add(&expected, &heard);
    assert!(rates.word_edits <= 1, "{heard:?} vs {expected:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A RIFF/WAVE file with the given fmt chunk body and a little data.
fn wav_with_fmt(fmt: &[u8]) -> Vec<u8> {
    let data = [0u8; 64];
    let mut out = b"RIFF".to_vec();
    out.extend(((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    out
}

/// fmt chunk: tag, channels, rate, byte rate, block align, bits, then `extra` bytes.
fn fmt(tag: u16, bits: u16, block_align: u16, extra: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(tag.to_le_bytes());
    f.extend(1u16.to_le_bytes());
    f.extend(8_000u32.to_le_bytes());
    f.extend((8_000 * block_align as u32).to_le_bytes());
    f.extend(block_align.to_le_bytes());
    f.extend(bits.to_le_bytes());
    f.extend(extra);
    f
}

#[test]
fn unsupported_wav_encodings_are_refused_with_what_is_supported_and_how_to_convert() {
    let dir = temp("encodings");
    // MS ADPCM: cbSize 32, samples per block, 7 coefficient pairs.
    let mut adpcm_extra = vec![32, 0, 0xF4, 0x01, 7, 0];
    adpcm_extra.extend([0u8; 28]);
    let cases = [
        ("float64.wav", fmt(3, 64, 8, &[]), "64-bit float"),
        ("adpcm.wav", fmt(2, 4, 256, &adpcm_extra), "ADPCM"),
        ("mulaw.wav", fmt(7, 8, 1, &[0, 0]), "mu-law"),
    ];
    for (name, chunk, encoding) in &cases {
        let path = dir.join(name);
        std::fs::write(&path, wav_with_fmt(chunk)).unwrap();
        let err = load_16k(&path).unwrap_err().to_string();
        for needed in [
            *name,
            *encoding,
            "16, 24 or 32-bit integer",
            "32-bit float",
            "sox",
            "ffmpeg",
        ] {
            assert!(
                err.contains(needed),
                "{name}: {needed:?} missing from: {err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evaluation_decodes_a_clip_exactly_as_the_recognizer_does() {
    let r = recognizer();
    let speech = clip();
    let features = r.pipeline.features(&speech).unwrap();
    let utterance = Utterance {
        id: "clip".into(),
        features,
        transcript: REFERENCE.into(),
        tokens: r.tokenizer.encode(REFERENCE),
    };
    let batcher = AsrBatcher::new(vec![utterance], 100_000, 1, 0).unwrap();
    let batch = batcher.in_order().next().unwrap();
    for decoding in [
        r.decoding.clone(),
        Decoding::attention_greedy(),
        Decoding::attention_greedy().with_beam(3),
        Decoding::ctc_best_path(),
    ] {
        let evaluated = transcribe_batch(&r.model, &r.tokenizer, &batch, &decoding, None).unwrap();
        let recognized = r.transcribe(&speech, &decoding).unwrap().text;
        assert_eq!(evaluated, vec![recognized], "{decoding:?}");
    }
}

/// The `asr` example binary, built by `cargo test` next to the test binaries.
fn asr_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples/asr");
    if !path.exists() {
        let profile = exe.parent().unwrap().parent().unwrap();
        let release = profile.file_name().is_some_and(|n| n == "release");
        let mut build = std::process::Command::new(env!("CARGO"));
        build.args(["build", "--example", "asr"]);
        if release {
            build.arg("--release");
        }
        let status = build.current_dir(root()).status().unwrap();
        assert!(status.success(), "cargo build --example asr failed");
    }
    path
}

#[test]
fn the_asr_example_prints_no_transcript_for_silence_and_says_why_on_stderr() {
    let dir = temp("cli_silence");
    let silence = dir.join("silence.wav");
    wgformer::audio::write_wav_16k(&silence, &vec![0.0; 48_000]).unwrap();
    let out = std::process::Command::new(asr_example())
        .arg(&silence)
        .args(["--checkpoint", "models/asr"])
        .current_dir(root())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "", "nothing on stdout");
    assert!(
        stderr.contains("no speech") && stderr.contains("silence.wav"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
