//! Small text helpers shared by the component's functions: path templates and body excerpts.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How much of a response body an error message quotes.
pub const EXCERPT_CHARS: usize = 300;

/// Replaces each `{field}` in `path` with that field of `body`, percent-encoded as one path
/// segment. A missing field is an error naming it.
pub fn fill_path(path: &str, body: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| format!("unclosed `{{` in path `{path}`"))?;
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = match body.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => {
                return Err(format!(
                    "the message body has no field `{name}` for the path `{path}`"
                ));
            }
        };
        out.extend(utf8_percent_encode(&value, SEGMENT));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The start of a body, as text, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return "(empty body)".to_owned();
    }
    truncate(&text, EXCERPT_CHARS)
}

/// `text` cut to `max_chars` characters, with `…` when something was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    let mut cut: String = text.chars().take(max_chars).collect();
    if text.chars().nth(max_chars).is_some() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_and_encoded() {
        let body = json!({"id": "a b/c", "n": 7});
        assert_eq!(
            fill_path("/items/{id}/x/{n}", &body).unwrap(),
            "/items/a%20b%2Fc/x/7"
        );
        assert_eq!(fill_path("/plain", &body).unwrap(), "/plain");
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            fill_path("/items/{nope}", &json!({})).unwrap_err(),
            "the message body has no field `nope` for the path `/items/{nope}`"
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
    }
}
