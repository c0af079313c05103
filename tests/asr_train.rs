//! The speech-recognition job end to end on a tiny corpus made in the test (tones instead of
//! speech, so no TTS engine is needed): features, training with CE + CTC, checkpoints,
//! evaluation, then `Recognizer` loading the best checkpoint and transcribing a WAV file,
//! and clear errors for malformed input.
use std::path::{Path, PathBuf};
use wgformer::audio::write_wav_16k;
use wgformer::config::AsrConfig;
use wgformer::inference::{evaluate_checkpoint, Decoding, Recognizer};
use wgformer::train::asr::run;
use wgformer::train::RunOptions;
use wgformer::Gpu;

/// Each word is a tone; an utterance is its words' tones with short gaps.
fn speak(words: &[&str]) -> Vec<f32> {
    let mut out = vec![0.0f32; 800];
    for w in words {
        let freq = match *w {
            "TO" => 300.0,
            "BE" => 600.0,
            "OR" => 1200.0,
            _ => 2400.0,
        };
        out.extend(
            (0..2400).map(|i| 0.4 * (2.0 * std::f32::consts::PI * freq * i as f32 / 16000.0).sin()),
        );
        out.extend(std::iter::repeat_n(0.0, 800));
    }
    out
}

fn write_corpus(dir: &Path) {
    let sentences = [
        vec!["TO", "BE"],
        vec!["BE", "OR"],
        vec!["OR", "NOT"],
        vec!["NOT", "TO", "BE"],
    ];
    std::fs::create_dir_all(dir.join("wav")).unwrap();
    for split in ["train", "val", "test", "test_voices"] {
        let mut manifest = String::from("audio\tvoice\ttranscript\n");
        for (i, s) in sentences.iter().enumerate() {
            let name = format!("wav/{split}-{i}.wav");
            write_wav_16k(&dir.join(&name), &speak(s)).unwrap();
            manifest.push_str(&format!("{name}\ttone\t{}\n", s.join(" ")));
        }
        std::fs::write(dir.join(format!("{split}.tsv")), manifest).unwrap();
    }
}

fn config_yaml(dir: &Path, out: &Path, steps: usize, eval_interval: usize) -> String {
    format!(
        "data: {{corpus_dir: {}, build_corpus: false}}
features: {{n_mels: 20, speed_perturb: [1.0], noise_probability: 0.0, spec_augment: {{freq_masks: 0, time_masks: 0}}}}
model: {{d_model: 32, num_heads: 2, d_ff: 64, encoder_layers: 1, decoder_layers: 1, dropout: 0.0, conv_channels: 4, time_reduction: 4, ctc_weight: 0.3, max_source_len: 128, max_target_len: 32}}
train: {{max_frames: 2000, max_batch: 4, epochs: null, max_steps: {steps}, label_smoothing: 0.0, eval_interval: {eval_interval}, eval_utterances: 0, out_dir: {}, log_interval: 1}}
decode: {{beam_width: 2}}
optimizer: {{lr: 3e-3}}
scheduler: {{kind: constant, warmup_steps: 0}}
",
        dir.display(),
        out.display()
    )
}

fn config(dir: &Path, out: &Path, steps: usize) -> AsrConfig {
    AsrConfig::from_yaml_str(&config_yaml(dir, out, steps, 50), "asr-train-test.yaml").unwrap()
}

/// A whole run, nothing printed.
fn quiet() -> RunOptions {
    RunOptions {
        resume: false,
        verbose: false,
        stop_after: None,
    }
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgformer-asr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A fresh folder holding the tiny corpus (`<root>/corpus`) and a run folder (`<root>/run`).
fn temp_corpus(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let root = temp(tag);
    let (corpus, out) = (root.join("corpus"), root.join("run"));
    write_corpus(&corpus);
    (root, corpus, out)
}

/// A spent time budget ends training on the step it is on, with the final evaluation and a
/// best checkpoint, long before the planned steps.
#[test]
fn a_time_limit_stops_training_early_with_a_checkpoint() {
    let (root, corpus, out) = temp_corpus("time-limit");
    let mut config = config(&corpus, &out, 100_000);
    config.train.time_limit_minutes = Some(1e-4); // 6 ms: spent after the first step
    let opts = quiet();
    let summary = run(&config, &opts).unwrap();
    assert_eq!(summary.steps, 1);
    assert!(out.join("checkpoints/best/model.safetensors").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_tiny_recognizer_trains_checkpoints_and_transcribes_a_wav_file() {
    let (root, corpus, out) = temp_corpus("run");
    let summary = run(&config(&corpus, &out, 150), &quiet()).unwrap();
    assert_eq!(summary.steps, 150);
    assert_eq!(summary.train_utterances, 4);
    // Four sentences of four tone-words: the model memorises them.
    assert!(
        summary.best_val_cer < 0.2,
        "val CER {}",
        summary.best_val_cer
    );
    assert!(
        summary.test.as_ref().unwrap().greedy.cer < 0.2,
        "test CER {:?}",
        summary.test.as_ref().unwrap().greedy
    );
    for file in ["metrics.jsonl", "summary.json", "config.yaml"] {
        assert!(out.join(file).exists(), "{file}");
    }
    let best = out.join("checkpoints/best");
    for file in [
        "model.safetensors",
        "features.json",
        "tokenizer.json",
        "config.yaml",
    ] {
        assert!(best.join(file).exists(), "checkpoint file {file}");
    }
    // The saved checkpoint transcribes a WAV file on its own, greedy and beam.
    let gpu = Gpu::shared().unwrap();
    let recognizer = Recognizer::load(&gpu, &best, None).unwrap();
    let clip = root.join("clip.wav");
    write_wav_16k(&clip, &speak(&["NOT", "TO", "BE"])).unwrap();
    for beam_width in [1, 3] {
        let decoding = recognizer.decoding.with_beam(beam_width);
        let heard = recognizer.transcribe_file(&clip, &decoding).unwrap();
        assert_eq!(heard.text, "NOT TO BE", "beam {beam_width}");
        assert!(!heard.no_speech);
    }

    // Fine-tuning starts from the checkpoint: after one step at a negligible learning rate
    // the model still transcribes what it learnt (a fresh model could not).
    let mut tune = config(&corpus, &root.join("tuned"), 1);
    tune.model.init_from = Some(best.clone());
    tune.optimizer.lr = 1e-9;
    let tuned = run(&tune, &quiet()).unwrap();
    assert!(
        tuned.best_val_cer < 0.2,
        "val CER {} after starting from the checkpoint",
        tuned.best_val_cer
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Scoring a checkpoint with an LM: at fusion weight 0 it gives the figures of the test report
/// that training ended with, and it also runs with the LM weighed in.
#[test]
fn a_checkpoint_is_scored_with_a_fused_lm() {
    let (root, corpus, out) = temp_corpus("fused");
    let opts = quiet();
    let summary = run(&config(&corpus, &out, 100), &opts).unwrap();
    // A character LM of the recognizer's alphabet over the corpus's sentences.
    let text = root.join("lm.txt");
    std::fs::write(&text, "TO BE OR NOT TO BE\n".repeat(40)).unwrap();
    let lm_yaml = format!(
        "tokenizer: {{kind: asr}}\n\
         data: {{path: {}, val_fraction: 0.1, test_fraction: 0.1}}\n\
         model: {{d_model: 32, d_ff: 64, num_layers: 1, num_heads: 2, dropout: 0.0, weight_tying: true, max_seq_len: 32}}\n\
         train: {{seq_len: 16, batch_size: 4, max_steps: 5, eval_interval: 5, eval_batches: 1, out_dir: {}}}\n",
        text.display(),
        root.join("lm").display()
    );
    let lm_config = wgformer::config::Config::from_yaml_str(&lm_yaml, "lm.yaml").unwrap();
    let lm_opts = wgformer::train::RunOptions {
        resume: false,
        verbose: false,
        stop_after: None,
    };
    wgformer::train::clm::run(&lm_config, &lm_opts).unwrap();
    let lm_dir = root.join("lm/checkpoints/best");
    let gpu = Gpu::shared().unwrap();
    let best = out.join("checkpoints/best");
    let decoding = Decoding::from_config(&config(&corpus, &out, 100).decode);
    let unfused = evaluate_checkpoint(&gpu, &best, Some(&lm_dir), &decoding).unwrap();
    for (fused, batched) in [
        (&unfused.greedy, &summary.test.as_ref().unwrap().greedy),
        (&unfused.beam, &summary.test.as_ref().unwrap().beam),
        (
            &unfused.voices_greedy,
            &summary.test.as_ref().unwrap().voices_greedy,
        ),
    ] {
        assert_eq!(fused.utterances, batched.utterances);
        assert_eq!(fused.cer, batched.cer, "{fused:?} vs {batched:?}");
    }
    let weighted = Decoding {
        lm_weight: 0.5,
        ..decoding
    };
    let fused = evaluate_checkpoint(&gpu, &best, Some(&lm_dir), &weighted).unwrap();
    assert_eq!(fused.beam.utterances, 4);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn malformed_inputs_give_errors_naming_the_file() {
    let root = temp("bad");
    std::fs::create_dir_all(&root).unwrap();
    let gpu = Gpu::shared().unwrap();
    // Not a checkpoint.
    let err = Recognizer::load(&gpu, &root, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a recognizer checkpoint"), "{err}");
    // A language model handed to the recognizer, and the recognizer handed to the LM loader,
    // are named as what they are.
    let lm = root.join("lm");
    std::fs::create_dir_all(&lm).unwrap();
    std::fs::write(lm.join("config.yaml"), "{}").unwrap();
    std::fs::write(lm.join("model.safetensors"), b"").unwrap();
    let err = Recognizer::load(&gpu, &lm, None).err().unwrap().to_string();
    assert!(
        err.contains("language-model checkpoint (train_clm)"),
        "{err}"
    );
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/asr");
    let err = wgformer::inference::clm::load_model(&gpu, &shipped)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("speech recognizer checkpoint"), "{err}");
    // A fine-tuning start that is not a checkpoint names the key.
    let mut bad_init = config(&root.join("corpus"), &root.join("run"), 1);
    bad_init.model.init_from = Some(root.join("nope"));
    let err = run(&bad_init, &quiet()).unwrap_err().to_string();
    assert!(
        err.contains("model.init_from") && err.contains("nope"),
        "{err}"
    );
    // A missing manifest with building switched off.
    let err = run(
        &config(&root.join("nowhere"), &root.join("run"), 1),
        &quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train.tsv") && err.contains("build_corpus"),
        "{err}"
    );
    // A manifest pointing at a file that is not audio.
    write_corpus(&root.join("corpus"));
    std::fs::write(
        root.join("corpus/wav/train-2.wav"),
        b"RIFF....WAVEnot really",
    )
    .unwrap();
    let err = run(
        &config(&root.join("corpus"), &root.join("run"), 1),
        &quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train-2.wav"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The example binary: `cargo test` builds examples next to the test binaries
/// (target/<profile>/examples/); a test run alone builds it first.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .ok()?;
        assert!(status.success(), "cargo build --example {name} failed");
    }
    path.exists().then_some(path)
}

#[test]
fn the_asr_example_exits_non_zero_with_a_clear_message_on_a_malformed_wav() {
    let Some(asr) = example("asr") else {
        panic!("the asr example is not in target/<profile>/examples after building it");
    };
    let root = temp("cli");
    std::fs::create_dir_all(&root).unwrap();
    let bad = root.join("broken.wav");
    std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEfmt definitely not audio").unwrap();
    // A real (tiny, untrained) checkpoint so the failure is the WAV's, not the model's.
    let corpus = root.join("corpus");
    write_corpus(&corpus);
    run(&config(&corpus, &root.join("run"), 1), &quiet()).unwrap();
    let out = std::process::Command::new(&asr)
        .arg(&bad)
        .arg("--checkpoint")
        .arg(root.join("run/checkpoints/best"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.wav"),
        "stderr names the file: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And a missing file.
    let out = std::process::Command::new(&asr)
        .arg(root.join("nope.wav"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_shipped_recognizer_transcribes_a_held_out_sentence() {
    // models/asr (see README): a test-set sentence it never saw in training, spoken by a
    // training voice (espeak-ng en-gb-x-gbcwmd+f2): the transcript is close, not exact.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gpu = Gpu::shared().unwrap();
    let recognizer = Recognizer::load(&gpu, &root.join("models/asr"), None).unwrap();
    let clip = root.join("tests/fixtures/audio/held_out_sentence.wav");
    let reference = "WITHIN MY TENT HIS BONES TO NIGHT SHALL LIE";
    for decoding in [
        recognizer.decoding.clone(),
        Decoding::attention_greedy(),
        Decoding::ctc_best_path(),
    ] {
        let text = recognizer.transcribe_file(&clip, &decoding).unwrap().text;
        let mut rates = wgformer::inference::ErrorRates::default();
        rates.add(reference, &text);
        println!("{decoding:?}: {text:?}, CER {:.3}", rates.cer());
        assert!(
            rates.cer() < 0.4,
            "{decoding:?}: {text:?} is too far from {reference:?}"
        );
    }
}

/// The training loss of every step, the last logged one where a resumed run logged it again.
fn step_losses(out: &Path) -> Vec<f64> {
    let mut by_step = std::collections::BTreeMap::new();
    let records = wgformer::train::metrics::read_records(&out.join("metrics.jsonl"), "train");
    for r in records.unwrap() {
        by_step.insert(
            r["step"].as_f64().unwrap() as u64,
            r["loss"].as_f64().unwrap(),
        );
    }
    by_step.into_values().collect()
}

/// The ASR trainer shares the CLM's checkpoint code, but not its loop (epochs of length
/// buckets, skipping the batches a resumed epoch already did): SIGKILL `train_asr` three times
/// at moments tied to its progress, resume each time, and the losses of all 30 steps equal an
/// uninterrupted run's.
#[test]
fn asr_training_killed_three_times_resumes_to_the_uninterrupted_losses() {
    use std::time::{Duration, Instant};
    let Some(train_asr) = example("train_asr") else {
        panic!("the train_asr example could not be built");
    };
    const STEPS: usize = 30;
    let root = temp("kill");
    let corpus = root.join("corpus");
    write_corpus(&corpus);
    let (reference, killed) = (root.join("reference"), root.join("killed"));
    let reference_config = AsrConfig::from_yaml_str(
        &config_yaml(&corpus, &reference, STEPS, 2),
        "reference.yaml",
    )
    .unwrap();
    let opts = quiet();
    run(&reference_config, &opts).unwrap();
    let want = step_losses(&reference);
    assert_eq!(want.len(), STEPS);

    let config_file = root.join("killed.yaml");
    std::fs::write(&config_file, config_yaml(&corpus, &killed, STEPS, 2)).unwrap();
    let spawn = || {
        std::process::Command::new(&train_asr)
            .arg("--config")
            .arg(&config_file)
            .arg("--resume")
            .env("WGFORMER_AUTOTUNE", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let logged = || {
        std::fs::read_to_string(killed.join("metrics.jsonl"))
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n') && l.contains("\"train\""))
            .count()
    };
    for (kill, ahead) in [3usize, 4, 5].into_iter().enumerate() {
        let before = logged();
        let mut child = spawn();
        let start = Instant::now();
        while logged() < before + ahead && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(120), "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "kill {kill}: the run ended first"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let latest = wgformer::checkpoint::latest(&killed.join("checkpoints")).unwrap();
        if let Some(dir) = latest {
            Recognizer::load(&Gpu::shared().unwrap(), &dir, None)
                .unwrap_or_else(|e| panic!("kill {kill}: {} unreadable: {e}", dir.display()));
        }
    }
    let status = spawn().wait().unwrap();
    assert!(status.success(), "the final resume failed: {status}");
    let got = step_losses(&killed);
    assert_eq!(got.len(), STEPS);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "step {}: resumed {g}, uninterrupted {w}", i + 1);
    }
    let _ = std::fs::remove_dir_all(&root);
}
