//! Lightweight messages: a message whose body lives in [`crate::object_storage`], the message
//! carrying `"body": {}` and the object's id in its message-level header
//! `x-ipaas-object-storage-id` (sailor-nodejs 2.7.8's `OBJECT_ID_HEADER`). Passthrough entries
//! may be lightweight the same way.
//!
//! In: [`resolve`] reads every stored body of an incoming message back before the function
//! sees it. sailor-nodejs does so only for functions declaring `autoResolveObjectReferences`
//! and otherwise hands the function an empty body without a word; here a lightweight body
//! is always read, and one that cannot be (object storage not configured, unreachable, the
//! object gone) is an error event naming the header, never an empty body.
//!
//! Out: with `ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE`, [`lighten`] stores a data message's body and
//! its passthrough bodies when their JSON, together, is longer than
//! `ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD` bytes; a passthrough body already stored keeps
//! its id and is not stored again. sailor-nodejs uploads the passthrough bodies and then sends
//! the original, full ones anyway; here the message carries what was uploaded.

use futures_util::future::try_join_all;
use serde_json::{Map, Value};

use crate::message::Message;
use crate::object_storage::{NotConfigured, ObjectStorage, ObjectStorageError};

/// The message-level header naming the object that holds a message's body.
pub const OBJECT_ID_HEADER: &str = "x-ipaas-object-storage-id";

/// A stored body of an incoming message could not be read back.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {part} is in object storage (message header `{OBJECT_ID_HEADER}`: {id:?}) and cannot be read"
)]
pub struct ResolveError {
    /// Which body: "input message's body", "passthrough body of step step_1".
    pub part: String,
    /// The object's id.
    pub id: String,
    /// Why it could not be read.
    #[source]
    pub source: ObjectStorageError,
}

/// The object id in a message-level `headers` object, if any.
pub fn object_id(headers: Option<&Value>) -> Option<String> {
    match headers?.get(OBJECT_ID_HEADER)? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        _ => None,
    }
}

/// Replaces every lightweight body of `message` (its own and its passthrough entries') by the
/// stored one; returns how many were read. `storage` is the worker's client, or why there is
/// none.
pub async fn resolve(
    message: &mut Message,
    storage: Result<&ObjectStorage, &NotConfigured>,
) -> Result<usize, ResolveError> {
    let own = message
        .headers
        .get(OBJECT_ID_HEADER)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(|id| ("input message's body".to_owned(), None, id.to_owned()));
    let passthrough = message
        .passthrough
        .iter()
        .flatten()
        .filter_map(|(step, entry)| {
            object_id(entry.get("headers")).map(|id| {
                (
                    format!("passthrough body of step {step}"),
                    Some(step.clone()),
                    id,
                )
            })
        });
    let wanted: Vec<(String, Option<String>, String)> =
        own.into_iter().chain(passthrough).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let fetched = try_join_all(wanted.into_iter().map(|(part, step, id)| async move {
        let fetched = match storage {
            Ok(storage) => storage.get(&id).await,
            Err(missing) => Err(ObjectStorageError::NotConfigured(missing.clone())),
        };
        match fetched {
            Ok(body) => Ok((step, body)),
            Err(source) => Err(ResolveError { part, id, source }),
        }
    }))
    .await?;
    let count = fetched.len();
    for (step, body) in fetched {
        match step {
            None => message.body = body,
            Some(step) => {
                if let Some(Value::Object(entry)) = message
                    .passthrough
                    .as_mut()
                    .and_then(|passthrough| passthrough.get_mut(&step))
                {
                    entry.insert("body".to_owned(), body);
                }
            }
        }
    }
    Ok(count)
}

/// The length of a body's JSON text, as sailor-nodejs measures it against the threshold.
fn json_len(body: &Value) -> usize {
    serde_json::to_vec(body).map(|text| text.len()).unwrap_or(0)
}

/// When the JSON of `message`'s body and of the bodies in `passthrough` is longer than
/// `threshold` bytes in all, stores each of them that is not stored yet and leaves `{}` and
/// the object id header in its place; returns whether it did.
pub async fn lighten(
    message: &mut Message,
    passthrough: &mut Map<String, Value>,
    storage: &ObjectStorage,
    threshold: usize,
) -> Result<bool, ObjectStorageError> {
    let total = json_len(&message.body)
        + passthrough
            .values()
            .map(|entry| json_len(entry.get("body").unwrap_or(&Value::Null)))
            .sum::<usize>();
    if total <= threshold {
        return Ok(false);
    }
    let own = serde_json::to_vec(&message.body).unwrap_or_default();
    let entries: Vec<(String, Option<String>, Vec<u8>)> = passthrough
        .iter()
        .map(|(step, entry)| {
            (
                step.clone(),
                object_id(entry.get("headers")),
                serde_json::to_vec(entry.get("body").unwrap_or(&Value::Null)).unwrap_or_default(),
            )
        })
        .collect();
    let (own_id, entry_ids) = futures_util::try_join!(
        storage.add(&own),
        try_join_all(entries.into_iter().map(|(step, stored, body)| async move {
            let id = match stored {
                Some(id) => id,
                None => storage.add(&body).await?,
            };
            Ok::<_, ObjectStorageError>((step, id))
        }))
    )?;
    tracing::info!(
        message = "Message body stored in object storage.",
        bytes = total,
        threshold
    );
    message.body = Value::Object(Map::new());
    message
        .headers
        .insert(OBJECT_ID_HEADER.to_owned(), Value::String(own_id));
    for (step, id) in entry_ids {
        if let Some(Value::Object(entry)) = passthrough.get_mut(&step) {
            entry.insert("body".to_owned(), Value::Object(Map::new()));
            let headers = entry
                .entry("headers")
                .or_insert_with(|| Value::Object(Map::new()));
            if !headers.is_object() {
                *headers = Value::Object(Map::new());
            }
            if let Value::Object(headers) = headers {
                headers.insert(OBJECT_ID_HEADER.to_owned(), Value::String(id));
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_ids_are_read_from_message_headers_only_when_non_empty_text() {
        assert_eq!(
            object_id(Some(&json!({OBJECT_ID_HEADER: "abc"}))),
            Some("abc".to_owned())
        );
        assert_eq!(object_id(Some(&json!({OBJECT_ID_HEADER: ""}))), None);
        assert_eq!(object_id(Some(&json!({OBJECT_ID_HEADER: 5}))), None);
        assert_eq!(object_id(None), None);
    }

    #[tokio::test]
    async fn a_lightweight_input_without_object_storage_names_the_header_and_the_variable() {
        let mut message: Message = serde_json::from_value(json!({
            "body": {},
            "headers": {OBJECT_ID_HEADER: "obj-1"}
        }))
        .unwrap();
        let missing = NotConfigured {
            variable: "ELASTICIO_OBJECT_STORAGE_URI",
            problem: "is not set",
        };
        let error = resolve(&mut message, Err(&missing)).await.unwrap_err();
        assert_eq!(
            crate::event::ErrorReport::from_error("ObjectStorageError", &error).message,
            "the input message's body is in object storage (message header \
             `x-ipaas-object-storage-id`: \"obj-1\") and cannot be read: \
             ELASTICIO_OBJECT_STORAGE_URI is not set"
        );
    }

    #[tokio::test]
    async fn a_message_without_object_ids_is_left_alone() {
        let mut message = Message::with_body(json!({"a": 1}));
        let missing = NotConfigured {
            variable: "ELASTICIO_OBJECT_STORAGE_URI",
            problem: "is not set",
        };
        assert_eq!(resolve(&mut message, Err(&missing)).await.unwrap(), 0);
        assert_eq!(message.body, json!({"a": 1}));
    }
}
