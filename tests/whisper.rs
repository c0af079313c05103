//! Whisper on the crate's kernels against `transformers`, on the tiny random model of
//! `tests/fixtures/whisper-tiny-random` (written by `scripts/whisper_fixture.py`): encoder output
//! and logits, in both layouts (Hugging Face safetensors, CTranslate2 model.bin); the cached
//! decoder against the full one; a few fine-tuning steps; and the errors bad model folders give.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use wgformer::checkpoint::tensors_from_bytes;
use wgformer::gpu::block_on;
use wgformer::inference::whisper::{greedy, greedy_windows, Greedy, WhisperDecoder, WhisperTokens};
use wgformer::models::whisper::{
    load_whisper, whisper_loss, Whisper, WhisperBatch, WhisperExample, WhisperFormat,
};
use wgformer::nn::Module;
use wgformer::ops::AdamWParams;
use wgformer::optim::AdamW;
use wgformer::Tensor;

const FIXTURE: &str = "tests/fixtures/whisper-tiny-random";

/// The fixture's input and `transformers`' outputs: name -> (shape, values).
fn expected() -> wgformer::checkpoint::NamedArrays {
    let path = Path::new(FIXTURE).join("expected.safetensors");
    tensors_from_bytes(&path, &std::fs::read(&path).unwrap()).unwrap()
}

fn fixture_model() -> Whisper {
    let (model, format) = load_whisper(&gpu(), Path::new(FIXTURE)).unwrap();
    assert_eq!(format, WhisperFormat::HuggingFace);
    model
}

/// max |got - want| / max |want|: the relative error the parity criterion names.
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max(w.abs() as f64));
    let worst = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    worst / scale
}

fn mel_and_ids(model: &Whisper) -> (Tensor, Tensor, Vec<u32>) {
    let e = expected();
    let (shape, mel) = &e["mel"];
    let ids: Vec<u32> = e["decoder_input_ids"].1.iter().map(|&v| v as u32).collect();
    let mel = Tensor::from_slice(model.gpu(), mel, shape).unwrap();
    let ids_t = Tensor::from_u32(model.gpu(), &ids, &[1, ids.len()]).unwrap();
    (mel, ids_t, ids)
}

fn assert_logits_match_transformers(model: &Whisper, what: &str) {
    let e = expected();
    let (mel, ids, _) = mel_and_ids(model);
    let memory = model.encode(&mel).unwrap();
    let enc_err = relative_error(&memory.to_vec().unwrap(), &e["encoder_output"].1);
    assert!(
        enc_err <= 1e-4,
        "{what}: encoder output off by {enc_err:.2e}"
    );
    let logits = model.decode(&ids, &memory).unwrap();
    assert_eq!(logits.shape(), &e["logits"].0[..]);
    let err = relative_error(&logits.to_vec().unwrap(), &e["logits"].1);
    eprintln!("{what}: encoder output off by {enc_err:.1e}, logits by {err:.1e}");
    assert!(
        err <= 1e-4,
        "{what}: logits off by {err:.2e} (relative to the largest)"
    );
}

#[test]
fn logits_match_transformers_on_the_random_fixture() {
    assert_logits_match_transformers(&fixture_model(), "Hugging Face layout");
}

#[test]
fn ctranslate2_layout_gives_the_same_logits() {
    // model.bin written by CTranslate2's own converter from the same fixture (float32).
    let dir = Path::new(FIXTURE).join("ct2");
    let (model, format) = load_whisper(&gpu(), &dir).unwrap();
    assert_eq!(format, WhisperFormat::CTranslate2);
    assert_eq!(model.config, fixture_model().config);
    assert_logits_match_transformers(&model, "CTranslate2 layout");
}

#[test]
fn saved_weights_load_back_with_the_same_logits() {
    let dir = std::env::temp_dir().join(format!("wgformer-whisper-saved-{}", std::process::id()));
    fixture_model().save_hf(&dir).unwrap();
    let (model, format) = load_whisper(&gpu(), &dir).unwrap();
    assert_eq!(format, WhisperFormat::HuggingFace);
    assert_logits_match_transformers(&model, "saved and loaded again");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cached_decoding_matches_the_full_decoder_position_by_position() {
    let model = fixture_model();
    let (mel, ids_t, ids) = mel_and_ids(&model);
    let _g = wgformer::no_grad();
    let memory = model.encode(&mel).unwrap();
    let full = model.decode(&ids_t, &memory).unwrap().to_vec().unwrap();
    let v = model.config.vocab_size;
    let mut caches = model.new_caches();
    // The first three ids as a prompt, then one at a time.
    let mut got = Vec::new();
    let prompt = Tensor::from_u32(model.gpu(), &ids[..3], &[1, 3]).unwrap();
    let h = model.decode_cached(&prompt, &memory, &mut caches).unwrap();
    got.extend(model.logits(&h).unwrap().to_vec().unwrap());
    for &id in &ids[3..] {
        let one = Tensor::from_u32(model.gpu(), &[id], &[1, 1]).unwrap();
        let h = model.decode_cached(&one, &memory, &mut caches).unwrap();
        got.extend(model.logits(&h).unwrap().to_vec().unwrap());
    }
    assert_eq!(got.len(), ids.len() * v);
    let err = relative_error(&got, &full);
    assert!(err <= 1e-5, "cached logits off by {err:.2e}");
}

/// The fixture's start and end tokens (its 100 ids mean nothing), nothing suppressed.
fn fixture_tokens(eot: u32) -> WhisperTokens {
    WhisperTokens {
        eot,
        sot: 1,
        no_timestamps: 97,
        timestamp_begin: 98,
        no_speech: Some(3),
        languages: Vec::new(),
        language: None,
        task: None,
        suppress: Vec::new(),
        blank: Vec::new(),
    }
}

/// `greedy_windows` decodes each window of a batch as `greedy` decodes it alone, including
/// after a window that ended early has left the batch.
#[test]
fn greedy_windows_decode_each_window_as_greedy_alone() {
    let model = fixture_model();
    let (mel, _, _) = mel_and_ids(&model);
    let values = mel.to_vec().unwrap();
    let shape = mel.shape().to_vec();
    let windows: Vec<Vec<f32>> = vec![
        values.clone(),
        values.iter().rev().copied().collect(),
        values.iter().map(|v| 0.5 * v - 0.25).collect(),
    ];
    let _g = wgformer::no_grad();
    let encode = |w: &[Vec<f32>]| {
        let mut s = shape.clone();
        s[0] = w.len();
        model.encode(&Tensor::from_slice(&gpu(), &w.concat(), &s).unwrap())
    };
    let prompt = [1u32, 97];
    let max_new = model.config.max_target_positions - prompt.len();
    let alone = |eot: u32| -> Vec<Greedy> {
        let tokens = fixture_tokens(eot);
        windows
            .iter()
            .map(|w| {
                let memory = encode(std::slice::from_ref(w)).unwrap();
                let dec = WhisperDecoder::new(&model, &memory, &tokens, false);
                block_on(greedy(&dec, &prompt, max_new)).unwrap()
            })
            .collect()
    };
    // End-of-text: the third token window 0 writes when nothing ends it, so that it ends
    // early and the others go on without it.
    let eot = alone(99)[0].tokens[2];
    let want = alone(eot);
    let lengths: Vec<usize> = want.iter().map(|g| g.tokens.len()).collect();
    assert!(
        lengths.iter().any(|&l| l != lengths[0]),
        "the windows should end at different steps: {lengths:?}"
    );
    let tokens = fixture_tokens(eot);
    let memory = encode(&windows).unwrap();
    let dec = WhisperDecoder::new(&model, &memory, &tokens, false);
    let got = block_on(greedy_windows(&dec, &prompt, max_new)).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.tokens, w.tokens, "window {i}");
        assert!(
            (g.sum_logprob - w.sum_logprob).abs() < 1e-4,
            "window {i}: {g:?} vs {w:?}"
        );
        assert!(
            (g.no_speech_prob - w.no_speech_prob).abs() < 1e-5,
            "window {i}"
        );
    }
    let err = block_on(greedy(&dec, &prompt, max_new)).unwrap_err();
    assert!(err.to_string().contains("greedy_windows"), "{err}");
}

/// `Whisper::random` (what the benchmark times where no weights are at hand) builds every
/// tensor a loaded model has, with the same shapes, the same values for the same seed, and
/// finite logits.
#[test]
fn a_random_model_has_the_tensors_of_a_loaded_one() {
    let loaded = fixture_model();
    let config = loaded.config.clone();
    let random = Whisper::random(&gpu(), config.clone(), 7).unwrap();
    let shapes = |m: &Whisper| -> Vec<Vec<usize>> {
        m.saved_tensors()
            .iter()
            .map(|t| t.shape().to_vec())
            .collect()
    };
    assert_eq!(shapes(&random), shapes(&loaded));
    let again = Whisper::random(&gpu(), config.clone(), 7).unwrap();
    let other = Whisper::random(&gpu(), config, 8).unwrap();
    let table = |m: &Whisper| m.embed_tokens.to_vec().unwrap();
    assert_eq!(table(&random), table(&again));
    assert_ne!(table(&random), table(&other));
    let (mel, ids, _) = mel_and_ids(&random);
    let _g = wgformer::no_grad();
    let logits = random
        .decode(&ids, &random.encode(&mel).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}

#[test]
fn a_few_adamw_steps_lower_the_fine_tuning_loss() {
    let model = fixture_model();
    let c = &model.config;
    let frames = c.window_frames();
    let examples: Vec<WhisperExample> = (0..2)
        .map(|i| WhisperExample {
            mel: values(frames * c.n_mels, 40 + i),
            prompt: vec![1, 3],
            target: vec![10 + i as u32, 20, 30, 2],
        })
        .collect();
    let batch = WhisperBatch::new(model.gpu(), &examples, frames, c.n_mels).unwrap();
    let hyper = AdamWParams {
        lr: 3e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(model.params(), hyper).unwrap();
    let mut losses = Vec::new();
    for _ in 0..4 {
        let loss = whisper_loss(&model, &batch).unwrap();
        losses.push(loss.to_scalar().unwrap());
        loss.backward().unwrap();
        opt.step().unwrap();
        opt.zero_grad();
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[3] < 0.8 * losses[0],
        "the loss should fall on a batch it trains on: {losses:?}"
    );
}

#[test]
fn the_loss_counts_the_transcript_tokens_only() {
    let model = fixture_model();
    let c = &model.config;
    let frames = c.window_frames();
    let example = |target: Vec<u32>| WhisperExample {
        mel: values(frames * c.n_mels, 7),
        prompt: vec![1, 3],
        target,
    };
    let gpu = model.gpu();
    let one = WhisperBatch::new(gpu, &[example(vec![10, 2])], frames, c.n_mels).unwrap();
    // input: 1 3 10; targets: (ignored) 10 2
    assert_eq!(one.input_ids.to_vec_u32().unwrap(), [1, 3, 10]);
    assert_eq!(
        one.targets.to_vec_u32().unwrap(),
        [wgformer::models::whisper::IGNORE, 10, 2]
    );
    // A longer example pads the shorter one, whose padding does not count.
    let two = WhisperBatch::new(
        gpu,
        &[example(vec![10, 2]), example(vec![10, 20, 30, 2])],
        frames,
        c.n_mels,
    )
    .unwrap();
    let t = two.targets.to_vec_u32().unwrap();
    assert_eq!(&t[..5], [u32::MAX, 10, 2, u32::MAX, u32::MAX]);
    let bad = WhisperBatch::new(gpu, &[example(vec![])], frames, c.n_mels);
    assert!(bad.is_err());
}

/// A copy of the fixture in a fresh temporary folder, for tests that break it.
fn broken_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgformer-whisper-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn bad_model_folders_give_errors_naming_the_file_and_the_key() {
    let gpu = gpu();
    let err = |dir: &Path| {
        load_whisper(&gpu, dir)
            .err()
            .expect("must fail")
            .to_string()
    };

    let empty = broken_copy("empty");
    std::fs::remove_file(empty.join("model.safetensors")).unwrap();
    let msg = err(&empty);
    assert!(
        msg.contains("neither model.safetensors") && msg.contains("fetch_whisper"),
        "{msg}"
    );

    let config = broken_copy("config");
    let text = std::fs::read_to_string(config.join("config.json")).unwrap();
    std::fs::write(
        config.join("config.json"),
        text.replace("\"d_model\"", "\"width\""),
    )
    .unwrap();
    let msg = err(&config);
    assert!(
        msg.contains("config.json") && msg.contains("\"d_model\""),
        "{msg}"
    );

    let shapes = broken_copy("shapes");
    let text = std::fs::read_to_string(shapes.join("config.json")).unwrap();
    std::fs::write(
        shapes.join("config.json"),
        text.replace("\"encoder_ffn_dim\": 48", "\"encoder_ffn_dim\": 40"),
    )
    .unwrap();
    let msg = err(&shapes);
    assert!(
        msg.contains("model.safetensors") && msg.contains("fc1.weight") && msg.contains("[40, 32]"),
        "{msg}"
    );

    let garbage = broken_copy("garbage");
    std::fs::write(garbage.join("model.safetensors"), b"not safetensors").unwrap();
    assert!(err(&garbage).contains("not a valid safetensors file"));

    let ct2 = broken_copy("ct2");
    std::fs::remove_file(ct2.join("model.safetensors")).unwrap();
    let bin = std::fs::read(Path::new(FIXTURE).join("ct2/model.bin")).unwrap();
    std::fs::write(ct2.join("model.bin"), &bin[..bin.len() / 2]).unwrap();
    let msg = err(&ct2);
    assert!(
        msg.contains("model.bin") && msg.contains("truncated"),
        "{msg}"
    );
    for d in [empty, config, shapes, garbage, ct2] {
        let _ = std::fs::remove_dir_all(d);
    }
}
