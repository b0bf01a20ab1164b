//! `ELASTICIO_INPUT_FORMAT=error`: a step whose queue carries other steps' error events
//! (an error-handling flow). As sailor-nodejs reads them: the delivery is the error event's
//! plain JSON, `{"error": <base64 ciphertext>, "errorInput": <base64 ciphertext>}`; both
//! fields are decrypted from base64 whatever the `protocolVersion` header says, and the
//! function gets a message whose body is that object with the two fields decrypted (the
//! report `{name, message, stack}` and the failed input message) and whose headers are the
//! delivery's AMQP headers.

use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value};

use crate::crypto::{Encoding, MessageCipher};
use crate::message::Message;

/// The message the function sees for an error event delivered as `body` with `headers`;
/// `Err` says why it cannot be read (never quoting the content).
pub fn decode(
    cipher: &MessageCipher,
    body: &[u8],
    headers: Option<&FieldTable>,
) -> Result<Message, String> {
    let mut event: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(event)) => event,
        Ok(_) => return Err("the error event is not a JSON object".to_owned()),
        Err(error) => {
            return Err(format!(
                "the error event is not JSON ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ));
        }
    };
    for field in ["error", "errorInput"] {
        let Some(value) = event.get(field).filter(|v| !is_falsy(v)) else {
            continue;
        };
        let Some(text) = value.as_str() else {
            return Err(format!("the error event's `{field}` is not a string"));
        };
        let plain = cipher
            .decode(text.as_bytes(), Encoding::Base64)
            .map_err(|error| format!("the error event's `{field}` cannot be decrypted: {error}"))?;
        let decrypted: Value = serde_json::from_slice(&plain)
            .map_err(|_| format!("the error event's decrypted `{field}` is not JSON"))?;
        event.insert(field.to_owned(), decrypted);
    }
    Ok(Message {
        body: Value::Object(event),
        headers: headers.map(table_to_json).unwrap_or_default(),
        ..Message::default()
    })
}

/// What JavaScript's `if (x)` takes as false among JSON values: such a field is passed on
/// untouched, as sailor-nodejs does.
fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// AMQP headers as the JSON object amqplib hands to JavaScript.
pub fn table_to_json(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value_to_json(value)))
        .collect()
}

fn value_to_json(value: &AMQPValue) -> Value {
    use AMQPValue as A;
    match value {
        A::Boolean(b) => Value::Bool(*b),
        A::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        A::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        A::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        A::ShortString(s) => Value::String(s.as_str().to_owned()),
        A::FieldArray(items) => Value::Array(items.as_slice().iter().map(value_to_json).collect()),
        A::FieldTable(table) => Value::Object(table_to_json(table)),
        A::ByteArray(bytes) => {
            Value::Array(bytes.as_slice().iter().map(|b| Value::from(*b)).collect())
        }
        A::Void => Value::Null,
        other => super::headers::int_of(other).map_or(Value::Null, Value::from),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::ErrorReport;
    use crate::secret::Password;

    fn cipher() -> MessageCipher {
        MessageCipher::new(&Password::new("pw"), "0123456789abcdef").unwrap()
    }

    #[test]
    fn an_error_event_as_written_by_a_step_is_read_back_decrypted() {
        let cipher = cipher();
        let input = json!({"id": "m-1", "body": {"n": 1}});
        let input_text = cipher.encode_base64(input.to_string().as_bytes());
        let report = ErrorReport {
            name: "Error".into(),
            message: "boom".into(),
            stack: "at x".into(),
        };
        let outgoing = crate::amqp::sink::error_message(
            &report,
            Some(&input_text),
            &cipher,
            "error",
            FieldTable::default().into(),
        );
        let mut headers = FieldTable::default();
        headers.insert("stepId".into(), AMQPValue::LongString("step_1".into()));
        headers.insert("start".into(), AMQPValue::LongLongInt(5));
        let message = decode(&cipher, &outgoing.body, Some(&headers)).unwrap();
        assert_eq!(
            message.body,
            json!({
                "error": {"name": "Error", "message": "boom", "stack": "at x"},
                "errorInput": input
            })
        );
        assert_eq!(message.headers["stepId"], json!("step_1"));
        assert_eq!(message.headers["start"], json!(5));
    }

    #[test]
    fn an_error_event_without_input_keeps_only_its_report() {
        let cipher = cipher();
        let error = cipher.encode_base64(br#"{"message":"m"}"#);
        let body = json!({ "error": error, "errorInput": "" }).to_string();
        let message = decode(&cipher, body.as_bytes(), None).unwrap();
        assert_eq!(
            message.body,
            json!({"error": {"message": "m"}, "errorInput": ""})
        );
    }

    #[test]
    fn what_is_not_an_error_event_is_refused_without_quoting_it() {
        let cipher = cipher();
        let problem = decode(&cipher, b"secret text", None).unwrap_err();
        assert!(!problem.contains("secret"), "{problem}");
        let problem = decode(&cipher, br#"{"error": "c2VjcmV0"}"#, None).unwrap_err();
        assert!(problem.contains("cannot be decrypted"), "{problem}");
    }
}
