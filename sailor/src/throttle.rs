//! Publish rate limits per event kind, as sailor-nodejs applies them (`p-throttle`):
//! at most `limit` data messages, error events or snapshots in any `ELASTICIO_RATE_INTERVAL`.
//! A publish over the limit waits for its slot, it is never dropped; the limits are the
//! process's, shared by every delivery in flight. `updateSnapshot`, rebounds and `updateKeys`
//! are not limited, as in sailor-nodejs.

use std::collections::VecDeque;
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
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    interval: Duration,
    /// The slots handed out within the last interval, oldest first.
    slots: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl Throttle {
    /// At most `limit` (at least 1) slots in any `interval`.
    pub fn new(limit: u32, interval: Duration) -> Self {
        Self {
            limit: usize::try_from(limit.max(1)).unwrap_or(usize::MAX),
            interval,
            slots: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// Waits for this publish's slot. Slots are handed out in call order (the lock is
    /// fair), and a caller dropped while waiting gives its slot up.
    pub async fn acquire(&self) {
        let mut slots = self.slots.lock().await;
        let now = Instant::now();
        while slots
            .front()
            .is_some_and(|oldest| *oldest + self.interval <= now)
        {
            slots.pop_front();
        }
        if slots.len() >= self.limit {
            let oldest = slots.pop_front().expect("the window is full");
            let at = oldest + self.interval;
            tokio::time::sleep_until(at).await;
            slots.push_back(at);
        } else {
            slots.push_back(now);
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
