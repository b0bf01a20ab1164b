//! What the demo saw, in order: the sandbox's traffic and the step's events on one timeline,
//! printed for people, with every token value redacted.

use std::time::Instant;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::event::Event;
use crate::sandbox::TrafficRecord;

/// Token fields whose values never appear in the printout.
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token"];

/// One line of the timeline.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a few dozen entries per demo, each built and printed once"
)]
pub enum Entry {
    /// An HTTP exchange with the sandbox.
    Http(TrafficRecord),
    /// An event the step emitted.
    Event(Event),
}

/// Traffic and events merged by time.
pub fn timeline(traffic: Vec<TrafficRecord>, events: Vec<(Instant, Event)>) -> Vec<Entry> {
    let mut entries: Vec<(Instant, Entry)> = traffic
        .into_iter()
        .map(|record| (record.at, Entry::Http(record)))
        .chain(events.into_iter().map(|(at, e)| (at, Entry::Event(e))))
        .collect();
    entries.sort_by_key(|(at, _)| *at);
    entries.into_iter().map(|(_, entry)| entry).collect()
}

/// The entry as one line of the printout.
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
        Entry::Event(Event::Data(message)) => {
            let body = &message.body;
            if let (Some(status), Some(echo)) = (body.get("status"), body.get("body")) {
                format!(
                    "  emit  data        {{status: {status}, body: the API's echo of {} {}}}",
                    echo["method"].as_str().unwrap_or("?"),
                    echo["path"].as_str().unwrap_or("?")
                )
            } else {
                format!(
                    "  emit  data        {} \"{}\" (updated_at {})",
                    body["id"].as_str().unwrap_or("?"),
                    body["name"].as_str().unwrap_or(""),
                    body["updated_at"].as_str().unwrap_or("?")
                )
            }
        }
        Entry::Event(Event::UpdateKeys(keys)) => {
            format!("  emit  updateKeys  {}", redacted(keys.expose_json()))
        }
        Entry::Event(Event::Snapshot(snapshot)) => format!("  emit  snapshot    {snapshot}"),
        Entry::Event(Event::Rebound(rebound)) => {
            format!("  emit  rebound     {}", rebound.reason)
        }
        Entry::Event(Event::Error(report)) => format!("  emit  error       {}", report.message),
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
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }
}
