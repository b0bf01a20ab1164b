//! What the demo saw, in order: the sandbox's traffic and the step's events on one timeline,
//! printed for people, with every token value redacted.

use std::time::Instant;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use sailor::event::Event;
use sandbox::TrafficRecord;

/// Token fields whose values never appear in the printout.
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token"];

/// One line of the timeline.
#[derive(Debug)]
pub enum Entry {
    /// An HTTP exchange with the sandbox.
    Http(TrafficRecord),
    /// An event the step emitted, seen in-process.
    Event(Event),
    /// An event the worker published, read back from the broker and decoded.
    Published(Published),
    /// Something the demo did, such as sending a message to a step's queue.
    Note(String),
}

/// A message a worker published, as read from the broker.
#[derive(Debug)]
pub struct Published {
    /// The event it carries, decrypted.
    pub event: Event,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The AMQP headers worth showing (`accountId`, `keysEvent`), in order.
    pub headers: Vec<(String, String)>,
}

impl Entry {
    /// The event this entry shows, if any.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Self::Event(event) | Self::Published(Published { event, .. }) => Some(event),
            Self::Http(_) | Self::Note(_) => None,
        }
    }
}

/// Traffic and the driver's entries merged by time; at equal times, traffic first.
pub fn timeline(traffic: Vec<TrafficRecord>, entries: Vec<(Instant, Entry)>) -> Vec<Entry> {
    let mut entries: Vec<(Instant, Entry)> = traffic
        .into_iter()
        .map(|record| (record.at, Entry::Http(record)))
        .chain(entries)
        .collect();
    entries.sort_by_key(|(at, _)| *at);
    entries.into_iter().map(|(_, entry)| entry).collect()
}

/// The entry as one line of the printout (two for an `updateKeys` message, whose headers
/// matter).
pub fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Http(record) => {
            let status = reqwest::StatusCode::from_u16(record.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let note = match (record.status, record.path_and_query.starts_with("/oauth")) {
                (401, _) => "   <- the access token has expired",
                (200, true) => "   <- grant_type=refresh_token, one request",
                _ => "",
            };
            format!(
                "  http  {} {} -> {} {status}{note}",
                record.method, record.path_and_query, record.status
            )
        }
        Entry::Event(event) => format!("  emit  {}", describe_event(event)),
        Entry::Published(published) => {
            let mut line = format!(
                "  amqp  {}\n          routing key {}",
                describe_event(&published.event),
                published.routing_key
            );
            for (name, value) in &published.headers {
                line.push_str(&format!(", {name}: {value}"));
            }
            line
        }
        Entry::Note(note) => format!("  {note}"),
    }
}

/// The event itself, after the line's prefix.
fn describe_event(event: &Event) -> String {
    match event {
        Event::Data(message) => {
            let body = &message.body;
            if let (Some(status), Some(echo)) = (body.get("status"), body.get("body")) {
                format!(
                    "data        {{status: {status}, body: the API's echo of {} {}}}",
                    echo["method"].as_str().unwrap_or("?"),
                    echo["path"].as_str().unwrap_or("?")
                )
            } else {
                format!(
                    "data        {} \"{}\" (updated_at {})",
                    body["id"].as_str().unwrap_or("?"),
                    body["name"].as_str().unwrap_or(""),
                    body["updated_at"].as_str().unwrap_or("?")
                )
            }
        }
        Event::UpdateKeys(keys) => format!("updateKeys  {}", redacted(keys.expose_json())),
        Event::Snapshot(snapshot) => format!("snapshot    {snapshot}"),
        Event::UpdateSnapshot(update) => format!("updateSnapshot {update}"),
        Event::Rebound(rebound) => format!("rebound     {}", rebound.reason),
        Event::Error(report) => format!("error       {}", report.message),
        Event::HttpReply(reply) => format!("httpReply   {} {}", reply.status_code, reply.body),
    }
}

/// A copy of `value` with every token replaced by `<redacted #fingerprint>`: the reader can
/// see a token change without seeing the token.
pub fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match v.as_str() {
                        Some(secret) if SECRET_FIELDS.contains(&k.as_str()) => {
                            Value::from(format!("<redacted #{}>", fingerprint(secret)))
                        }
                        _ => redacted(v),
                    };
                    (k.clone(), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// The first 6 hex digits of the token's SHA-256: enough to tell tokens apart, useless to
/// anyone holding the printout.
pub fn fingerprint(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .take(3)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_redacted_at_any_depth_and_other_fields_kept() {
        let keys = json!({"oauth": {"access_token": "at-secret", "refresh_token": "rt-secret",
                          "id_token": "jwt", "expires_in": 2, "instance_url": "https://x"}});
        let printed = redacted(&keys).to_string();
        for secret in ["at-secret", "rt-secret", "jwt"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains(&format!("<redacted #{}>", fingerprint("rt-secret"))));
        assert!(printed.contains("https://x") && printed.contains("\"expires_in\":2"));
    }

    #[test]
    fn a_published_update_keys_shows_its_routing_key_headers_and_no_token() {
        let entry = Entry::Published(Published {
            event: Event::UpdateKeys(sailor::event::Keys::new(
                json!({"oauth": {"access_token": "at-secret", "expires_in": 3}}),
            )),
            routing_key: "flow.step_1.updateKeys".to_owned(),
            headers: vec![
                ("accountId".to_owned(), "account-1".to_owned()),
                ("keysEvent".to_owned(), "updateKeys".to_owned()),
            ],
        });
        assert_eq!(
            describe(&entry),
            format!(
                "  amqp  updateKeys  {{\"oauth\":{{\"access_token\":\"<redacted #{}>\",\"expires_in\":3}}}}\n          routing key flow.step_1.updateKeys, accountId: account-1, keysEvent: updateKeys",
                fingerprint("at-secret")
            )
        );
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }
}
