//! The events of one delivery, written on the wire (DESIGN.md section 4,
//! sailor-protocol.md 2.5): the [`EventSink`] the worker gives each message's emitter.
//!
//! data and updateKeys are encrypted in the configured protocol version; error is plain JSON
//! with encrypted base64 fields; snapshot and updateSnapshot are plain JSON on the snapshot
//! routing key, told apart by their `snapshotEvent` header; rebound re-sends the original
//! bytes. Data, error and snapshot publishes wait for their slot under the process's rate
//! limits ([`crate::throttle`]). Each publish returns once the broker confirmed it.
//!
//! Request-reply, as sailor-nodejs 2.7.8 does it: an input with a `reply_to` header is answered
//! on the same exchange with `reply_to` as routing key. `httpReply` goes there encrypted in
//! protocol 1 (base64 text, whatever `ELASTICIO_PROTOCOL_VERSION` says) with
//! `protocolVersion: 1`; an error event is also sent there, unless
//! `ELASTICIO_NO_ERROR_REPLIES`, as the error's encrypted base64 text alone, with the error's
//! headers and `x-eio-error-response: true`. An error counts as published only once both
//! publishes are confirmed (sailor-nodejs waits for the reply alone). A reply the broker
//! returns (nobody waits on `reply_to` any more) is logged and dropped, as sailor-nodejs
//! ignores it: the requester gave up, and failing the message would not bring it back. So is
//! an error reply the broker refuses outright.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lapin::BasicProperties;
use lapin::types::FieldTable;
use serde_json::{Map, Value, json};

use super::headers::{
    self, IncomingHeaders, PROTOCOL_VERSION, PublishHeaders, int_value, text_value,
};
use super::publisher::{Outgoing, PublishError, Publisher, json_properties};
use crate::crypto::{Encoding, MessageCipher};
use crate::emitter::{EmitError, EventSink};
use crate::event::{ErrorReport, Event, EventKind, HttpReply, Keys, Rebound};
use crate::lightweight;
use crate::message::Message;
use crate::object_storage::{NotConfigured, ObjectStorage};
use crate::settings::Settings;
use crate::telemetry::metrics;

/// Message-level header naming the routing key of a data message.
pub const ROUTING_KEY_HEADER: &str = "x-eio-routing-key";
/// The error a rebound past the limit turns into.
pub const REBOUND_LIMIT_EXCEEDED: &str = "Rebound limit exceeded";
/// AMQP header marking an error sent to `reply_to` (sailor-nodejs' `HEADER_ERROR_RESPONSE`).
pub const ERROR_RESPONSE_HEADER: &str = "x-eio-error-response";
/// What refuses an `httpReply` for an input without `reply_to`, in sailor-nodejs' words.
pub const NO_REPLY_TO: &str =
    "Component emitted 'httpReply' event but 'reply_to' was not found in AMQP headers";

/// What every delivery of this process shares: settings, publisher, the step's snapshot.
pub struct StepWire {
    /// The worker's settings.
    pub settings: Arc<Settings>,
    /// The write side.
    pub publisher: Arc<Publisher>,
    /// The snapshot the next message sees; a `snapshot` event replaces it.
    pub snapshot: Mutex<Value>,
    /// The step's `is_passthrough`.
    pub is_passthrough: bool,
    /// `cfg._account`, echoed in `updateKeys` headers.
    pub account: Option<String>,
    /// Where lightweight bodies are read and written, or why there is no such place.
    pub object_storage: Result<ObjectStorage, NotConfigured>,
    /// The process's publish rate limits.
    pub throttles: crate::throttle::Throttles,
    /// The headers every publish of the step carries ([`headers::step_headers`]).
    pub step_headers: Arc<FieldTable>,
}

impl std::fmt::Debug for StepWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepWire")
            .field("publisher", &self.publisher)
            .field("is_passthrough", &self.is_passthrough)
            .finish_non_exhaustive()
    }
}

impl StepWire {
    /// The current snapshot.
    pub fn snapshot(&self) -> Value {
        self.snapshot
            .lock()
            .expect("no code panics while holding this lock")
            .clone()
    }
}

/// One incoming delivery, as far as the events it causes need it. `Debug` leaves the
/// payload out: deliveries are never logged.
pub struct Delivered {
    /// Its headers.
    pub headers: IncomingHeaders,
    /// Its body, as received.
    pub body: Vec<u8>,
    /// Its properties, for rebounds.
    pub properties: BasicProperties,
    /// The decoded message, when it decoded.
    pub message: Option<Message>,
    /// How `body` is encoded, for the `errorInput` of error events.
    pub encoding: Encoding,
    /// Its thread: the incoming `threadId`, or a new one.
    pub thread_id: String,
    /// When its processing started (ms since the epoch): the `start` of its publishes.
    pub start_ms: i64,
}

impl Delivered {
    /// The `errorInput` of its error events: the incoming ciphertext as base64. Made only
    /// when an error is published, not for every delivery.
    pub fn error_input(&self) -> String {
        error_input(&self.body, self.encoding)
    }
}

impl std::fmt::Debug for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivered")
            .field("message_id", &self.headers.message_id)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The sink of one delivery's events.
#[derive(Debug)]
pub struct DeliverySink {
    wire: Arc<StepWire>,
    delivered: Arc<Delivered>,
    errors_published: AtomicUsize,
    rebounds_published: AtomicUsize,
}

impl DeliverySink {
    /// The sink for `delivered`.
    pub fn new(wire: Arc<StepWire>, delivered: Arc<Delivered>) -> Self {
        Self {
            wire,
            delivered,
            errors_published: AtomicUsize::new(0),
            rebounds_published: AtomicUsize::new(0),
        }
    }

    /// How many error events were confirmed.
    pub fn errors_published(&self) -> usize {
        self.errors_published.load(Ordering::SeqCst)
    }

    /// How many rebound events were confirmed: the delivery's metrics outcome.
    pub fn rebounds_published(&self) -> usize {
        self.rebounds_published.load(Ordering::SeqCst)
    }

    fn settings(&self) -> &Settings {
        &self.wire.settings
    }

    /// The headers every publish of this delivery starts from: the step's, and the
    /// delivery's lineage.
    fn base_headers(&self) -> PublishHeaders {
        let mut headers = PublishHeaders::over(self.wire.step_headers.clone());
        let delivered = &self.delivered;
        headers::add_lineage(
            &mut headers,
            &delivered.headers,
            &delivered.thread_id,
            delivered.start_ms,
        );
        headers
    }

    fn headers(&self, message_id: &str) -> PublishHeaders {
        let mut headers = self.base_headers();
        headers::stamp(&mut headers, message_id);
        headers
    }

    /// `outgoing` when its body is within `ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT`.
    fn within_limit(&self, kind: EventKind, outgoing: Outgoing) -> Result<Outgoing, EmitError> {
        let limit = self.settings().outgoing_message_size_limit;
        if outgoing.body.len() > limit {
            return Err(EmitError::TooLarge {
                kind,
                size: outgoing.body.len(),
                limit,
            });
        }
        Ok(outgoing)
    }

    async fn data(&self, mut message: Message) -> Result<Outgoing, EmitError> {
        let id = message
            .id
            .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        let routing_key = take_routing_key(&mut message)
            .unwrap_or_else(|| self.settings().data_routing_key.clone());
        let mut passthrough = self
            .wire
            .is_passthrough
            .then(|| self.inherited_passthrough());
        if self.settings().object_storage.emit_lightweight {
            // Boxed: an upload is rare, and would make every data event's future its size.
            Box::pin(self.lighten(&mut message, passthrough.as_mut())).await?;
        }
        if let Some(mut passthrough) = passthrough {
            if !self.settings().no_self_passthrough {
                let mut entry = message.clone();
                entry.passthrough = None;
                passthrough.insert(
                    self.settings().identity.step_id.clone(),
                    serde_json::to_value(entry).unwrap_or(Value::Null),
                );
            }
            message.passthrough = Some(passthrough);
        }
        // Serialised once, straight to bytes.
        let json = serde_json::to_vec(&message).map_err(|error| EmitError::Refused {
            kind: EventKind::Data,
            reason: error.to_string(),
        })?;
        let settings = self.settings();
        let body = settings.cipher.encode_owned(json, settings.protocol);
        let mut headers = self.headers(&id);
        headers.insert(
            PROTOCOL_VERSION,
            int_value(settings.protocol.protocol_version()),
        );
        self.within_limit(
            EventKind::Data,
            Outgoing {
                routing_key,
                body,
                properties: json_properties(),
                headers,
            },
        )
    }

    /// The passthrough an outgoing message inherits: the input's, and with
    /// `ELASTICIO_NO_SELF_PASSTRHOUGH` the input itself under the previous step's id. This
    /// step's own entry is added after the body is lightened, so that it holds the same.
    fn inherited_passthrough(&self) -> Map<String, Value> {
        let incoming = self.delivered.message.as_ref();
        let mut passthrough = incoming
            .and_then(|m| m.passthrough.clone())
            .unwrap_or_default();
        if self.settings().no_self_passthrough
            && let (Some(step), Some(incoming)) = (&self.delivered.headers.step_id, incoming)
        {
            let mut entry = incoming.clone();
            entry.passthrough = None;
            passthrough.insert(
                step.clone(),
                serde_json::to_value(entry).unwrap_or(Value::Null),
            );
        }
        passthrough
    }

    /// Stores the bodies of an outgoing message in object storage when they pass the
    /// threshold (see [`crate::lightweight`]).
    async fn lighten(
        &self,
        message: &mut Message,
        passthrough: Option<&mut Map<String, Value>>,
    ) -> Result<(), EmitError> {
        let storage = self
            .wire
            .object_storage
            .as_ref()
            .map_err(|missing| EmitError::Refused {
                kind: EventKind::Data,
                reason: format!("lightweight messages are on but {missing}"),
            })?;
        let mut none = Map::new();
        let passthrough = passthrough.unwrap_or(&mut none);
        let threshold = self.settings().object_storage.size_threshold;
        lightweight::lighten(message, passthrough, storage, threshold)
            .await
            .map_err(|error| EmitError::Transport {
                kind: EventKind::Data,
                source: Box::new(error),
            })?;
        Ok(())
    }

    /// An `httpReply` for the input's `reply_to` queue: the reply object encrypted in
    /// protocol 1, with the step's headers and `protocolVersion: 1`.
    fn http_reply(&self, reply: &HttpReply) -> Result<Outgoing, EmitError> {
        let reply_to =
            self.delivered
                .headers
                .reply_to
                .clone()
                .ok_or_else(|| EmitError::Refused {
                    kind: EventKind::HttpReply,
                    reason: NO_REPLY_TO.to_owned(),
                })?;
        let mut payload = serde_json::to_value(reply).unwrap_or(Value::Null);
        if let Some(Value::Object(headers)) = payload.get_mut("headers") {
            headers.retain(|name, _| !name.eq_ignore_ascii_case(ROUTING_KEY_HEADER));
        }
        let body = self
            .settings()
            .cipher
            .encode(payload.to_string().as_bytes(), Encoding::Base64);
        let mut headers = self.base_headers();
        headers.insert(
            headers::MESSAGE_ID,
            text_value(&uuid::Uuid::new_v4().to_string()),
        );
        headers.insert(
            PROTOCOL_VERSION,
            int_value(Encoding::Base64.protocol_version()),
        );
        self.within_limit(
            EventKind::HttpReply,
            Outgoing {
                routing_key: reply_to,
                body,
                properties: json_properties(),
                headers,
            },
        )
    }

    /// The copy of an error event for the input's `reply_to` queue, unless there is none or
    /// `ELASTICIO_NO_ERROR_REPLIES`: `error`'s encrypted report alone, with its headers and
    /// `x-eio-error-response: true`.
    fn error_reply(&self, error: &Outgoing) -> Option<Outgoing> {
        if self.settings().no_error_replies {
            return None;
        }
        let reply_to = self.delivered.headers.reply_to.clone()?;
        let body: Value = serde_json::from_slice(&error.body).ok()?;
        let encrypted = body.get("error")?.as_str()?.as_bytes().to_vec();
        let mut headers = error.headers.clone();
        headers.insert(
            ERROR_RESPONSE_HEADER,
            lapin::types::AMQPValue::Boolean(true),
        );
        Some(Outgoing {
            routing_key: reply_to,
            body: encrypted,
            properties: error.properties.clone(),
            headers,
        })
    }

    /// Publishes a reply; one the broker returns (nobody waits on `reply_to` any more) is
    /// logged and dropped, as sailor-nodejs does.
    async fn publish_reply(&self, kind: EventKind, reply: &Outgoing) -> Result<(), PublishError> {
        match self.wire.publisher.publish(reply).await {
            Err(PublishError::Unroutable { .. }) => {
                tracing::warn!(message = "Nobody waits for the reply any more; it is dropped.", event = %kind);
                Ok(())
            }
            outcome => outcome,
        }
    }

    fn error(&self, report: &ErrorReport) -> Outgoing {
        error_message(
            report,
            Some(&self.delivered.error_input()),
            &self.settings().cipher,
            &self.settings().error_routing_key,
            self.headers(&uuid::Uuid::new_v4().to_string()),
        )
    }

    /// A `snapshot` or `updateSnapshot` (`event`), as sailor-nodejs sends both.
    fn snapshot(&self, snapshot: &Value, event: EventKind) -> Outgoing {
        let mut headers = self.headers(&uuid::Uuid::new_v4().to_string());
        headers.insert("snapshotEvent", text_value(event.as_str()));
        Outgoing {
            routing_key: self.settings().snapshot_routing_key.clone(),
            body: snapshot.to_string().into_bytes(),
            properties: json_properties(),
            headers,
        }
    }

    fn update_keys(&self, keys: &Keys) -> Result<Outgoing, EmitError> {
        let settings = self.settings();
        let outgoing = update_keys_message(
            keys,
            &settings.cipher,
            settings.protocol,
            &settings.update_keys_routing_key,
            self.wire.account.as_deref(),
            self.headers(&uuid::Uuid::new_v4().to_string()),
        );
        self.within_limit(EventKind::UpdateKeys, outgoing)
    }

    fn rebound(&self, rebound: &Rebound) -> Result<Outgoing, EmitError> {
        let settings = self.settings();
        let iteration = next_rebound_iteration(self.delivered.headers.rebound_iteration);
        if iteration > i64::from(settings.rebound_limit) {
            return Err(EmitError::Refused {
                kind: EventKind::Rebound,
                reason: REBOUND_LIMIT_EXCEEDED.to_owned(),
            });
        }
        let expiration = rebound_expiration_ms(
            settings.rebound_initial_expiration.as_millis() as u64,
            iteration,
            rebound.retry_after_ms,
        );
        let mut table = self
            .delivered
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        table.insert("end".into(), int_value(headers::now_ms()));
        table.insert("reboundReason".into(), text_value(&rebound.reason));
        table.insert(headers::REBOUND_ITERATION.into(), int_value(iteration));
        Ok(Outgoing {
            routing_key: settings.rebound_routing_key.clone(),
            body: self.delivered.body.clone(),
            properties: self
                .delivered
                .properties
                .clone()
                .with_expiration(expiration.to_string().into()),
            headers: table.into(),
        })
    }
}

/// The wire form of an error event: plain JSON whose `error` is the encrypted report in base64
/// and whose `errorInput`, when there was an input, is the input's ciphertext in base64.
pub fn error_message(
    report: &ErrorReport,
    error_input: Option<&str>,
    cipher: &MessageCipher,
    routing_key: &str,
    headers: PublishHeaders,
) -> Outgoing {
    let error = cipher.encode_base64(json!(report).to_string().as_bytes());
    let body = match error_input {
        Some(input) => json!({"error": error, "errorInput": input}),
        None => json!({ "error": error }),
    };
    Outgoing {
        routing_key: routing_key.to_owned(),
        body: body.to_string().into_bytes(),
        properties: json_properties(),
        headers,
    }
}

/// The wire form of an `updateKeys` event (DESIGN.md section 4): the keys encrypted like a
/// data message, with `protocolVersion`, `accountId` and `keysEvent` added to `headers`.
pub fn update_keys_message(
    keys: &Keys,
    cipher: &MessageCipher,
    protocol: Encoding,
    routing_key: &str,
    account: Option<&str>,
    mut headers: PublishHeaders,
) -> Outgoing {
    // The token set leaves the process here, encrypted, for the platform to persist.
    let body = cipher.encode(keys.expose_json().to_string().as_bytes(), protocol);
    headers.insert(PROTOCOL_VERSION, int_value(protocol.protocol_version()));
    headers.insert("accountId", text_value(account.unwrap_or_default()));
    headers.insert("keysEvent", text_value("updateKeys"));
    Outgoing {
        routing_key: routing_key.to_owned(),
        body,
        properties: json_properties(),
        headers,
    }
}

/// The iteration of a rebound of a delivery whose `reboundIteration` header read `incoming`:
/// one more, a missing or negative header counting as 0. The header is outside data, so the
/// count saturates instead of overflowing: a huge value is past any limit, never wrapped below it.
pub fn next_rebound_iteration(incoming: Option<i64>) -> i64 {
    incoming.filter(|i| *i >= 0).unwrap_or(0).saturating_add(1)
}

/// The longest `expiration` a rebound carries: AMQP's per-message TTL is an unsigned 32-bit
/// count of milliseconds (about 49.7 days); RabbitMQ closes the channel over a larger one
/// (406 "invalid expiration"), and stricter brokers and clients refuse it too.
pub const MAX_REBOUND_EXPIRATION_MS: u64 = u32::MAX as u64;

/// `initial * 2^(iteration-1)` ms, or the API's `Retry-After` when that is longer, never past
/// [`MAX_REBOUND_EXPIRATION_MS`]: a `Retry-After` of years still rebounds, at the cap.
pub fn rebound_expiration_ms(initial_ms: u64, iteration: i64, retry_after_ms: Option<u64>) -> u64 {
    let exponent = u32::try_from(iteration.saturating_sub(1).clamp(0, 63)).unwrap_or(63);
    let backoff = initial_ms.saturating_mul(2u64.saturating_pow(exponent));
    backoff
        .max(retry_after_ms.unwrap_or(0))
        .min(MAX_REBOUND_EXPIRATION_MS)
}

/// Removes `x-eio-routing-key` (any case) from the message headers and returns it.
fn take_routing_key(message: &mut Message) -> Option<String> {
    let name = message
        .headers
        .keys()
        .find(|name| name.eq_ignore_ascii_case(ROUTING_KEY_HEADER))?
        .clone();
    message
        .headers
        .remove(&name)
        .and_then(|value| value.as_str().map(str::to_owned))
}

#[async_trait]
impl EventSink for DeliverySink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        let kind = event.kind();
        // A data message is moved into its wire form, not copied: nothing reads it after.
        let (outgoing, event) = match event {
            Event::Data(message) => (self.data(message).await?, None),
            event => (self.outgoing(&event, kind)?, Some(event)),
        };
        let throttles = &self.wire.throttles;
        match kind {
            EventKind::Data => throttles.data.acquire().await,
            EventKind::Error => throttles.error.acquire().await,
            EventKind::Snapshot => throttles.snapshot.acquire().await,
            _ => {}
        }
        let published = match &event {
            // The rare events' publishes are boxed, so that a data event's future, the
            // common one, is not the size of theirs.
            Some(Event::HttpReply(_)) => Box::pin(self.publish_reply(kind, &outgoing)).await,
            Some(Event::Error(_)) => match self.error_reply(&outgoing) {
                // Both confirmed, or the error does not count as published; a reply the
                // broker will never take does not hold the input back, since requeueing it
                // would only publish the same error again.
                Some(reply) => {
                    let (error, reply) = Box::pin(async {
                        tokio::join!(
                            self.wire.publisher.publish(&outgoing),
                            self.publish_reply(kind, &reply)
                        )
                    })
                    .await;
                    let reply = reply.or_else(|error| {
                        if error.is_permanent() {
                            tracing::warn!(message = "The error reply was refused; it is dropped.", %error);
                            Ok(())
                        } else {
                            Err(error)
                        }
                    });
                    error.and(reply)
                }
                None => Box::pin(self.wire.publisher.publish(&outgoing)).await,
            },
            _ => self.wire.publisher.publish(&outgoing).await,
        };
        published.map_err(|source| EmitError::Transport {
            kind,
            source: Box::new(source),
        })?;
        tracing::debug!(message = "Event published.", event = %kind, routing_key = %outgoing.routing_key);
        match event {
            Some(Event::Error(_)) => {
                self.errors_published.fetch_add(1, Ordering::SeqCst);
            }
            Some(Event::Rebound(_)) => {
                self.rebounds_published.fetch_add(1, Ordering::SeqCst);
            }
            Some(Event::UpdateKeys(_)) => metrics::get().update_keys_published(&outgoing),
            Some(Event::Snapshot(snapshot)) => {
                *self
                    .wire
                    .snapshot
                    .lock()
                    .expect("no code panics while holding this lock") = snapshot;
            }
            Some(Event::UpdateSnapshot(update)) => {
                let mut current = self
                    .wire
                    .snapshot
                    .lock()
                    .expect("no code panics while holding this lock");
                *current = crate::event::merge_snapshot(&current, &update);
            }
            _ => {}
        }
        Ok(())
    }
}

impl DeliverySink {
    /// The wire form of an event other than data.
    /// The wire form of an event other than data (which is moved into its own, see
    /// [`Self::data`]).
    fn outgoing(&self, event: &Event, kind: EventKind) -> Result<Outgoing, EmitError> {
        Ok(match event {
            Event::Error(report) => self.error(report),
            Event::Snapshot(snapshot) | Event::UpdateSnapshot(snapshot) => {
                self.snapshot(snapshot, kind)
            }
            Event::UpdateKeys(keys) => self.update_keys(keys)?,
            Event::Rebound(rebound) => self.rebound(rebound)?,
            Event::HttpReply(reply) => self.http_reply(reply)?,
            Event::Data(_) => unreachable!("a data message is moved into its wire form instead"),
        })
    }
}

/// The `errorInput` for a delivery: its ciphertext as base64. A v1 body is that text already
/// and goes as received, as sailor-nodejs sends it, even when it did not decrypt: the platform
/// then holds the very bytes that failed. Only a body that is not text is base64-encoded.
pub fn error_input(body: &[u8], encoding: Encoding) -> String {
    use base64::Engine as _;
    match (encoding, std::str::from_utf8(body)) {
        (Encoding::Base64, Ok(text)) => text.trim().to_owned(),
        _ => base64::engine::general_purpose::STANDARD.encode(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebound_expiration_doubles_and_honours_retry_after() {
        let ms: Vec<u64> = (1..=4)
            .map(|i| rebound_expiration_ms(15_000, i, None))
            .collect();
        assert_eq!(ms, [15_000, 30_000, 60_000, 120_000]);
        assert_eq!(rebound_expiration_ms(15_000, 1, Some(90_000)), 90_000);
        assert_eq!(rebound_expiration_ms(15_000, 2, Some(1_000)), 30_000);
    }

    #[test]
    fn rebound_expiration_never_passes_what_amqp_can_carry() {
        // The 20th rebound of sailor's default schedule: 15 s x 2^19 is past 2^32-1 ms.
        assert_eq!(
            rebound_expiration_ms(15_000, 20, None),
            MAX_REBOUND_EXPIRATION_MS
        );
        assert_eq!(
            rebound_expiration_ms(15_000, 1, Some(999_999_999_000)),
            MAX_REBOUND_EXPIRATION_MS
        );
        assert_eq!(
            rebound_expiration_ms(u64::MAX, i64::MAX, Some(u64::MAX)),
            MAX_REBOUND_EXPIRATION_MS
        );
    }

    #[test]
    fn the_rebound_iteration_counts_on_from_the_header_and_saturates() {
        assert_eq!(next_rebound_iteration(None), 1);
        assert_eq!(next_rebound_iteration(Some(-5)), 1);
        assert_eq!(next_rebound_iteration(Some(2)), 3);
        assert_eq!(next_rebound_iteration(Some(i64::MAX)), i64::MAX);
    }

    /// The sink of a delivery with `headers`, on the minimal settings, whose publisher was
    /// never used: for events refused before anything is published.
    fn offline_sink(headers: IncomingHeaders) -> DeliverySink {
        let settings = Settings::from_vars(crate::settings::tests::minimal()).unwrap();
        let publisher = Publisher::new(
            settings.amqp_uri.clone(),
            settings.publish_messages_to.clone(),
            settings.publish_retry,
            settings.persistent_messages,
        );
        let wire = StepWire {
            settings: Arc::new(settings),
            publisher: Arc::new(publisher),
            snapshot: Mutex::new(json!({})),
            is_passthrough: false,
            account: None,
            object_storage: Err(NotConfigured {
                variable: "ELASTICIO_OBJECT_STORAGE_URI",
                problem: "is not set",
            }),
            throttles: crate::throttle::Throttles::new(crate::throttle::RateLimits::default()),
            step_headers: Arc::default(),
        };
        let delivered = Delivered {
            headers,
            body: Vec::new(),
            properties: BasicProperties::default(),
            message: None,
            encoding: Encoding::Base64,
            thread_id: "thread".to_owned(),
            start_ms: 0,
        };
        DeliverySink::new(Arc::new(wire), Arc::new(delivered))
    }

    #[tokio::test]
    async fn an_http_reply_to_an_input_without_reply_to_is_refused_in_sailor_nodejs_words() {
        let sink = offline_sink(IncomingHeaders::default());
        let error = sink
            .publish(Event::HttpReply(HttpReply::new(200, json!("ok"))))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, EmitError::Refused { kind: EventKind::HttpReply, reason } if reason == NO_REPLY_TO),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_rebound_whose_header_holds_the_largest_integer_is_past_the_limit_not_a_panic() {
        let sink = offline_sink(IncomingHeaders {
            rebound_iteration: Some(i64::MAX),
            ..IncomingHeaders::default()
        });
        let rebound = Rebound {
            reason: "busy".into(),
            retry_after_ms: None,
        };
        // Refused before anything is published: no broker is needed.
        let error = sink.publish(Event::Rebound(rebound)).await.unwrap_err();
        assert!(
            error.to_string().contains(REBOUND_LIMIT_EXCEEDED),
            "{error}"
        );
    }

    #[test]
    fn the_routing_key_header_is_taken_in_any_case() {
        let mut message = Message::with_body(json!({}));
        message
            .headers
            .insert("X-EIO-Routing-Key".into(), json!("special"));
        message.headers.insert("keep".into(), json!(1));
        assert_eq!(take_routing_key(&mut message).as_deref(), Some("special"));
        assert_eq!(message.headers.len(), 1);
        assert_eq!(take_routing_key(&mut message), None);
    }

    #[test]
    fn error_input_is_the_ciphertext_in_base64() {
        assert_eq!(error_input(b"YWJj\n", Encoding::Base64), "YWJj");
        assert_eq!(error_input(b"abc", Encoding::Raw), "YWJj");
        assert_eq!(
            error_input(b"not base64 at all", Encoding::Base64),
            "not base64 at all"
        );
        assert_eq!(error_input(b"\x00\xff", Encoding::Base64), "AP8=");
    }
}
