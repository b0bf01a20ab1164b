//! What `/healthz` and `/readyz` answer: whether the worker is alive and whether it consumes.
//!
//! An orchestrator restarts a container whose liveness fails and sends no traffic to (here:
//! counts as not serving) one whose readiness fails. A worker is **ready** only while its
//! consumer is attached to the step's queue: before the first connection, while reconnecting
//! and after shutdown began, it is not. It is **live** unless it is wedged: a delivery that
//! has run longer than `COMPONENT_STUCK_DELIVERY_TIMEOUT` holds a prefetch slot that nothing
//! will free, and only a restart gets the message redelivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;

/// The worker's health, shared by its run loop, its deliveries and the probe endpoints.
#[derive(Debug)]
pub struct Health {
    consuming: AtomicBool,
    stuck_after: Duration,
    clock: Arc<dyn Clock>,
    next_delivery: AtomicU64,
    /// When each delivery in flight started (Unix seconds), by a number of its own; hashed
    /// with foldhash, as the worker's in-flight ids are: twice per message, no keys from
    /// outside.
    deliveries: Mutex<HashMap<u64, u64, foldhash::fast::RandomState>>,
}

/// Why `/healthz` fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a delivery has been running for {running_s} s, past the {bound_s} s bound")]
pub struct Wedged {
    /// How long the oldest delivery in flight has run, in seconds.
    pub running_s: u64,
    /// `COMPONENT_STUCK_DELIVERY_TIMEOUT`, in seconds.
    pub bound_s: u64,
}

impl Health {
    /// A worker not consuming yet, which counts as wedged when a delivery runs longer than
    /// `stuck_after` (whole seconds) by `clock`.
    pub fn new(stuck_after: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            consuming: AtomicBool::new(false),
            stuck_after,
            clock,
            next_delivery: AtomicU64::new(0),
            deliveries: Mutex::new(HashMap::default()),
        }
    }

    /// The consumer was attached (`true`) or lost, cancelled or stopped (`false`).
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.consuming.load(Ordering::SeqCst)
    }

    /// Whether `/healthz` answers 200: no delivery has run past the bound.
    pub fn check_live(&self) -> Result<(), Wedged> {
        let oldest = self.lock().values().min().copied();
        let running_s = oldest.map(|started| self.clock.now_unix().saturating_sub(started));
        match running_s {
            Some(running_s) if running_s > self.stuck_after.as_secs() => Err(Wedged {
                running_s,
                bound_s: self.stuck_after.as_secs(),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a delivery as running until the returned guard is dropped.
    pub fn delivery_started(&self) -> RunningDelivery<'_> {
        let id = self.next_delivery.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now_unix();
        self.lock().insert(id, now);
        RunningDelivery { health: self, id }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64, foldhash::fast::RandomState>> {
        self.deliveries
            .lock()
            .expect("no code panics while holding this lock")
    }
}

/// A delivery in flight, as [`Health`] sees it.
#[derive(Debug)]
pub struct RunningDelivery<'a> {
    health: &'a Health,
    id: u64,
}

impl Drop for RunningDelivery<'_> {
    fn drop(&mut self) {
        self.health.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{self, ManualClock};

    #[test]
    fn a_worker_is_ready_only_while_consuming() {
        let health = Health::new(Duration::from_secs(1), clock::system());
        assert!(!health.is_ready());
        health.set_consuming(true);
        assert!(health.is_ready());
        health.set_consuming(false);
        assert!(!health.is_ready());
    }

    #[test]
    fn a_delivery_running_past_the_bound_fails_liveness_until_it_ends() {
        let clock = ManualClock::at(1_000);
        let health = Health::new(Duration::from_secs(10), Arc::new(clock.clone()));
        assert_eq!(health.check_live(), Ok(()));
        let first = health.delivery_started();
        clock.advance(6);
        let second = health.delivery_started();
        clock.advance(4);
        assert_eq!(health.check_live(), Ok(()), "10 s is not past the bound");
        clock.advance(1);
        assert_eq!(
            health.check_live(),
            Err(Wedged {
                running_s: 11,
                bound_s: 10
            })
        );
        drop(first);
        assert_eq!(health.check_live(), Ok(()), "the second has run 5 s");
        clock.advance(6);
        assert!(health.check_live().is_err());
        drop(second);
        assert_eq!(health.check_live(), Ok(()));
    }
}
