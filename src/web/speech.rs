//! Speech recognition in a page: the shipped recognizer (`models/asr`) or Whisper from files
//! the page fetched, transcribing a WAV the user dropped (read by the crate's own WAV reader,
//! as `asr` reads it) or samples the page recorded. Decoding is each model's default, with
//! every decoder step's readback awaited.

use super::{device, js_error};
use crate::audio::{self, Waveform};
use crate::error::{Error, Result};
use crate::inference::{CheckpointFile, Recognizer, RecognizerFiles};
use crate::inference::{WhisperOptions, WhisperRecognizer};
use crate::models::whisper::WhisperWeights;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

enum Model {
    /// The course-style recognizer and its checkpoint's decoding.
    Course(Box<Recognizer>),
    Whisper(Box<WhisperRecognizer>),
}

/// A speech recognizer held by the page; one transcription at a time.
#[wasm_bindgen]
pub struct Transcriber {
    model: Rc<Model>,
    busy: Rc<Cell<bool>>,
}

fn file(name: &str, bytes: Vec<u8>) -> CheckpointFile {
    CheckpointFile {
        path: PathBuf::from(name),
        bytes,
    }
}

impl Transcriber {
    fn new(model: Model) -> Transcriber {
        Transcriber {
            model: Rc::new(model),
            busy: Rc::default(),
        }
    }

    /// The transcript of `wave`, as a Promise of a string.
    fn run(&self, wave: Result<Waveform>) -> js_sys::Promise {
        let (model, busy) = (Rc::clone(&self.model), Rc::clone(&self.busy));
        future_to_promise(async move {
            if busy.replace(true) {
                return Err(js_error(Error::Gpu(
                    "Transcriber: the previous transcription has not finished; await it".into(),
                )));
            }
            let text = transcribe(&model, wave).await;
            busy.set(false);
            text.map(JsValue::from).map_err(js_error)
        })
    }
}

async fn transcribe(model: &Model, wave: Result<Waveform>) -> Result<String> {
    let wave = wave?;
    match model {
        Model::Course(r) => Ok(r.transcribe_waveform_async(&wave, &r.decoding).await?.text),
        Model::Whisper(w) => {
            let samples = audio::resample(&wave.samples, wave.sample_rate, audio::TARGET_RATE)?;
            // As `asr` decodes Whisper: faster-whisper's beam of 5.
            let opts = WhisperOptions {
                beam_width: 5,
                ..WhisperOptions::default()
            };
            w.transcribe_async(&samples, &opts).await
        }
    }
}

#[wasm_bindgen]
impl Transcriber {
    /// The course-style recognizer from its checkpoint's four files (`models/asr`).
    pub async fn course(
        config_yaml: Vec<u8>,
        tokenizer_json: Vec<u8>,
        features_json: Vec<u8>,
        model_safetensors: Vec<u8>,
    ) -> std::result::Result<Transcriber, JsValue> {
        let files = RecognizerFiles {
            config: file("config.yaml", config_yaml),
            tokenizer: file("tokenizer.json", tokenizer_json),
            features: file("features.json", features_json),
            model: file("model.safetensors", model_safetensors),
        };
        let gpu = device().await.map_err(js_error)?;
        let r = Recognizer::from_files(&gpu, &files).map_err(js_error)?;
        Ok(Transcriber::new(Model::Course(Box::new(r))))
    }

    /// Whisper from a CTranslate2 `model.bin` (what `scripts/fetch_whisper` installs from
    /// PyPI) and its `tokenizer.json`.
    pub async fn whisper(
        model_bin: Vec<u8>,
        tokenizer_json: String,
    ) -> std::result::Result<Transcriber, JsValue> {
        let gpu = device().await.map_err(js_error)?;
        let weights = WhisperWeights::CTranslate2 {
            file: Path::new("model.bin"),
            bytes: &model_bin,
        };
        let w = WhisperRecognizer::from_weights(
            &gpu,
            weights,
            Path::new("tokenizer.json"),
            &tokenizer_json,
        )
        .await
        .map_err(js_error)?;
        Ok(Transcriber::new(Model::Whisper(Box::new(w))))
    }

    /// A Promise of the transcript of a WAV file's bytes (any rate, channels averaged).
    pub fn transcribe_wav(&self, wav: Vec<u8>) -> js_sys::Promise {
        self.run(audio::wav_from_bytes(Path::new("the dropped file"), &wav))
    }

    /// A Promise of the transcript of mono samples at `sample_rate` (a recording).
    pub fn transcribe_samples(&self, samples: Vec<f32>, sample_rate: u32) -> js_sys::Promise {
        self.run(Ok(Waveform {
            samples,
            sample_rate,
        }))
    }
}
