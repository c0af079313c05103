//! A pretrained Whisper transcribing audio, as faster-whisper does it: the log-mel of the whole
//! clip (`audio::whisper_log_mel`), cut into consecutive 30 s windows; each window encoded once
//! on the GPU, then decoded greedily or with beam search over the KV caches, starting from
//! `<|startoftranscript|>` (+ language and task) + `<|notimestamps|>`; a window whose
//! no-speech probability is above 0.6 while its tokens average a log-probability under -1 is
//! silence and gives no text.
//!
//! Greedy windows without timestamps are independent of each other, so they can be decoded
//! together (`WhisperOptions::batch_windows`): the windows of one long clip, or of many clips
//! (`transcribe_many`), encoded as one batch and decoded by `greedy_windows`, one sequence
//! per window. The transcripts are those of one window at a time, up to the rounding of
//! products with more rows.
//!
//! With timestamps the decoder also writes timestamp tokens (openai-whisper's rules), and the
//! next window starts at the last closed segment instead of 30 s later: the model then keeps
//! transcribing where plain decoding may stop after its first sentence (on the Asterisk
//! prompts longer than 20 s, greedy WER 13.5% -> 5.9%). `Timestamps::Auto`, the default, uses
//! them for clips longer than 20 s only, so shorter clips decode exactly as faster-whisper's
//! `without_timestamps=True`. Only the transcript's text is returned either way.

mod decoder;
mod tokens;

pub use decoder::{greedy, greedy_windows, score, Greedy, WhisperDecoder};
pub use tokens::WhisperTokens;

use crate::audio::{self, whisper_log_mel};
use crate::data::ByteBpe;
use crate::decode::{beam_search_async, BeamConfig};
use crate::error::{Error, Result};
use crate::gpu::{block_on, Gpu};
use crate::inference::speech_presence::sounds_like_speech;
use crate::models::whisper::{
    with_whisper_files, ParsedWhisper, Whisper, WhisperExample, WhisperFormat, WhisperWeights,
};
use crate::ops::HalfMatrix;
use crate::tensor::Tensor;
use std::path::Path;
use std::time::{Duration, Instant};

/// faster-whisper's `no_speech_threshold` and `log_prob_threshold`.
const NO_SPEECH_THRESHOLD: f64 = 0.6;
const LOG_PROB_THRESHOLD: f64 = -1.0;

/// Clips longer than this decode with timestamps under `Timestamps::Auto`.
pub const AUTO_TIMESTAMPS_SECONDS: f64 = 20.0;

/// Whether the decoder writes timestamp tokens and windows seek by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamps {
    /// faster-whisper's `without_timestamps=True`: windows follow each other every 30 s.
    Off,
    On,
    /// On for clips longer than `AUTO_TIMESTAMPS_SECONDS`, off otherwise.
    Auto,
}

/// How `WhisperRecognizer::transcribe` decodes.
#[derive(Clone, Debug)]
pub struct WhisperOptions {
    /// 1: greedy.
    pub beam_width: usize,
    /// Timestamp tokens, and windows that start where the last segment closed.
    pub timestamps: Timestamps,
    /// Scores are divided by length^length_penalty when beams are compared (faster-whisper: 1).
    pub length_penalty: f32,
    /// Windows encoded and decoded together (greedy decoding without timestamps; beam search
    /// and timestamped windows go one at a time). 1: one window at a time, as faster-whisper's
    /// `WhisperModel.transcribe`; more is its `BatchedInferencePipeline`'s `batch_size`.
    pub batch_windows: usize,
}

impl Default for WhisperOptions {
    fn default() -> Self {
        WhisperOptions {
            beam_width: 1,
            timestamps: Timestamps::Auto,
            length_penalty: 1.0,
            batch_windows: 1,
        }
    }
}

/// A Whisper model with its tokenizer, loaded from a Hugging Face or CTranslate2 directory.
pub struct WhisperRecognizer {
    pub model: Whisper,
    pub tokenizer: ByteBpe,
    pub tokens: WhisperTokens,
    pub format: WhisperFormat,
    /// The output projection (the token embedding, vocab x d, read at every decoding step) in
    /// half precision, made at load where every value of it is a half exactly (weights shipped
    /// as f16, such as the CTranslate2 files): the same logits from half the bytes. `None`
    /// for f32 weights that are not halves (a fine-tuned checkpoint).
    pub output_half: Option<HalfMatrix>,
}

/// Time spent in `transcribe_timed`: the encoder over `windows` windows (recorded and run
/// to completion), the decoder over `tokens` tokens (end-of-text included; for beam search,
/// the tokens of the best hypothesis; with windows decoded together, the tokens of them all).
#[derive(Clone, Copy, Debug, Default)]
pub struct WhisperTimings {
    pub windows: usize,
    pub tokens: usize,
    pub encoder: Duration,
    pub decoder: Duration,
}

/// A window waiting to be decoded with others: its clip, its mel frames (a whole window,
/// padded) and how many of them are real.
struct PendingWindow {
    clip: usize,
    frames: Vec<f32>,
    len: usize,
}

/// One decoded window: its text tokens and where the next window starts.
struct WindowResult {
    text_tokens: Vec<u32>,
    /// Tokens decoded, end-of-text included.
    steps: usize,
    /// Mel frames consumed from the window's start.
    advance: usize,
}

impl WhisperRecognizer {
    /// Whether `dir` holds a Whisper model this loads (`config.json` and `tokenizer.json`
    /// beside `model.safetensors` or `model.bin`): how a command line tells it from a wgformer
    /// recognizer checkpoint.
    pub fn is_whisper_dir(dir: &Path) -> bool {
        dir.join("tokenizer.json").is_file()
            && crate::checkpoint::Kind::of(dir) == crate::checkpoint::Kind::Whisper
    }

    /// Load the model in `dir` (layout detected from its files) and its `tokenizer.json`.
    /// A multilingual model transcribes English.
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<WhisperRecognizer> {
        let tok_file = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&tok_file).map_err(|e| Error::io(&tok_file, e))?;
        with_whisper_files(dir, |weights| {
            WhisperRecognizer::from_parsed(gpu, ParsedWhisper::parse(weights)?, &tok_file, &text)
        })
    }

    /// The model of `weights` and the `tokenizer.json` text held in memory (what a browser
    /// page fetched); `tok_file` names the tokenizer in errors. A future, as a page awaits
    /// the device's work (the loading itself reads nothing back).
    pub async fn from_weights(
        gpu: &Gpu,
        weights: WhisperWeights<'_>,
        tok_file: &Path,
        tokenizer_json: &str,
    ) -> Result<WhisperRecognizer> {
        let parsed = ParsedWhisper::parse(weights)?;
        WhisperRecognizer::from_parsed(gpu, parsed, tok_file, tokenizer_json)
    }

    fn from_parsed(
        gpu: &Gpu,
        parsed: ParsedWhisper,
        tok_file: &Path,
        tokenizer_json: &str,
    ) -> Result<WhisperRecognizer> {
        // Made from the values as loaded, before they go to the device: no read-back.
        let output_half = output_half(gpu, &parsed)?;
        let format = parsed.format;
        let model = parsed.upload(gpu)?;
        let tok_file = tok_file.to_path_buf();
        let tokenizer = ByteBpe::from_json(&tok_file, tokenizer_json)?;
        let multilingual = model.config.is_multilingual();
        let tokens = WhisperTokens::new(&tokenizer, &tok_file, multilingual, "en")?;
        if tokens.timestamp_begin as usize >= model.config.vocab_size {
            return Err(Error::format(
                &tok_file,
                format!(
                    "its <|notimestamps|> ({}) leaves no timestamp tokens in the model's {} \
                     tokens: tokenizer and model do not belong together",
                    tokens.no_timestamps, model.config.vocab_size
                ),
            ));
        }
        Ok(WhisperRecognizer {
            model,
            tokenizer,
            tokens,
            format,
            output_half,
        })
    }

    /// Transcript of an audio file (WAV of any rate and channel count, resampled to 16 kHz).
    pub fn transcribe_file(&self, path: &Path, opts: &WhisperOptions) -> Result<String> {
        self.transcribe(&audio::load_16k(path)?, opts)
    }

    /// Transcript of 16 kHz mono samples, window after window.
    pub fn transcribe(&self, samples: &[f32], opts: &WhisperOptions) -> Result<String> {
        Ok(self.transcribe_timed(samples, opts)?.0)
    }

    /// `transcribe` with every readback awaited (a browser page).
    pub async fn transcribe_async(&self, samples: &[f32], opts: &WhisperOptions) -> Result<String> {
        Ok(self.transcribe_timed_async(samples, opts).await?.0)
    }

    /// `transcribe`, and where the time went. Audio that is silent or steady noise by its levels
    /// (`speech_presence::sounds_like_speech`) gives an empty transcript without decoding:
    /// Whisper writes words for it (faster-whisper does too, without its VAD filter).
    pub fn transcribe_timed(
        &self,
        samples: &[f32],
        opts: &WhisperOptions,
    ) -> Result<(String, WhisperTimings)> {
        block_on(self.transcribe_timed_async(samples, opts))
    }

    /// `transcribe_timed` with every readback awaited. A browser page has no clock here: its
    /// timings stay zero.
    pub async fn transcribe_timed_async(
        &self,
        samples: &[f32],
        opts: &WhisperOptions,
    ) -> Result<(String, WhisperTimings)> {
        let (mut texts, timings) = self.transcribe_many_timed_async(&[samples], opts).await?;
        Ok((texts.remove(0), timings))
    }

    /// Transcripts of several clips of 16 kHz mono samples, in order. Greedy windows without
    /// timestamps are decoded `opts.batch_windows` at a time, whichever clips they come from.
    pub fn transcribe_many(
        &self,
        clips: &[&[f32]],
        opts: &WhisperOptions,
    ) -> Result<(Vec<String>, WhisperTimings)> {
        block_on(self.transcribe_many_timed_async(clips, opts))
    }

    /// `transcribe_many` with every readback awaited.
    pub async fn transcribe_many_timed_async(
        &self,
        clips: &[&[f32]],
        opts: &WhisperOptions,
    ) -> Result<(Vec<String>, WhisperTimings)> {
        let c = &self.model.config;
        let mut timings = WhisperTimings::default();
        let mut tokens = vec![Vec::new(); clips.len()];
        let mut pending = Vec::new();
        let batch = opts.batch_windows.max(1);
        let window = c.window_frames();
        for (clip, samples) in clips.iter().enumerate() {
            let levels = crate::audio::Levels::of(samples);
            if !sounds_like_speech(levels.speech_db, levels.range_db()) {
                continue;
            }
            let mel = whisper_log_mel(samples, c.n_mels);
            // faster-whisper leaves out the last frame (it is mostly the appended padding).
            let content = mel.frames.saturating_sub(1);
            let timestamps = match opts.timestamps {
                Timestamps::Off => false,
                Timestamps::On => true,
                Timestamps::Auto => samples.len() as f64 > AUTO_TIMESTAMPS_SECONDS * 16_000.0,
            };
            if timestamps || opts.beam_width > 1 {
                tokens[clip] = self
                    .one_window_at_a_time(&mel, opts, timestamps, &mut timings)
                    .await?;
                continue;
            }
            for seek in (0..content).step_by(window) {
                let len = window.min(content - seek);
                let frames = mel.window(seek, len, window);
                pending.push(PendingWindow { clip, frames, len });
                if pending.len() == batch {
                    self.decode_together(&mut pending, &mut tokens, &mut timings)
                        .await?;
                }
            }
        }
        self.decode_together(&mut pending, &mut tokens, &mut timings)
            .await?;
        let texts = tokens
            .iter()
            .map(|t| self.tokenizer.decode(t).trim().to_string())
            .collect();
        Ok((texts, timings))
    }

    /// The text tokens of a clip's windows decoded one after the other (beam search, or
    /// timestamps: the next window starts where this one's last segment closed).
    async fn one_window_at_a_time(
        &self,
        mel: &audio::WhisperMel,
        opts: &WhisperOptions,
        timestamps: bool,
        timings: &mut WhisperTimings,
    ) -> Result<Vec<u32>> {
        let window = self.model.config.window_frames();
        let content = mel.frames.saturating_sub(1);
        let mut text_tokens = Vec::new();
        let mut seek = 0;
        while seek < content {
            let len = window.min(content - seek);
            let started = clock();
            let memory = self
                .model
                .encode_windows(&[&mel.window(seek, len, window)])?;
            self.model.gpu().synchronize()?;
            timings.encoder += since(started);
            let started = clock();
            let r = self.decode_window(&memory, len, opts, timestamps).await?;
            timings.decoder += since(started);
            timings.windows += 1;
            timings.tokens += r.steps;
            text_tokens.extend(r.text_tokens);
            seek += r.advance;
        }
        Ok(text_tokens)
    }

    /// Encode and greedily decode the `pending` windows together (emptying it), appending each
    /// window's text tokens to its clip's.
    async fn decode_together(
        &self,
        pending: &mut Vec<PendingWindow>,
        tokens: &mut [Vec<u32>],
        timings: &mut WhisperTimings,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let started = clock();
        let frames: Vec<&[f32]> = pending.iter().map(|w| w.frames.as_slice()).collect();
        let memory = self.model.encode_windows(&frames)?;
        self.model.gpu().synchronize()?;
        timings.encoder += since(started);
        let started = clock();
        let dec = WhisperDecoder::new(&self.model, &memory, &self.tokens, false)
            .with_output_half(self.output_half.as_ref());
        let prompt = self.tokens.prompt(false);
        let max_new = self.model.config.max_target_positions - prompt.len();
        let decoded = greedy_windows(&dec, &prompt, max_new).await?;
        timings.decoder += since(started);
        for (w, g) in pending.drain(..).zip(decoded) {
            let r = self.window_result(g, w.len, false);
            timings.windows += 1;
            timings.tokens += r.steps;
            tokens[w.clip].extend(r.text_tokens);
        }
        Ok(())
    }

    /// A fine-tuning example (`models::whisper::whisper_loss`) of 16 kHz `samples` (at most
    /// one 30 s window) and their transcript: the window's mel, the start sequence without
    /// timestamps, and the transcript's tokens (after a space, as Whisper writes text) then
    /// end-of-text.
    pub fn example(&self, samples: &[f32], transcript: &str) -> Result<WhisperExample> {
        let c = &self.model.config;
        let mel = whisper_log_mel(samples, c.n_mels);
        let window = c.window_frames();
        let content = mel.frames.saturating_sub(1);
        if content > window {
            return Err(Error::shape(
                "WhisperRecognizer::example",
                format!(
                    "{:.1} s of audio is more than one 30 s window; cut it first",
                    samples.len() as f64 / 16_000.0
                ),
            ));
        }
        let prompt = self.tokens.prompt(false);
        let mut target = self.tokenizer.encode(&format!(" {}", transcript.trim()));
        target.push(self.tokens.eot);
        if prompt.len() + target.len() > c.max_target_positions {
            return Err(Error::shape(
                "WhisperRecognizer::example",
                format!(
                    "{} tokens of transcript exceed the decoder's {} positions",
                    target.len(),
                    c.max_target_positions - prompt.len()
                ),
            ));
        }
        Ok(WhisperExample {
            mel: mel.window(0, content, window),
            prompt,
            target,
        })
    }

    /// Decode one window with `len` real frames (the rest is padding).
    async fn decode_window(
        &self,
        memory: &Tensor,
        len: usize,
        opts: &WhisperOptions,
        timestamps: bool,
    ) -> Result<WindowResult> {
        let t = &self.tokens;
        let dec = WhisperDecoder::new(&self.model, memory, t, timestamps)
            .with_output_half(self.output_half.as_ref());
        let prompt = t.prompt(timestamps);
        let max_new = self.model.config.max_target_positions - prompt.len();
        let decoded = if opts.beam_width <= 1 {
            greedy(&dec, &prompt, max_new).await?
        } else {
            let cfg = BeamConfig {
                beam_width: opts.beam_width,
                max_new_tokens: max_new,
                length_penalty: opts.length_penalty,
                eos: Some(t.eot),
            };
            let mut tokens = beam_search_async(&dec, &prompt, &cfg).await?;
            tokens.retain(|&id| id != t.eot);
            let no_speech_prob = dec.no_speech_prob();
            // Scored again only where the no-speech check needs it.
            let sum_logprob = match no_speech_prob > NO_SPEECH_THRESHOLD {
                true => score(&dec, &prompt, &tokens).await?,
                false => 0.0,
            };
            Greedy {
                tokens,
                sum_logprob,
                no_speech_prob,
            }
        };
        Ok(self.window_result(decoded, len, timestamps))
    }

    /// What a decoded window with `len` real frames gives: nothing where it is silence by
    /// faster-whisper's rule, else its text tokens, and where the next window starts.
    fn window_result(&self, decoded: Greedy, len: usize, timestamps: bool) -> WindowResult {
        let Greedy {
            tokens,
            sum_logprob,
            no_speech_prob,
        } = decoded;
        let t = &self.tokens;
        let steps = tokens.len() + 1;
        let avg_logprob = sum_logprob / steps as f64;
        if no_speech_prob > NO_SPEECH_THRESHOLD && avg_logprob <= LOG_PROB_THRESHOLD {
            return WindowResult {
                text_tokens: Vec::new(),
                steps,
                advance: len,
            };
        }
        match timestamps {
            false => WindowResult {
                text_tokens: tokens.into_iter().filter(|&id| id < t.eot).collect(),
                steps,
                advance: len,
            },
            true => {
                let (text_tokens, advance) = self.closed_segments(&tokens, len);
                WindowResult {
                    text_tokens,
                    steps,
                    advance,
                }
            }
        }
    }

    /// With timestamps: the text tokens of the segments the model closed (a timestamp pair
    /// ends each), and the mel frames up to the last closed one, where the next window starts;
    /// when the tokens end in a lone timestamp or hold no pair, the whole window is taken.
    fn closed_segments(&self, tokens: &[u32], len: usize) -> (Vec<u32>, usize) {
        let begin = self.tokens.timestamp_begin;
        let is_ts = |i: usize| tokens[i] >= begin;
        let n = tokens.len();
        let single_ending = n >= 2 && !is_ts(n - 2) && is_ts(n - 1);
        // Index after the last pair of consecutive timestamps.
        let last_pair_end = (1..n)
            .rev()
            .find(|&i| is_ts(i) && is_ts(i - 1))
            .map(|i| i + 1);
        let text = |slice: &[u32]| -> Vec<u32> {
            slice
                .iter()
                .copied()
                .filter(|&id| id < self.tokens.eot)
                .collect()
        };
        match last_pair_end {
            Some(end) if !single_ending => {
                // A timestamp counts 20 ms steps, two mel frames each; a window never
                // advances by nothing.
                let frames = ((tokens[end - 1] - begin) as usize * 2).min(len);
                (text(&tokens[..end]), if frames == 0 { len } else { frames })
            }
            _ => (text(tokens), len),
        }
    }
}

/// Now, where there is a clock (a browser page's wasm has none: `Instant::now` panics there).
fn clock() -> Option<Instant> {
    (!cfg!(target_arch = "wasm32")).then(Instant::now)
}

fn since(started: Option<Instant>) -> Duration {
    started.map_or(Duration::ZERO, |t| t.elapsed())
}

/// The token embedding (the output projection) in half precision where every value of it
/// is a half exactly, as in weights shipped as f16: the same logits from half the bytes read
/// per decoding step. None otherwise (f32 weights, a fine-tuned checkpoint), or where the
/// shapes do not fit (the model's loading then says what is wrong).
fn output_half(gpu: &Gpu, parsed: &ParsedWhisper) -> Result<Option<HalfMatrix>> {
    let (vocab, d) = (parsed.config.vocab_size, parsed.config.d_model);
    let Some((_, table)) = parsed.arrays.get("model.decoder.embed_tokens.weight") else {
        return Ok(None);
    };
    if !d.is_multiple_of(8) || table.len() != vocab * d || !HalfMatrix::is_exact(table) {
        return Ok(None);
    }
    Ok(Some(HalfMatrix::new(gpu, table, vocab, d)?))
}
