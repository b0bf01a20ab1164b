//! Path templates: filling `{field}` placeholders from a message body, and keeping the
//! result on the API it was meant for.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use url::Url;

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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
    path.split(['/', '\\']).any(is_dot_segment)
}

/// True for `.` and `..`, each dot written as itself or as `%2E` in either case. Checked on
/// every message's path, without decoding a copy.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', after @ ..] => after,
            [b'%', b'2', b'e' | b'E', after @ ..] => after,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// True when `url` is `base` or below it: the same origin, and a path that is the base's path
/// or continues it after a `/`. Keeps the bearer token on the API it was issued for.
pub fn is_within(base: &Url, url: &Url) -> bool {
    // The origin of an http(s) URL compared without building it (two allocations each).
    let same_origin = if matches!(base.scheme(), "http" | "https") {
        url.scheme() == base.scheme()
            && url.host() == base.host()
            && url.port_or_known_default() == base.port_or_known_default()
    } else {
        url.origin() == base.origin()
    };
    if !same_origin {
        return false;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
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
    fn dot_segments_are_told_as_decoding_would() {
        // Every segment of up to six characters over the characters that matter, against
        // the definition: lower-cased, `%2e` decoded, then `.` or `..`.
        let decoded_is_dots = |segment: &str| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".."
        };
        let alphabet = ['.', '%', '2', 'e', 'E', 'a'];
        let mut segments = vec![String::new()];
        for _ in 0..6 {
            segments = segments
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for segment in &segments {
                assert_eq!(
                    is_dot_segment(segment),
                    decoded_is_dots(segment),
                    "{segment}"
                );
            }
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
        assert!(within("https://api.example:443/v1/tenant-a/items"));
        assert!(within("HTTPS://API.example/v1/tenant-a/items"));
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
}
