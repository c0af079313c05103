//! A one-shot future completed by a wgpu callback (`Buffer::map_async`). Natively the device
//! is polled until the callback has run, so the future is ready when first awaited; in a browser
//! page the callback runs later, from the page's event loop, and wakes the task awaiting it.

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
