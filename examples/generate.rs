//! Generate text with a trained causal LM checkpoint.
//!
//!     cargo run --release --example generate -- --checkpoint runs/clm/checkpoints/best --prompt "ROMEO:" \
//!         [--max-new 200] [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--repetition-penalty 1.1] \
//!         [--beam 4 --length-penalty 0.6] [--seed 1]

use std::process::ExitCode;
use wgformer::data::{EOS, SOS};
use wgformer::decode::{beam_search, sample, BeamConfig, CausalLmDecoder, SamplingConfig};
use wgformer::inference::clm::load_model;
use wgformer::Gpu;

fn main() -> ExitCode {
    wgformer::ops::enable_autotune_unless_disabled();
    match run() {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("generate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let (mut checkpoint, mut prompt) = (None, String::new());
    let mut cfg = SamplingConfig {
        max_new_tokens: 200,
        temperature: 0.8,
        top_k: 40,
        ..Default::default()
    };
    let (mut beam, mut length_penalty) = (0usize, 0.6f32);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--checkpoint" => checkpoint = Some(value()?),
            "--prompt" => prompt = value()?,
            "--max-new" => cfg.max_new_tokens = num(value()?)? as usize,
            "--temperature" => cfg.temperature = num(value()?)? as f32,
            "--top-k" => cfg.top_k = num(value()?)? as usize,
            "--top-p" => cfg.top_p = num(value()?)? as f32,
            "--repetition-penalty" => cfg.repetition_penalty = num(value()?)? as f32,
            "--seed" => cfg.seed = num(value()?)? as u64,
            "--beam" => beam = num(value()?)? as usize,
            "--length-penalty" => length_penalty = num(value()?)? as f32,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dir = checkpoint.ok_or("--checkpoint DIR is required (e.g. runs/clm/checkpoints/best)")?;
    let gpu = Gpu::shared().map_err(|e| e.to_string())?;
    let (model, tokenizer, _) =
        load_model(&gpu, std::path::Path::new(&dir)).map_err(|e| e.to_string())?;
    let mut ids = vec![SOS];
    ids.extend(tokenizer.encode(&prompt));
    let room = model.config.max_seq_len.saturating_sub(ids.len());
    if cfg.max_new_tokens > room {
        eprintln!(
            "generate: the model's context is {} positions; generating {room} tokens",
            model.config.max_seq_len
        );
        cfg.max_new_tokens = room;
    }
    let decoder = CausalLmDecoder(&model);
    let out = if beam > 0 {
        let bc = BeamConfig {
            beam_width: beam,
            max_new_tokens: cfg.max_new_tokens,
            length_penalty,
            eos: Some(EOS),
        };
        beam_search(&decoder, &ids, &bc)
    } else {
        cfg.eos = Some(EOS);
        sample(&decoder, &ids, &cfg)
    }
    .map_err(|e| e.to_string())?;
    Ok(format!("{prompt}{}", tokenizer.decode(&out)))
}
