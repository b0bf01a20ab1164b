//! The message that flows between the steps of a flow (elastic.io's message object).
//!
//! Fields the runtime knows are typed; everything else a step sent along (webhook `method`,
//! `url`, `query`, `metadata`, ...) is kept in [`Message::extra`] and passed on unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message: its id, the payload `body`, message-level `headers` (not AMQP headers),
/// `attachments`, and the `passthrough` of earlier steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Id chosen by the step that emitted the message; a fresh one is given when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The payload.
    #[serde(default = "empty_object")]
    pub body: Value,
    /// Message-level headers, e.g. the HTTP headers of a webhook call.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// Attachments by name: `{url, content-type, size}`.
    #[serde(default)]
    pub attachments: Map<String, Value>,
    /// Earlier steps' messages, keyed by step id, when the flow enables passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<Map<String, Value>>,
    /// Every other field, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Message {
    /// A new message with a fresh id and the given body, as a module emits it.
    pub fn with_body(body: Value) -> Self {
        Self {
            id: Some(uuid::Uuid::new_v4().to_string()),
            body,
            ..Self::default()
        }
    }

    /// Parses a message from JSON text; the error names line and column.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let input = json!({
            "id": "m1",
            "body": {"a": 1},
            "headers": {"x": "y"},
            "attachments": {},
            "passthrough": {"step_1": {"body": {}}},
            "method": "POST",
            "metadata": {"k": [1, 2]}
        });
        let message: Message = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(message.extra["method"], json!("POST"));
        assert_eq!(serde_json::to_value(&message).unwrap(), input);
    }

    #[test]
    fn missing_fields_get_elastic_io_defaults() {
        let message = Message::from_json("{}").unwrap();
        assert_eq!(message.body, json!({}));
        assert!(message.headers.is_empty() && message.id.is_none());
    }

    #[test]
    fn decoding_errors_name_line_and_column() {
        let error = Message::from_json("{\n  \"body\": [1,\n}").unwrap_err();
        assert_eq!((error.line(), error.column() > 0), (3, true));
        let error = Message::from_json("{\"headers\": 5}").unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }
}
