//! The events a step produces: data, error, snapshot, updateSnapshot, updateKeys, rebound and
//! httpReply.
//!
//! One typed value per event; the transports (stdout for `component run`, AMQP for the worker)
//! decide how each is written on the wire.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::message::Message;

/// An event emitted while processing one message.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "an event is built once and moved once; boxing buys nothing"
)]
pub enum Event {
    /// A message for the next step.
    Data(Message),
    /// The failure of the step, produced by the runtime from the module's `Err`.
    Error(ErrorReport),
    /// The step's new state, kept by the platform between runs.
    Snapshot(Value),
    /// Part of the step's state: a JSON object whose top-level fields replace the snapshot's
    /// fields of the same name (lodash's `_.extend`, as sailor-nodejs merges it and the
    /// platform stores it); the other fields stay.
    UpdateSnapshot(Value),
    /// New credential keys for the platform to persist.
    UpdateKeys(Keys),
    /// Ask the platform to deliver the incoming message again later.
    Rebound(Rebound),
    /// The answer to the HTTP request that started the flow (request-reply webhooks).
    HttpReply(HttpReply),
}

/// The kind of an event, as named on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `data`
    Data,
    /// `error`
    Error,
    /// `snapshot`
    Snapshot,
    /// `updateSnapshot`
    UpdateSnapshot,
    /// `updateKeys`
    UpdateKeys,
    /// `rebound`
    Rebound,
    /// `httpReply`
    HttpReply,
}

impl EventKind {
    /// The event's name in elastic.io's vocabulary.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Error => "error",
            Self::Snapshot => "snapshot",
            Self::UpdateSnapshot => "updateSnapshot",
            Self::UpdateKeys => "updateKeys",
            Self::Rebound => "rebound",
            Self::HttpReply => "httpReply",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as elastic.io reports it: `{name, message, stack}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    /// The error's kind, e.g. `ReauthorizationRequired`.
    pub name: String,
    /// What went wrong, in words for the integration engineer.
    pub message: String,
    /// The chain of causes, one per line (Rust has no stack to give).
    pub stack: String,
}

impl ErrorReport {
    /// Builds the report from an error, walking its chain of sources for `stack`.
    pub fn from_error(name: impl Into<String>, error: &(dyn std::error::Error + 'static)) -> Self {
        let chain: Vec<String> = error_chain(error).map(ToString::to_string).collect();
        Self {
            name: name.into(),
            message: chain.join(": "),
            stack: chain.join("\ncaused by: "),
        }
    }
}

/// An error followed by its sources, outermost first: the one walk of an error chain that
/// error events, verification reasons, log fields and exit messages share.
pub fn error_chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |cause| cause.source())
}

/// An error and its causes on one line, `: ` between them, as an exit message or a log field
/// gives them.
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    error_chain(error)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// The deepest cause of an error: for network errors the one a user recognises
/// ("Connection refused").
pub(crate) fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    error_chain(error)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// `snapshot` with `update`'s top-level fields merged in, as `updateSnapshot` changes it. A
/// snapshot that is not an object is replaced by the update.
pub fn merge_snapshot(snapshot: &Value, update: &Value) -> Value {
    let (Value::Object(current), Value::Object(update)) = (snapshot, update) else {
        return update.clone();
    };
    let mut merged = current.clone();
    for (name, value) in update {
        merged.insert(name.clone(), value.clone());
    }
    Value::Object(merged)
}

/// Why an `updateSnapshot` cannot be sent, as sailor-nodejs judges it: the update must be
/// an object, and `$set` (a merge operator the platform dropped) is refused.
pub fn check_snapshot_update(update: &Value) -> Result<(), String> {
    match update.as_object() {
        None => Err("updateSnapshot takes a JSON object".to_owned()),
        Some(fields) if fields.contains_key("$set") => {
            Err("$set is not supported any more in updateSnapshot".to_owned())
        }
        Some(_) => Ok(()),
    }
}

/// Keys for `updateKeys`, e.g. `{"oauth": <token set>}`. They hold secrets, so `Debug`
/// prints only the top-level names.
#[derive(Clone, PartialEq)]
pub struct Keys(Value);

impl Keys {
    /// Wraps the keys to emit.
    pub fn new(keys: Value) -> Self {
        Self(keys)
    }

    /// The keys, secrets included: for the `updateKeys` payload only.
    pub fn expose_json(&self) -> &Value {
        &self.0
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = self
            .0
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        f.debug_tuple("Keys").field(&names).finish()
    }
}

/// A request to deliver the incoming message again later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rebound {
    /// Why, e.g. "the API answered 429 Too Many Requests".
    pub reason: String,
    /// The wait the API asked for (`Retry-After`), in milliseconds, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The answer a request-reply flow gives to the HTTP request waiting at its webhook: what
/// sailor-nodejs components emit as `httpReply`, `{statusCode, body, headers}`. The worker
/// sends it to the input's `reply_to` queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpReply {
    /// The HTTP status the caller gets.
    pub status_code: u16,
    /// The response body: any JSON, a string for a text answer.
    pub body: Value,
    /// The HTTP response headers, by name (e.g. `content-type`).
    pub headers: Map<String, Value>,
}

impl HttpReply {
    /// A reply with `status_code` and `body` and no headers.
    pub fn new(status_code: u16, body: Value) -> Self {
        Self {
            status_code,
            body,
            headers: Map::new(),
        }
    }
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Data(_) => EventKind::Data,
            Self::Error(_) => EventKind::Error,
            Self::Snapshot(_) => EventKind::Snapshot,
            Self::UpdateSnapshot(_) => EventKind::UpdateSnapshot,
            Self::UpdateKeys(_) => EventKind::UpdateKeys,
            Self::Rebound(_) => EventKind::Rebound,
            Self::HttpReply(_) => EventKind::HttpReply,
        }
    }

    /// The event's payload as JSON. For `updateKeys` this writes out the keys, secrets
    /// included, because persisting them is the event's purpose.
    pub fn payload(&self) -> Value {
        match self {
            Self::Data(message) => serde_json::to_value(message).unwrap_or(Value::Null),
            Self::Error(report) => json!(report),
            Self::Snapshot(snapshot) | Self::UpdateSnapshot(snapshot) => snapshot.clone(),
            Self::UpdateKeys(keys) => keys.expose_json().clone(),
            Self::Rebound(rebound) => json!(rebound),
            Self::HttpReply(reply) => json!(reply),
        }
    }

    /// The event as one JSON line of `component run`: `{"event": ..., "payload": ...}`.
    pub fn to_json_line(&self) -> String {
        json!({"event": self.kind().as_str(), "payload": self.payload()}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_name_the_event_and_carry_the_payload() {
        let data = Event::Data(Message {
            id: Some("1".into()),
            body: json!({"a": 1}),
            ..Message::default()
        });
        assert_eq!(
            data.to_json_line(),
            r#"{"event":"data","payload":{"id":"1","body":{"a":1},"headers":{},"attachments":{}}}"#
        );
        let keys = Event::UpdateKeys(Keys::new(json!({"oauth": {"access_token": "x"}})));
        assert_eq!(
            keys.to_json_line(),
            r#"{"event":"updateKeys","payload":{"oauth":{"access_token":"x"}}}"#
        );
    }

    #[test]
    fn an_http_reply_is_written_in_sailor_nodejs_names() {
        let mut reply = HttpReply::new(201, json!({"ok": true}));
        reply
            .headers
            .insert("content-type".into(), json!("application/json"));
        assert_eq!(
            Event::HttpReply(reply).to_json_line(),
            r#"{"event":"httpReply","payload":{"statusCode":201,"body":{"ok":true},"headers":{"content-type":"application/json"}}}"#
        );
    }

    #[test]
    fn an_update_replaces_top_level_fields_and_keeps_the_others() {
        let merged = merge_snapshot(
            &json!({"since": 1, "ids": [1], "deep": {"a": 1, "b": 2}}),
            &json!({"since": 2, "deep": {"a": 3}}),
        );
        assert_eq!(merged, json!({"since": 2, "ids": [1], "deep": {"a": 3}}));
        assert_eq!(
            merge_snapshot(&json!(null), &json!({"a": 1})),
            json!({"a": 1})
        );
        assert!(check_snapshot_update(&json!([1])).is_err());
        assert!(check_snapshot_update(&json!({"$set": {"a": 1}})).is_err());
        assert!(check_snapshot_update(&json!({"a": 1})).is_ok());
        assert_eq!(
            Event::UpdateSnapshot(json!({"a": 1})).to_json_line(),
            r#"{"event":"updateSnapshot","payload":{"a":1}}"#
        );
    }

    #[test]
    fn keys_debug_hides_values() {
        let printed = format!(
            "{:?}",
            Event::UpdateKeys(Keys::new(json!({"oauth": {"access_token": "sekrit"}})))
        );
        assert_eq!(printed, r#"UpdateKeys(Keys(["oauth"]))"#);
    }

    #[test]
    fn innermost_is_the_deepest_cause() {
        let outer = crate::emitter::EmitError::Transport {
            kind: EventKind::Data,
            source: Box::new(std::io::Error::other("connection refused")),
        };
        assert_eq!(innermost(&outer), "connection refused");
        assert_eq!(innermost(&std::io::Error::other("alone")), "alone");
    }

    #[test]
    fn error_reports_walk_the_source_chain() {
        let inner = std::io::Error::other("connection refused");
        let outer = crate::emitter::EmitError::Transport {
            kind: EventKind::Data,
            source: Box::new(inner),
        };
        let report = ErrorReport::from_error("EmitError", &outer);
        assert_eq!(
            report.message,
            "could not publish the data event: connection refused"
        );
        assert_eq!(
            report.stack,
            "could not publish the data event\ncaused by: connection refused"
        );
    }
}
