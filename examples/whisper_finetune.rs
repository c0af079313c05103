//! A few fine-tuning steps of a pretrained Whisper on clips of a manifest: the loss curve
//! behind the fine-tuning figure in BENCHMARKS.md, and a check that the backward pass of the
//! whole model runs on real weights. (Training proper belongs to `train_asr`; this is the
//! smallest loop around `whisper_loss`.)
//!
//!     cargo run --release --example whisper_finetune -- [--model DIR] [--manifest FILE]
//!         [--clips N] [--batch B] [--steps S] [--lr LR] [--save DIR]
//!
//! Trains on every other clip of the first 2 N of the manifest (N clips), B at a time.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use wgformer::inference::WhisperRecognizer;
use wgformer::models::whisper::{whisper_loss, WhisperBatch};
use wgformer::nn::Module;
use wgformer::ops::AdamWParams;
use wgformer::AdamW;

fn run() -> Result<(), String> {
    let mut model_dir = PathBuf::from("models/whisper-tiny.en");
    let mut manifest = PathBuf::from("data/asterisk/manifest.tsv");
    let (mut clips, mut batch, mut steps, mut lr) = (4usize, 2usize, 6usize, 1e-5f32);
    let mut save = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let v = it.next().ok_or(format!("{arg} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{arg} {v}: not a number"))
        };
        match arg.as_str() {
            "--model" => model_dir = v.into(),
            "--manifest" => manifest = v.into(),
            "--clips" => clips = num(&v)?.max(1),
            "--batch" => batch = num(&v)?.max(1),
            "--steps" => steps = num(&v)?,
            "--lr" => lr = v.parse().map_err(|_| format!("--lr {v}: not a number"))?,
            "--save" => save = Some(PathBuf::from(v)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let e = |e: wgformer::Error| e.to_string();
    let gpu = wgformer::Gpu::shared().map_err(e)?;
    let r = WhisperRecognizer::load(&gpu, &model_dir).map_err(e)?;
    let text = std::fs::read_to_string(&manifest)
        .map_err(|err| format!("{}: {err}", manifest.display()))?;
    let mut examples = Vec::new();
    for line in text.lines().step_by(2).take(clips) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, wav, transcript] = cols[..] else {
            return Err(format!("{}: bad line {line:?}", manifest.display()));
        };
        let samples = wgformer::audio::load_16k(std::path::Path::new(wav)).map_err(e)?;
        examples.push(r.example(&samples, transcript).map_err(e)?);
        eprintln!("train clip {name}: {transcript}");
    }
    let c = &r.model.config;
    let hyper = AdamWParams {
        lr,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(r.model.params(), hyper).map_err(e)?;
    for step in 0..steps {
        let started = Instant::now();
        let start = (step * batch) % examples.len();
        let chunk: Vec<_> = (0..batch)
            .map(|i| examples[(start + i) % examples.len()].clone())
            .collect();
        let b = WhisperBatch::new(&gpu, &chunk, c.window_frames(), c.n_mels).map_err(e)?;
        let loss = whisper_loss(&r.model, &b).map_err(e)?;
        let value = loss.to_scalar().map_err(e)?;
        loss.backward().map_err(e)?;
        opt.step().map_err(e)?;
        opt.zero_grad();
        eprintln!(
            "step {step}: loss {value:.4} ({batch} clips, {:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = save {
        r.model.save_hf(&dir).map_err(e)?;
        let tok = model_dir.join("tokenizer.json");
        std::fs::copy(&tok, dir.join("tokenizer.json"))
            .map_err(|err| format!("{}: {err}", tok.display()))?;
        eprintln!("saved {}", dir.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("whisper_finetune: {msg}");
            ExitCode::FAILURE
        }
    }
}
