//! What a web page calls (feature `web`, built for wasm32 by `scripts/web`): the crate's own
//! training and inference, exported to JavaScript with wasm-bindgen. Nothing here blocks the
//! page's thread: the device is opened with `Gpu::new_async`, and every readback (a step's
//! loss, a sampled token's logits, a checkpoint's weights) is awaited, so each call returns a
//! JavaScript Promise. Data comes in as strings and bytes (the page fetches them); files go
//! out as bytes (the page offers them for download).

mod clm;

pub use clm::ClmTrainer;

use wasm_bindgen::JsValue;

/// A crate error as the JavaScript exception a rejected Promise carries.
fn js_error(e: crate::Error) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}
