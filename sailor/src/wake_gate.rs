//! A future polled only after it woke.
//!
//! `tokio::select!` polls every branch each time its task wakes, whichever branch woke it.
//! The worker's consuming loop wakes once or twice for every message, and its shutdown
//! branch, two signal handlers, cost more to poll than the rest of the loop. [`WakeGated`]
//! polls such a future once, then again only after the future itself asked to be: in between,
//! a poll is an atomic swap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// `inner`, polled only when it woke (and on the first poll).
pub struct WakeGated<F> {
    inner: Pin<Box<F>>,
    gate: Arc<Gate>,
}

/// Whether the inner future woke since it was last polled, and whom to tell when it does.
struct Gate {
    woken: AtomicBool,
    outer: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

impl<F: Future> WakeGated<F> {
    /// Gates `inner`; the first poll polls it.
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            gate: Arc::new(Gate {
                woken: AtomicBool::new(true),
                outer: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WakeGated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Registered before the flag is read: a wake-up in between is not missed.
        self.gate.outer.register(cx.waker());
        if !self.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.gate.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

impl<F> std::fmt::Debug for WakeGated<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeGated")
            .field("woken", &self.gate.woken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Counts its polls; pending until its notify fires.
    async fn counted(polls: &AtomicUsize, notify: &tokio::sync::Notify) {
        let mut notified = std::pin::pin!(notify.notified());
        std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            notified.as_mut().poll(cx)
        })
        .await
    }

    #[tokio::test]
    async fn the_inner_future_is_polled_once_until_it_wakes_then_completes() {
        let (polls, notify) = (AtomicUsize::new(0), tokio::sync::Notify::new());
        let mut gated = std::pin::pin!(WakeGated::new(counted(&polls, &notify)));
        let mut ticks = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        // The select's task wakes ten times for the ticks: the gated future is polled once.
        loop {
            tokio::select! {
                biased;
                () = &mut gated => break,
                _ = tick.tick() => {
                    ticks += 1;
                    if ticks == 10 {
                        assert_eq!(polls.load(Ordering::Relaxed), 1, "polled before it woke");
                        notify.notify_one();
                    }
                }
            }
        }
        assert_eq!(ticks, 10, "done as soon as it woke");
        assert_eq!(polls.load(Ordering::Relaxed), 2, "once more, when it woke");
    }

    #[tokio::test]
    async fn a_wake_from_another_thread_reaches_the_waiting_task() {
        let notify = Arc::new(tokio::sync::Notify::new());
        let gated = WakeGated::new({
            let notify = notify.clone();
            async move { notify.notified().await }
        });
        let waker = std::thread::spawn({
            let notify = notify.clone();
            move || {
                std::thread::sleep(Duration::from_millis(20));
                notify.notify_one();
            }
        });
        tokio::time::timeout(Duration::from_secs(5), gated)
            .await
            .expect("woken");
        waker.join().unwrap();
    }
}
