//! Quoting API bodies in error messages: the start of a body, with the account's secrets taken
//! out, cut to a length a log line or an error event can carry.

use crate::redact::Redactor;

/// How much of a response body an error message quotes.
pub const EXCERPT_CHARS: usize = 300;

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
