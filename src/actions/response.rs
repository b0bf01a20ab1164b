//! Turning an HTTP response into the `{status, headers, body}` the `request` action emits.
//!
//! The next step of a flow gets plain JSON: headers by lower-case name (a list when a header
//! repeats), the body as JSON when it is JSON, as text when it is not, and `null` when there
//! is none, so that a 204 or a text/csv export does not fail the step.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

/// Headers as a JSON object; repeated headers become a list, in order.
pub fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let text = |value: &reqwest::header::HeaderValue| {
        Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let mut out = Map::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        let first = values.next().map_or(Value::Null, text);
        // Most headers come once: a list only for those that repeat.
        let value = match values.next() {
            None => first,
            Some(second) => Value::Array(
                [first, text(second)]
                    .into_iter()
                    .chain(values.map(text))
                    .collect(),
            ),
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
        let ct = ct.as_bytes();
        ct.windows(4).any(|w| w.eq_ignore_ascii_case(b"json"))
            || ct
                .get(..10)
                .is_some_and(|start| start.eq_ignore_ascii_case(b"text/plain"))
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
        assert_eq!(body_json(Some("Application/JSON"), b"[2]"), json!([2]));
        assert_eq!(
            body_json(Some("TEXT/PLAIN; charset=utf-8"), b"true"),
            json!(true)
        );
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
        headers.append("x-three", HeaderValue::from_static("1"));
        headers.append("x-three", HeaderValue::from_static("2"));
        headers.append("x-three", HeaderValue::from_static("3"));
        assert_eq!(
            Value::Object(headers_json(&headers)),
            json!({"x-one": "1", "set-cookie": ["a=1", "b=2"], "x-three": ["1", "2", "3"]})
        );
    }
}
