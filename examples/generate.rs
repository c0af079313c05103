//! Generate text with a trained causal LM checkpoint.
//!
//!     cargo run --release --example generate -- --checkpoint runs/clm/checkpoints/best --prompt "ROMEO:" \
//!         [--max-new 200] [--temperature 0.8] [--top-k 40] [--top-p 0.95] [--repetition-penalty 1.1] \
//!         [--beam 4 --length-penalty 0.6] [--seed 1]

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wgformer::data::{EOS, SOS};
use wgformer::decode::{beam_search, sample, BeamConfig, CausalLmDecoder, SamplingConfig};
use wgformer::inference::clm::load_model;
use wgformer::Gpu;

/// Continue a prompt with a trained causal LM: sampling (temperature, top-k, top-p,
/// repetition penalty) or beam search.
#[derive(Parser, Debug)]
#[command(name = "generate")]
struct Args {
    /// A checkpoint directory written by train_clm (e.g. runs/clm/checkpoints/best).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    #[arg(long, default_value = "")]
    prompt: String,
    /// Tokens to generate (fewer if the model's context ends first).
    #[arg(long, default_value_t = 200)]
    max_new: usize,
    /// Softmax temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8, value_parser = non_negative)]
    temperature: f32,
    /// Sample from the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Sample from the smallest set of tokens whose probability reaches p.
    #[arg(long, default_value_t = 1.0, value_parser = probability)]
    top_p: f32,
    /// > 1 makes tokens already in the text less likely.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Beam search with this many beams instead of sampling.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    beam: Option<u64>,
    /// Beam search: scores are divided by length^penalty.
    #[arg(long, default_value_t = 0.6, value_parser = non_negative, requires = "beam")]
    length_penalty: f32,
}

fn number(s: &str) -> Result<f32, String> {
    s.parse::<f32>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or(format!("{s:?} is not a finite number"))
}

fn non_negative(s: &str) -> Result<f32, String> {
    number(s).and_then(|v| {
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} is negative"))
        }
    })
}

fn positive(s: &str) -> Result<f32, String> {
    number(s).and_then(|v| {
        if v > 0.0 {
            Ok(v)
        } else {
            Err(format!("{v} must be > 0"))
        }
    })
}

fn probability(s: &str) -> Result<f32, String> {
    number(s).and_then(|v| {
        if v > 0.0 && v <= 1.0 {
            Ok(v)
        } else {
            Err(format!("{v} is not in (0, 1]"))
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match generate(&args) {
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

fn generate(args: &Args) -> Result<String, String> {
    let gpu = Gpu::shared().map_err(|e| e.to_string())?;
    let (model, tokenizer, _) = load_model(&gpu, &args.checkpoint).map_err(|e| e.to_string())?;
    let mut ids = vec![SOS];
    ids.extend(tokenizer.encode(&args.prompt));
    let context = model.config.max_seq_len;
    if ids.len() >= context {
        return Err(format!(
            "the prompt is {} tokens and the model's context (model.max_seq_len) is {context}: \
             nothing can follow it; shorten the prompt",
            ids.len() - 1
        ));
    }
    let room = context - ids.len();
    if args.max_new > room {
        eprintln!("generate: the model's context is {context} positions; generating {room} tokens");
    }
    let decoder = CausalLmDecoder(&model);
    let max_new_tokens = args.max_new.min(room);
    let out = match args.beam {
        Some(width) => beam_search(
            &decoder,
            &ids,
            &BeamConfig {
                beam_width: width as usize,
                max_new_tokens,
                length_penalty: args.length_penalty,
                eos: Some(EOS),
            },
        ),
        None => sample(
            &decoder,
            &ids,
            &SamplingConfig {
                max_new_tokens,
                temperature: args.temperature,
                top_k: args.top_k,
                top_p: args.top_p,
                repetition_penalty: args.repetition_penalty,
                eos: Some(EOS),
                seed: args.seed,
            },
        ),
    }
    .map_err(|e| e.to_string())?;
    Ok(format!("{}{}", args.prompt, tokenizer.decode(&out)))
}
