//! Turning an HTTP response into the `{status, headers, body}` the `request` action emits.
//!
//! The next step of a flow gets plain JSON: headers by lower-case name (a list when a header
//! repeats), the body as JSON when it is JSON, as text when it is not, and `null` when there
//! is none, so that a 204 or a text/csv export does not fail the step.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

/// Headers as a JSON object; repeated headers become a list, in order.
pub fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => Value::Array(many),
        };
        out.insert(name.as_str().to_owned(), value);
    }
    out
}

/// The body as JSON when the content type says JSON (or says nothing) and it parses; as text
/// otherwise; `null` when empty.
pub fn body_json(content_type: Option<&str>, bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    let may_be_json = content_type.is_none_or(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("json") || ct.starts_with("text/plain")
    });
    if may_be_json && let Ok(value) = serde_json::from_slice(bytes) {
        return value;
    }
    Value::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, SET_COOKIE};
    use serde_json::json;

    #[test]
    fn bodies_are_json_text_or_null() {
        assert_eq!(
            body_json(Some("application/json"), br#"{"a":1}"#),
            json!({"a": 1})
        );
        assert_eq!(
            body_json(Some("application/problem+json; charset=utf-8"), b"[1]"),
            json!([1])
        );
        assert_eq!(body_json(None, b"42"), json!(42));
        assert_eq!(body_json(Some("text/csv"), b"1,2\n"), json!("1,2\n"));
        assert_eq!(body_json(Some("text/html"), b"{}"), json!("{}"));
        assert_eq!(
            body_json(Some("application/json"), b"not json"),
            json!("not json")
        );
        assert_eq!(body_json(Some("application/json"), b""), Value::Null);
        assert_eq!(body_json(None, b"  \n"), Value::Null);
    }

    #[test]
    fn repeated_headers_become_lists() {
        let mut headers = HeaderMap::new();
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(
            Value::Object(headers_json(&headers)),
            json!({"x-one": "1", "set-cookie": ["a=1", "b=2"]})
        );
    }
}
