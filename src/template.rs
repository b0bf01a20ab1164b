//! Small text helpers shared by the component's functions: path templates and body excerpts.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use url::Url;

use crate::redact::Redactor;

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
///
/// A value that is exactly `.` or `..` becomes `%2E` or `%2E%2E`, so that it is never taken
/// for a dot-segment by a reader of the text. URL parsers that follow the WHATWG URL standard
/// (the `url` crate, hence reqwest) still read `%2E%2E` as `..`, so callers that send the
/// path must also refuse it: [`has_dot_segment`] and [`is_within`] say when.
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
        match value.as_str() {
            "." => out.push_str("%2E"),
            ".." => out.push_str("%2E%2E"),
            _ => out.extend(utf8_percent_encode(&value, SEGMENT)),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// True when the path part of `path` (before any `?` or `#`) has a segment that URL parsers
/// resolve away: `.` or `..`, plain or percent-encoded (`%2E`, `.%2e`, ...), which would move
/// the request to another path than the one the template names.
pub fn has_dot_segment(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split(['/', '\\']).any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// True when `url` is `base` or below it: the same origin, and a path that is the base's path
/// or continues it after a `/`. Keeps the bearer token on the API it was issued for.
pub fn is_within(base: &Url, url: &Url) -> bool {
    if url.origin() != base.origin() {
        return false;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How much of a body is redacted before it is cut to [`EXCERPT_CHARS`]: a secret that
/// starts inside the excerpt is replaced whole rather than cut into a quotable prefix.
const REDACTION_WINDOW_CHARS: usize = EXCERPT_CHARS + 8192;

/// The start of a body, as text, for error messages, with the secrets `redactor` knows taken
/// out (an API may echo the request's Authorization header in its error body).
pub fn excerpt(body: &[u8], redactor: &Redactor) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return "(empty body)".to_owned();
    }
    truncate(&redacted_start(&text, redactor), EXCERPT_CHARS)
}

/// The start of `text`, long enough for any excerpt of it, with every secret `redactor` knows
/// taken out: the one place quoted bodies are redacted before they are cut.
pub fn redacted_start(text: &str, redactor: &Redactor) -> String {
    let window: String = text.chars().take(REDACTION_WINDOW_CHARS).collect();
    redactor.redact(&window)
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
    fn dot_segment_values_are_encoded_and_detected() {
        let body = json!({"up": "..", "here": ".", "dots": "...", "encoded": "%2E%2E"});
        assert_eq!(fill_path("/a/{up}/b", &body).unwrap(), "/a/%2E%2E/b");
        assert_eq!(fill_path("/a/{here}", &body).unwrap(), "/a/%2E");
        assert_eq!(fill_path("/a/{dots}", &body).unwrap(), "/a/...");
        assert_eq!(fill_path("/a/{encoded}", &body).unwrap(), "/a/%252E%252E");
        for path in [
            "/a/%2E%2E/b",
            "/a/%2e",
            "/a/.%2E/b",
            "/a/../b",
            "/a/./b",
            "..",
            "/a\\..\\b",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/a/.../b",
            "/a/%252E%252E",
            "/a/b.c",
            "/a?x=..",
            "/a#..",
            "/items/",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn only_urls_under_the_base_are_within_it() {
        let base = Url::parse("https://api.example/v1/tenant-a").unwrap();
        let within = |url: &str| is_within(&base, &Url::parse(url).unwrap());
        assert!(within("https://api.example/v1/tenant-a"));
        assert!(within("https://api.example/v1/tenant-a/items/1?q=2"));
        assert!(!within("https://api.example/v1/tenant-ab/items"));
        assert!(!within("https://api.example/v1/admin"));
        assert!(!within("http://api.example/v1/tenant-a/items"));
        assert!(!within("https://api.example:8443/v1/tenant-a/items"));
        assert!(!within("https://evil.example/v1/tenant-a/items"));
        let root = Url::parse("https://api.example/").unwrap();
        assert!(is_within(
            &root,
            &Url::parse("https://api.example/x").unwrap()
        ));
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            fill_path("/items/{nope}", &json!({})).unwrap_err(),
            "the message body has no field `nope` for the path `/items/{nope}`"
        );
    }

    #[test]
    fn a_secret_cut_by_the_excerpt_bound_is_redacted_whole() {
        let secret = "tok-".repeat(20);
        let body = format!("{}{secret} tail", "x".repeat(EXCERPT_CHARS - 10));
        let cut = excerpt(body.as_bytes(), &Redactor::new().with_secret(&secret));
        assert!(!cut.contains("tok-"), "{cut}");
        assert!(cut.ends_with("x[redacted]…"), "{cut}");
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(1000);
        let none = Redactor::new();
        assert_eq!(
            excerpt(long.as_bytes(), &none).chars().count(),
            EXCERPT_CHARS + 1
        );
        assert_eq!(excerpt(b"", &none), "(empty body)");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
    }
}
