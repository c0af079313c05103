//! Waiting for the GPU. Everything that waits is written once, as a future: natively the device
//! is polled until the work is done, so the future is ready when first polled, and `block_on`
//! gives the blocking form the command-line programs call; in a browser page the page's event
//! loop completes it later, so the page awaits it (and `block_on` there refuses to wait).
//!
//! `Callback` is the one-shot future a wgpu callback (`Buffer::map_async`) completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    /// The completer was dropped without a value (its callback will never run).
    abandoned: bool,
    waker: Option<Waker>,
}

/// Resolves to `Some(value)` once the completer is called, `None` if it is dropped unused.
pub(super) struct Callback<T>(Arc<Mutex<Slot<T>>>);

/// The half handed to wgpu's callback.
pub(super) struct Completer<T>(Option<Arc<Mutex<Slot<T>>>>);

pub(super) fn callback<T>() -> (Callback<T>, Completer<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        abandoned: false,
        waker: None,
    }));
    (Callback(slot.clone()), Completer(Some(slot)))
}

impl<T> Completer<T> {
    pub fn complete(mut self, value: T) {
        self.finish(Some(value));
    }

    fn finish(&mut self, value: Option<T>) {
        let Some(slot) = self.0.take() else { return };
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        s.abandoned = value.is_none();
        s.value = value;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl<T> Future for Callback<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = s.value.take() {
            Poll::Ready(Some(v))
        } else if s.abandoned {
            Poll::Ready(None)
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Run `work` to completion on this thread: natively by blocking until it is done; in a browser
/// page only if it completes without waiting (a page may not block), else an error that names
/// the async call to await instead.
pub fn block_on<T>(work: impl Future<Output = crate::Result<T>>) -> crate::Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(work)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut work = std::pin::pin!(work);
        match work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(crate::Error::Gpu(super::BLOCKING_IN_BROWSER.into())),
        }
    }
}
