//! The emitter a module uses to send events, and the sink trait that transports implement.
//!
//! A module calls [`Emitter::data`], [`Emitter::snapshot`], ...; each call returns once the
//! transport has the event safely (for AMQP: once the broker confirmed the publish). Error
//! events are produced by the runtime from a module's `Err`, never by the module itself, so
//! that every failure yields exactly one error event.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;

use crate::event::{ErrorReport, Event, EventKind, HttpReply, Keys, Rebound};
use crate::message::Message;

/// Why an event could not be emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The transport failed to deliver the event.
    #[error("could not publish the {kind} event")]
    Transport {
        /// Which event.
        kind: EventKind,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The event is larger than the transport accepts.
    #[error("the {kind} event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Which event.
        kind: EventKind,
        /// Its encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The event cannot be produced here (e.g. a rebound past the limit).
    #[error("the {kind} event was refused: {reason}")]
    Refused {
        /// Which event.
        kind: EventKind,
        /// Why.
        reason: String,
    },
}

/// Where events go: stdout, an AMQP exchange, or a test's collection.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Delivers one event; returns once it is safe (confirmed) or has failed.
    async fn publish(&self, event: Event) -> Result<(), EmitError>;
}

/// The handle modules receive to emit events. Cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    sink: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

impl Emitter {
    /// An emitter writing to `sink`.
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Self { sink }
    }

    /// Emits a message for the next step.
    pub async fn data(&self, message: Message) -> Result<(), EmitError> {
        self.sink.publish(Event::Data(message)).await
    }

    /// Emits the step's new snapshot.
    pub async fn snapshot(&self, snapshot: Value) -> Result<(), EmitError> {
        self.sink.publish(Event::Snapshot(snapshot)).await
    }

    /// Emits part of the step's state: `update`'s top-level fields replace the snapshot's
    /// (the platform merges it; the next message of this process sees the merge). `update`
    /// must be a JSON object without `$set`; anything else is refused, not sent.
    pub async fn update_snapshot(&self, update: Value) -> Result<(), EmitError> {
        crate::event::check_snapshot_update(&update).map_err(|reason| EmitError::Refused {
            kind: EventKind::UpdateSnapshot,
            reason,
        })?;
        self.sink.publish(Event::UpdateSnapshot(update)).await
    }

    /// Asks the platform to deliver the incoming message again later.
    pub async fn rebound(&self, rebound: Rebound) -> Result<(), EmitError> {
        self.sink.publish(Event::Rebound(rebound)).await
    }

    /// Answers the HTTP request that started the flow (request-reply): the worker sends the
    /// reply to the input's `reply_to` queue; an input without one refuses it.
    pub async fn http_reply(&self, reply: HttpReply) -> Result<(), EmitError> {
        self.sink.publish(Event::HttpReply(reply)).await
    }

    /// Emits new credential keys for the platform to persist. The token lifecycle does this
    /// after every refresh; a module rarely needs to.
    pub async fn update_keys(&self, keys: Keys) -> Result<(), EmitError> {
        self.sink.publish(Event::UpdateKeys(keys)).await
    }

    /// Emits the step's error; only the runtime calls this.
    pub(crate) async fn error(&self, report: ErrorReport) -> Result<(), EmitError> {
        self.sink.publish(Event::Error(report)).await
    }
}

/// A sink that keeps every event in memory, in order, each with the moment it was emitted:
/// for tests, and for the demo, which places events among the HTTP exchanges that caused them.
#[derive(Debug, Default, Clone)]
pub struct CollectingSink {
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
}

impl CollectingSink {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().iter().map(|(_, event)| event.clone()).collect()
    }

    /// The events of one kind.
    pub fn of_kind(&self, kind: EventKind) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.kind() == kind)
            .collect()
    }

    /// Removes and returns every event so far.
    pub fn take(&self) -> Vec<Event> {
        self.take_timed()
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }

    /// Removes and returns every event so far, each with the moment it was emitted.
    pub fn take_timed(&self) -> Vec<(Instant, Event)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Event)>> {
        self.events
            .lock()
            .expect("no code panics while holding this lock")
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        self.lock().push((Instant::now(), event));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_collecting_sink_hands_back_events_in_order_with_rising_instants_and_empties() {
        let sink = CollectingSink::new();
        let emitter = Emitter::new(Arc::new(sink.clone()));
        emitter.snapshot(json!({"n": 1})).await.unwrap();
        emitter.snapshot(json!({"n": 2})).await.unwrap();
        assert_eq!(sink.events().len(), 2, "reading does not remove");

        let timed = sink.take_timed();
        assert_eq!(
            timed.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            vec![
                Event::Snapshot(json!({"n": 1})),
                Event::Snapshot(json!({"n": 2}))
            ]
        );
        assert!(timed[0].0 <= timed[1].0);
        assert!(sink.take().is_empty());
    }
}
