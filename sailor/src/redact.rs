//! Taking the secrets the runtime knows out of text it did not write: API and token-endpoint
//! bodies quoted in error events, log lines and `verify_credentials` reasons.
//!
//! A gateway that echoes request headers puts the bearer token in its error bodies, and a
//! token endpoint that echoes its form puts the refresh token and the client secret there.
//! A [`Redactor`] knows the account's secrets (the config's token set and client secret, and
//! the token cache's *current* token set, read when it redacts, so a token refreshed during
//! the call is known too) and replaces each of them, raw, percent-encoded or JSON-escaped, with
//! `[redacted]`. It also blanks the credential after any `Bearer` or `Basic` scheme word, which
//! catches tokens of earlier generations it can no longer name.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret as _, SecretString};

use crate::auth::TokenCache;
use crate::config::StepConfig;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shortest credential blanked after a `Bearer`/`Basic` scheme word: long enough to leave
/// challenge parameters such as `error=` or `realm=` readable, short enough for any token.
const MIN_SCHEME_CREDENTIAL: usize = 8;

/// Shortest secret searched for by value: a shorter one (a test's `"at"`) would match inside
/// ordinary words and mangle the text, and no provider issues credentials that short.
const MIN_NAMED_SECRET: usize = 8;

/// Takes known secrets out of text before it is logged, emitted or POSTed.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<SecretString>,
    cache: Option<TokenCache>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl Redactor {
    /// A redactor that knows no secret yet (it still blanks `Bearer`/`Basic` credentials).
    pub fn new() -> Self {
        Self::default()
    }

    /// The redactor of a step: the config's token set and client secret (from the config or
    /// `OAUTH_CLIENT_SECRET`), and the current token set of `cache`, whenever it redacts.
    pub fn for_step(config: &StepConfig, cache: Option<TokenCache>) -> Self {
        let mut redactor = Self {
            secrets: Vec::new(),
            cache,
        };
        if let Some(tokens) = &config.oauth {
            redactor = redactor.with_secret(tokens.access_token().expose_secret());
            if let Some(refresh) = tokens.refresh_token() {
                redactor = redactor.with_secret(refresh.expose_secret());
            }
        }
        if let Some(secret) = config.resolved_client_secret() {
            redactor = redactor.with_secret(secret.expose_secret());
        }
        redactor
    }

    /// The same redactor, also knowing `secret`.
    pub fn with_secret(mut self, secret: &str) -> Self {
        if !secret.is_empty() {
            self.secrets.push(SecretString::from(secret.to_owned()));
        }
        self
    }

    /// `text` with every known secret, and every `Bearer`/`Basic` credential, replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<String> = self
            .secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect();
        if let Some(cache) = &self.cache {
            let tokens = cache.current().tokens;
            secrets.push(tokens.access_token().expose_secret().to_owned());
            if let Some(refresh) = tokens.refresh_token() {
                secrets.push(refresh.expose_secret().to_owned());
            }
        }
        let mut forms: Vec<String> = Vec::new();
        for secret in secrets.iter().filter(|s| s.len() >= MIN_NAMED_SECRET) {
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            let percent = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
            forms.extend([secret.clone(), json, form, percent]);
        }
        // Longest first, so that a secret containing another is replaced whole.
        forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
        forms.dedup();
        let mut out = text.to_owned();
        for form in forms.iter().filter(|f| !f.is_empty()) {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        blank_scheme_credentials(&out)
    }
}

/// Replaces the credential after each `Bearer` or `Basic` word (any case, then blanks) with
/// [`REDACTED`], when it looks like one: [`MIN_SCHEME_CREDENTIAL`] or more token68 characters.
fn blank_scheme_credentials(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let scheme_len = ["bearer", "basic"]
            .iter()
            .find(|scheme| lower.as_bytes()[at..].starts_with(scheme.as_bytes()))
            .map(|scheme| scheme.len());
        let word_start = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let Some(scheme_len) = scheme_len.filter(|_| word_start) else {
            at += 1;
            continue;
        };
        let mut start = at + scheme_len;
        let blanks = bytes[start..]
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        start += blanks;
        let credential = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
            .count();
        let padding = bytes[start + credential..]
            .iter()
            .take_while(|b| **b == b'=')
            .count();
        if blanks == 0 || credential < MIN_SCHEME_CREDENTIAL {
            at += scheme_len;
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        at = start + credential + padding;
        copied = at;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenSet;
    use crate::config::RefreshMode;
    use serde_json::json;

    #[test]
    fn known_secrets_are_replaced_raw_encoded_and_escaped() {
        let redactor = Redactor::new()
            .with_secret("s3cr/t+\"x")
            .with_secret("plain-token");
        let text = r#"a s3cr/t+"x b s3cr%2Ft%2B%22x c s3cr%2Ft%2B%22x d s3cr/t+\"x e plain-token"#;
        assert_eq!(
            redactor.redact(text),
            "a [redacted] b [redacted] c [redacted] d [redacted] e [redacted]"
        );
    }

    #[test]
    fn credentials_after_a_scheme_word_are_blanked_but_challenges_stay_readable() {
        let redactor = Redactor::new();
        assert_eq!(
            redactor.redact(r#"{"authorization":"Bearer eyJhbGciOi.J9x-y_z=="}"#),
            r#"{"authorization":"Bearer [redacted]"}"#
        );
        assert_eq!(
            redactor.redact("authorization: basic c2FuZGJveDpzZWNyZXQ= ok"),
            "authorization: basic [redacted] ok"
        );
        let challenge = r#"Bearer error="invalid_token", Basic realm="x""#;
        assert_eq!(redactor.redact(challenge), challenge);
        assert_eq!(redactor.redact("Bearerish tokens"), "Bearerish tokens");
        assert_eq!(redactor.redact("née Bearer"), "née Bearer");
    }

    #[test]
    fn the_step_redactor_knows_the_config_and_the_current_tokens() {
        let config = StepConfig::from_value(json!({
            "oauth": {"access_token": "at-config-0001", "refresh_token": "rt-config-0001"},
            "client_secret": "cs-config-0001",
        }))
        .unwrap();
        let cache = TokenCache::new(
            TokenSet::from_stored(json!({"access_token": "at-old-0001"})).unwrap(),
            Err(crate::auth::RefreshError::NotConfigured(
                "no endpoint in this test",
            )),
            RefreshMode::On401,
            60,
            crate::clock::system(),
        );
        let redactor = Redactor::for_step(&config, Some(cache.clone()));
        cache.adopt(
            TokenSet::from_stored(
                json!({"access_token": "at-new-0001", "refresh_token": "rt-new-0001"}),
            )
            .unwrap(),
        );
        assert_eq!(
            redactor.redact("at-config-0001 rt-config-0001 cs-config-0001 at-new-0001 rt-new-0001"),
            "[redacted] [redacted] [redacted] [redacted] [redacted]"
        );
        assert_eq!(
            Redactor::new().with_secret("at").redact("try again later"),
            "try again later",
            "a secret too short to tell from a word is not searched for"
        );
        assert!(!format!("{redactor:?}").contains("config"));
    }
}
