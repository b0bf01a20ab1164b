//! Publish rate limits per event kind, as sailor-nodejs applies them (`p-throttle`):
//! at most `limit` data messages, error events or snapshots in any `ELASTICIO_RATE_INTERVAL`.
//! A publish over the limit waits for its slot, it is never dropped; the limits are the
//! process's, shared by every delivery in flight. `updateSnapshot`, rebounds and `updateKeys`
//! are not limited, as in sailor-nodejs.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Default `ELASTICIO_DATA_RATE_LIMIT`: data messages per interval.
pub const DEFAULT_DATA_RATE_LIMIT: u32 = 10;
/// Default `ELASTICIO_ERROR_RATE_LIMIT`: error events per interval.
pub const DEFAULT_ERROR_RATE_LIMIT: u32 = 2;
/// Default `ELASTICIO_SNAPSHOT_RATE_LIMIT`: snapshots per interval.
pub const DEFAULT_SNAPSHOT_RATE_LIMIT: u32 = 2;
/// Default `ELASTICIO_RATE_INTERVAL`, in milliseconds.
pub const DEFAULT_RATE_INTERVAL_MS: u64 = 100;

/// The limits, per interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `ELASTICIO_DATA_RATE_LIMIT`.
    pub data: u32,
    /// `ELASTICIO_ERROR_RATE_LIMIT`.
    pub error: u32,
    /// `ELASTICIO_SNAPSHOT_RATE_LIMIT`.
    pub snapshot: u32,
    /// `ELASTICIO_RATE_INTERVAL`.
    pub interval: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            data: DEFAULT_DATA_RATE_LIMIT,
            error: DEFAULT_ERROR_RATE_LIMIT,
            snapshot: DEFAULT_SNAPSHOT_RATE_LIMIT,
            interval: Duration::from_millis(DEFAULT_RATE_INTERVAL_MS),
        }
    }
}

/// One kind's limit: a sliding window of the last `limit` publish slots.
///
/// The window is behind a plain mutex, held only to take a slot, never across a wait: a
/// publish within the limit, the usual one, takes its slot without awaiting anything.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    interval: Duration,
    /// The slots handed out, oldest first: those of the last interval and those reserved by
    /// callers still waiting for theirs. Each slot is no earlier than the one before it.
    slots: Mutex<VecDeque<Instant>>,
}

impl Throttle {
    /// At most `limit` (at least 1) slots in any `interval`.
    pub fn new(limit: u32, interval: Duration) -> Self {
        Self {
            limit: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            interval,
            slots: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits for this publish's slot. Slots are handed out in call order, and a caller
    /// dropped while waiting gives its slot up.
    pub async fn acquire(&self) {
        let Some(at) = self.take_slot(Instant::now()) else {
            return;
        };
        let reserved = Reserved {
            throttle: self,
            at: Some(at),
        };
        tokio::time::sleep_until(at).await;
        reserved.used();
    }

    /// Takes the next slot: `None` when it is now, else the instant it is reserved for, an
    /// interval after the slot it replaces in the full window.
    fn take_slot(&self, now: Instant) -> Option<Instant> {
        let mut slots = self.slots();
        while slots
            .front()
            .is_some_and(|oldest| *oldest + self.interval <= now)
        {
            slots.pop_front();
        }
        if slots.len() < self.limit {
            slots.push_back(now);
            return None;
        }
        let oldest = slots.pop_front().expect("the window is full");
        let at = oldest + self.interval;
        slots.push_back(at);
        Some(at)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        // Nothing panics while the window is held: a poisoned lock still holds a sound one.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A slot reserved ahead by a caller waiting for it; given back if the caller is dropped
/// before its time, the window then as it would be had the caller never come.
struct Reserved<'a> {
    throttle: &'a Throttle,
    at: Option<Instant>,
}

impl Reserved<'_> {
    /// The caller's time came: the slot is spent.
    fn used(mut self) {
        self.at = None;
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let Some(at) = self.at else { return };
        let mut slots = self.throttle.slots();
        // Reserved slots are the newest: search from the back.
        if let Some(index) = slots.iter().rposition(|slot| *slot == at) {
            slots.remove(index);
            // The slot this one replaced comes back, in order (another waiter may have given
            // back an older one meanwhile). Expired by now, the next caller drops it again.
            let replaced = at - self.throttle.interval;
            let index = slots.partition_point(|slot| *slot < replaced);
            slots.insert(index, replaced);
        }
    }
}

/// The throttles of one process: data, error, snapshot.
#[derive(Debug)]
pub struct Throttles {
    /// Data messages.
    pub data: Throttle,
    /// Error events.
    pub error: Throttle,
    /// Snapshots (not `updateSnapshot`).
    pub snapshot: Throttle,
}

impl Throttles {
    /// The throttles for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            data: Throttle::new(limits.data, limits.interval),
            error: Throttle::new(limits.error, limits.interval),
            snapshot: Throttle::new(limits.snapshot, limits.interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_more_than_the_limit_start_in_any_interval() {
        let throttle = Throttle::new(2, Duration::from_millis(100));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            throttle.acquire().await;
            at.push(Instant::now() - start);
        }
        // Slots 0 and 1 at once, 2 and 3 an interval on, 4 and 5 two intervals on.
        for (i, at) in at.iter().enumerate() {
            let interval = Duration::from_millis(100) * (i as u32 / 2);
            assert!(*at >= interval, "slot {i} at {at:?}");
        }
        assert!(at[1] < Duration::from_millis(50), "{at:?}");
    }

    #[tokio::test]
    async fn concurrent_callers_get_the_slots_in_call_order() {
        let throttle = std::sync::Arc::new(Throttle::new(2, Duration::from_millis(200)));
        let start = Instant::now();
        let callers: Vec<_> = (0..6)
            .map(|_| {
                let throttle = throttle.clone();
                tokio::spawn(async move {
                    throttle.acquire().await;
                    Instant::now() - start
                })
            })
            .collect();
        let mut at = Vec::new();
        for caller in callers {
            at.push(caller.await.unwrap());
        }
        // Two at once, two an interval on, two two intervals on: each before the next slot.
        for (i, at) in at.iter().enumerate() {
            let slot = Duration::from_millis(200) * (i as u32 / 2);
            assert!(
                *at >= slot && *at < slot + Duration::from_millis(150),
                "caller {i} at {at:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_caller_dropped_while_waiting_gives_its_slot_to_the_next() {
        let throttle = Throttle::new(1, Duration::from_millis(200));
        let start = Instant::now();
        throttle.acquire().await;
        // The second caller's slot is 200 ms on; it gives up after 20.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), throttle.acquire()).await;
        assert!(gave_up.is_err(), "the window was full");
        throttle.acquire().await;
        let third = start.elapsed();
        // The third takes the second's slot, not the one after it; and not before it either:
        // the first caller's slot still counts.
        assert!(
            third >= Duration::from_millis(200) && third < Duration::from_millis(350),
            "{third:?}"
        );
    }

    #[test]
    fn slots_given_back_in_any_order_leave_the_window_in_order() {
        let throttle = Throttle::new(2, Duration::from_millis(100));
        let base = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(throttle.take_slot(base), None);
        assert_eq!(throttle.take_slot(base + ms(10)), None);
        let first = throttle.take_slot(base + ms(20));
        let second = throttle.take_slot(base + ms(30));
        assert_eq!(
            (first, second),
            (Some(base + ms(100)), Some(base + ms(110)))
        );
        // The first waiter gives up before the second: the slots they replaced come back in
        // time order, and the next caller waits for the oldest's interval to end.
        drop(Reserved {
            throttle: &throttle,
            at: first,
        });
        drop(Reserved {
            throttle: &throttle,
            at: second,
        });
        let window: Vec<_> = throttle.slots().iter().copied().collect();
        assert_eq!(window, [base, base + ms(10)]);
        assert_eq!(throttle.take_slot(base + ms(40)), Some(base + ms(100)));
    }

    #[tokio::test]
    async fn a_quiet_spell_frees_the_window() {
        let throttle = Throttle::new(1, Duration::from_millis(100));
        throttle.acquire().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let before = Instant::now();
        throttle.acquire().await;
        assert!(
            before.elapsed() < Duration::from_millis(50),
            "no wait after the interval passed"
        );
    }

    #[test]
    fn defaults_are_sailor_nodejs_ones() {
        let limits = RateLimits::default();
        assert_eq!(
            (limits.data, limits.error, limits.snapshot),
            (10, 2, 2),
            "per 100 ms"
        );
        assert_eq!(limits.interval, Duration::from_millis(100));
    }
}
