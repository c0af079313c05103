//! What a web page calls (feature `web`, built for wasm32 by `scripts/web`): the crate's own
//! training and inference, exported to JavaScript with wasm-bindgen. Nothing here blocks the
//! page's thread: the device is opened with `Gpu::new_async`, and every readback (a step's
//! loss, a sampled token's logits, a checkpoint's weights) is awaited, so each call returns a
//! JavaScript Promise. Data comes in as strings and bytes (the page fetches them); files go
//! out as bytes (the page offers them for download).

mod clm;
mod speech;

pub use clm::ClmTrainer;
pub use speech::Transcriber;

use crate::gpu::Gpu;
use wasm_bindgen::JsValue;

thread_local! {
    /// The page's device, opened by the first call that needs it and shared by all.
    static DEVICE: std::cell::RefCell<Option<Gpu>> = const { std::cell::RefCell::new(None) };
}

/// The page's WebGPU device.
async fn device() -> crate::Result<Gpu> {
    if let Some(gpu) = DEVICE.with_borrow(Option::clone) {
        return Ok(gpu);
    }
    let gpu = Gpu::new_async().await?;
    Ok(DEVICE.with_borrow_mut(|d| d.get_or_insert(gpu).clone()))
}

/// A crate error as the JavaScript exception a rejected Promise carries.
fn js_error(e: crate::Error) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}
