//! The refresh request: `grant_type=refresh_token` posted to the token endpoint.
//!
//! Client authentication is `client_secret_basic` (RFC 6749 section 2.3.1: id and secret
//! form-urlencoded, then base64) or `client_secret_post`. Responses are read as JSON, or as a
//! form-encoded body, which some providers send. Error bodies are reduced to the RFC 6749
//! section 5.2 `error` and `error_description`; nothing else from the endpoint is kept, so no
//! token can leak through an error.

use std::time::Duration;

use base64::Engine as _;
use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value};
use url::form_urlencoded::byte_serialize;

use super::error::RefreshError;
use crate::config::{StepConfig, TokenAuthMethod};
use crate::event::error_chain;
use crate::http::{BodyCap, BodyError, read_capped};
use crate::redact::Redactor;
use crate::secret::{ClientSecret, RefreshToken};

/// The most a token endpoint's answer may hold. Token responses are a few KiB, JWTs
/// included; an endpoint sending more is broken, and is not read further.
pub const TOKEN_RESPONSE_CAP: BodyCap =
    BodyCap::new(1024 * 1024, "for token endpoint responses (fixed)");

/// How long a caller waits out a failing token endpoint when nothing else is set: ten
/// minutes, long enough for a provider's restart or a short outage, short enough that a
/// message does not hold its prefetch slot for ever.
pub const DEFAULT_OUTAGE_WAIT: Duration = Duration::from_secs(600);

/// Env var overriding [`DEFAULT_OUTAGE_WAIT`], in whole seconds.
pub const OUTAGE_WAIT_ENV: &str = "COMPONENT_TOKEN_OUTAGE_WAIT_S";

/// The backoff schedule a token cache follows while its token endpoint is failing, and how
/// long a caller waits for it to come back. The cache keeps one schedule per account across
/// refreshes, so an outage costs a handful of token requests whatever the number of callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long a caller that needs a new token waits for a failing (5xx, 429, unreachable)
    /// endpoint to answer before it gets a transient error.
    pub max_wait: Duration,
    /// The wait after the first failure; each later one doubles.
    pub initial_backoff: Duration,
    /// No wait between two token requests is longer, whatever `Retry-After` says.
    pub max_backoff: Duration,
    /// Time allowed for one request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Waits up to [`DEFAULT_OUTAGE_WAIT`], or `COMPONENT_TOKEN_OUTAGE_WAIT_S` seconds when set;
    /// backoff from 200 ms doubling to 60 s.
    fn default() -> Self {
        Self {
            max_wait: outage_wait_from_env(std::env::var(OUTAGE_WAIT_ENV).ok().as_deref()),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The outage wait an env value asks for; a value that is no whole number of seconds is
/// reported and replaced by the default.
fn outage_wait_from_env(value: Option<&str>) -> Duration {
    match value.map(|v| v.trim().parse::<u64>()) {
        None => DEFAULT_OUTAGE_WAIT,
        Some(Ok(seconds)) => Duration::from_secs(seconds),
        Some(Err(_)) => {
            tracing::warn!(
                message =
                    "The token outage wait is not a whole number of seconds; using the default.",
                variable = OUTAGE_WAIT_ENV,
                default_s = DEFAULT_OUTAGE_WAIT.as_secs()
            );
            DEFAULT_OUTAGE_WAIT
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` consecutive failures (1 for the first): exponential with
    /// full jitter in its upper half, or the endpoint's `Retry-After` when it asked for
    /// longer, capped at `max_backoff`.
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        let jittered = exponential.mul_f64(rand::rng().random_range(0.5..=1.0));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(self.max_backoff)
    }
}

/// A token endpoint with the client's credentials.
#[derive(Clone)]
pub struct TokenEndpoint {
    http: reqwest::Client,
    token_uri: url::Url,
    client_id: String,
    client_secret: Option<ClientSecret>,
    method: TokenAuthMethod,
    scope: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("token_uri", &self.token_uri.as_str())
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl TokenEndpoint {
    /// The endpoint described by a step config (client id and secret may come from env).
    pub fn from_config(config: &StepConfig, retry: RetryPolicy) -> Result<Self, RefreshError> {
        let token_uri = config
            .token_uri
            .as_deref()
            .ok_or(RefreshError::NotConfigured("the config has no `token_uri`"))?;
        let token_uri = url::Url::parse(token_uri)
            .map_err(|_| RefreshError::NotConfigured("`token_uri` is not a valid URL"))?;
        let client_id = config
            .resolved_client_id()
            .ok_or(RefreshError::NotConfigured(
                "no `client_id` in the config and no OAUTH_CLIENT_ID",
            ))?;
        let http = crate::http::tls::client_builder()
            // A token endpoint that redirects is misconfigured; following could leak the secret.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(retry.request_timeout)
            .build()
            .map_err(|_| RefreshError::NotConfigured("the HTTP client could not be built"))?;
        Ok(Self {
            http,
            token_uri,
            client_id,
            client_secret: config.resolved_client_secret(),
            method: config.token_auth_method,
            scope: config.scope.clone(),
            retry,
        })
    }

    /// The schedule the account's cache follows while this endpoint is failing.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One token request as callers outside the cache see it: a transient failure (5xx, 429,
    /// timeout, network) is [`RefreshError::Unavailable`] after this one attempt. The token
    /// cache retries on the account's shared schedule instead; this serves tools and tests.
    pub async fn request_once(
        &self,
        refresh_token: &RefreshToken,
    ) -> Result<Map<String, Value>, RefreshError> {
        match self.attempt(refresh_token).await {
            Attempt::Done(result) => result,
            Attempt::Transient {
                last, retry_after, ..
            } => Err(RefreshError::Unavailable {
                attempts: 1,
                last,
                retry_after,
            }),
        }
    }

    /// One token request, no retry: the token cache decides when the next one goes out.
    /// Returns the response's fields exactly as received.
    pub(crate) async fn attempt(&self, refresh_token: &RefreshToken) -> Attempt {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let mut request = self
            .http
            .post(self.token_uri.clone())
            .header(ACCEPT, "application/json");
        match self.method {
            TokenAuthMethod::ClientSecretBasic => {
                request = request.header(AUTHORIZATION, self.basic_credentials());
            }
            TokenAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                if let Some(secret) = &self.client_secret {
                    form.push(("client_secret", secret.expose_secret()));
                }
            }
        }
        let response = match request.form(&form).send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Transient {
                    // A request that was sent but never answered may have rotated the token.
                    response_lost: !error.is_connect(),
                    last: describe_transport_error(&error),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers().get(RETRY_AFTER));
        let is_form = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with("application/x-www-form-urlencoded") || v.starts_with("text/plain")
            });
        let body = match read_capped(response, TOKEN_RESPONSE_CAP).await {
            Ok(body) => body,
            // A success too large to be a token set is not retried: the endpoint may have
            // rotated the refresh token, and sending the old one again could revoke the grant.
            Err(BodyError::TooLarge(too_large)) if status.is_success() => {
                return Attempt::Done(Err(RefreshError::InvalidResponse(too_large.to_string())));
            }
            // An error too large to read is judged by its status alone.
            Err(BodyError::TooLarge(_)) => return classify(status, None, retry_after),
            Err(BodyError::Read(error)) => {
                return Attempt::Transient {
                    response_lost: true,
                    last: describe_transport_error(&error),
                    retry_after,
                };
            }
        };
        let fields = parse_body(&body, is_form);
        let mut redactor = Redactor::new().with_secret(refresh_token.expose_secret());
        if let Some(secret) = &self.client_secret {
            redactor = redactor.with_secret(secret.expose_secret());
        }
        without_secrets(classify(status, fields, retry_after), &redactor)
    }

    fn basic_credentials(&self) -> HeaderValue {
        let encode = |s: &str| byte_serialize(s.as_bytes()).collect::<String>();
        let secret = self
            .client_secret
            .as_ref()
            .map(|s| encode(s.expose_secret()))
            .unwrap_or_default();
        let pair = format!("{}:{}", encode(&self.client_id), secret);
        let mut value = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
        .expect("base64 text is a valid header value");
        value.set_sensitive(true);
        value
    }
}

/// How one token request ended.
pub(crate) enum Attempt {
    /// An answer that settles the refresh: the token response, or a refusal.
    Done(Result<Map<String, Value>, RefreshError>),
    /// A failure that may pass (5xx, 429, timeout, network).
    Transient {
        /// What went wrong, for the error and the logs.
        last: String,
        /// The wait the endpoint asked for.
        retry_after: Option<Duration>,
        /// The request was sent but its answer never arrived, so it may have rotated the
        /// refresh token.
        response_lost: bool,
    },
}

/// Reads a token endpoint body as JSON, or as `a=b&c=d` when it is not JSON.
fn parse_body(body: &[u8], is_form: bool) -> Option<Map<String, Value>> {
    if !is_form && let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        return Some(fields);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || text.starts_with('{') || text.starts_with('<') || !text.contains('=') {
        return None;
    }
    let fields: Map<String, Value> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| {
            // Form bodies carry numbers as text; keep `expires_in` numeric like a JSON answer.
            let value = match v.parse::<u64>() {
                Ok(n) if k == "expires_in" => Value::from(n),
                _ => Value::from(v.into_owned()),
            };
            (k.into_owned(), value)
        })
        .collect();
    Some(fields)
}

const PERMANENT_GRANT_ERRORS: [&str; 3] =
    ["invalid_grant", "invalid_client", "unauthorized_client"];

fn classify(
    status: StatusCode,
    fields: Option<Map<String, Value>>,
    retry_after: Option<Duration>,
) -> Attempt {
    let error_code = fields
        .as_ref()
        .and_then(|f| f.get("error"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let description = fields
        .as_ref()
        .and_then(|f| f.get("error_description"))
        .and_then(Value::as_str)
        .map(|d| d.chars().take(300).collect::<String>());
    let transient = |last: String| Attempt::Transient {
        last,
        retry_after,
        response_lost: false,
    };

    if status.is_success() && error_code.is_none() {
        return Attempt::Done(match fields {
            Some(fields)
                if fields
                    .get("access_token")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty()) =>
            {
                Ok(fields)
            }
            Some(_) => Err(RefreshError::InvalidResponse(
                "it has no `access_token`".into(),
            )),
            None => Err(RefreshError::InvalidResponse(
                "it is neither JSON nor form-encoded".into(),
            )),
        });
    }
    match error_code.as_deref() {
        Some(code) if PERMANENT_GRANT_ERRORS.contains(&code) => {
            Attempt::Done(Err(RefreshError::ReauthorizationRequired {
                error: code.to_owned(),
                description,
                after_lost_response: false,
            }))
        }
        Some(code @ ("temporarily_unavailable" | "server_error")) => {
            transient(format!("HTTP {} {code}", status.as_u16()))
        }
        _ if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT =>
        {
            transient(format!("HTTP {}", status.as_u16()))
        }
        // A bare 401 from the token endpoint means it does not accept the client.
        None if status == StatusCode::UNAUTHORIZED => {
            Attempt::Done(Err(RefreshError::ReauthorizationRequired {
                error: "invalid_client".into(),
                description: Some("HTTP 401 without an error body".into()),
                after_lost_response: false,
            }))
        }
        code => Attempt::Done(Err(RefreshError::Refused {
            status: status.as_u16(),
            error: code
                .map(str::to_owned)
                .unwrap_or_else(|| "no error code in the response".into()),
            description,
        })),
    }
}

/// The endpoint's own words (its error code and `error_description`), which end up in error
/// events, logs and reasons, with the secrets of the request taken out: an endpoint that
/// echoes its form would otherwise quote the refresh token and the client secret.
fn without_secrets(attempt: Attempt, redactor: &Redactor) -> Attempt {
    let clean = |description: Option<String>| description.map(|d| redactor.redact(&d));
    match attempt {
        Attempt::Done(Err(RefreshError::ReauthorizationRequired {
            error,
            description,
            after_lost_response,
        })) => Attempt::Done(Err(RefreshError::ReauthorizationRequired {
            error: redactor.redact(&error),
            description: clean(description),
            after_lost_response,
        })),
        Attempt::Done(Err(RefreshError::Refused {
            status,
            error,
            description,
        })) => Attempt::Done(Err(RefreshError::Refused {
            status,
            error: redactor.redact(&error),
            description: clean(description),
        })),
        other => other,
    }
}

/// `Retry-After` as seconds (dates are rare on token endpoints and are ignored).
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    value?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The causes only: the error's own text quotes the URL.
    std::iter::once(kind.to_owned())
        .chain(error_chain(error).skip(1).map(ToString::to_string))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn done(attempt: Attempt) -> Result<Map<String, Value>, RefreshError> {
        match attempt {
            Attempt::Done(result) => result,
            Attempt::Transient { last, .. } => panic!("transient: {last}"),
        }
    }

    fn fields(value: Value) -> Option<Map<String, Value>> {
        value.as_object().cloned()
    }

    #[test]
    fn an_endpoint_echoing_its_form_has_the_refresh_token_and_client_secret_taken_out() {
        let redactor = Redactor::new()
            .with_secret("rt-s3cret/1")
            .with_secret("cs-s3cret");
        for (status, code) in [(400, "invalid_grant"), (400, "invalid_request")] {
            let attempt = classify(
                StatusCode::from_u16(status).unwrap(),
                fields(json!({"error": code, "error_description":
                    "got grant_type=refresh_token&refresh_token=rt-s3cret%2F1&client_secret=cs-s3cret"})),
                None,
            );
            let error = done(without_secrets(attempt, &redactor)).unwrap_err();
            let printed = format!("{error} {error:?}");
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(
                printed.contains("refresh_token=[redacted]&client_secret=[redacted]"),
                "{printed}"
            );
        }
    }

    #[test]
    fn permanent_grant_errors_require_reauthorisation() {
        for code in PERMANENT_GRANT_ERRORS {
            let error = done(classify(
                StatusCode::BAD_REQUEST,
                fields(json!({"error": code, "error_description": "revoked"})),
                None,
            ))
            .unwrap_err();
            assert!(error.is_reauthorization_required(), "{code}");
            assert!(error.to_string().contains(code) && error.to_string().contains("revoked"));
        }
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        for status in [500, 502, 503, 429, 408] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify(status, None, None), Attempt::Transient { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn other_client_errors_are_refused_without_retry() {
        let error = done(classify(
            StatusCode::BAD_REQUEST,
            fields(json!({"error": "invalid_scope"})),
            None,
        ))
        .unwrap_err();
        assert!(matches!(error, RefreshError::Refused { status: 400, .. }));
        assert!(!error.is_retryable() && !error.is_reauthorization_required());
    }

    #[test]
    fn success_without_access_token_is_invalid() {
        let error = done(classify(
            StatusCode::OK,
            fields(json!({"token_type": "bearer"})),
            None,
        ))
        .unwrap_err();
        assert!(matches!(error, RefreshError::InvalidResponse(_)));
    }

    #[test]
    fn form_encoded_responses_are_read() {
        let parsed = parse_body(b"access_token=abc&expires_in=60&scope=a+b", true).unwrap();
        assert_eq!(
            Value::Object(parsed),
            json!({"access_token": "abc", "expires_in": 60, "scope": "a b"})
        );
        assert!(parse_body(b"<html>oops</html>", false).is_none());
    }

    #[test]
    fn backoff_grows_honours_retry_after_and_stays_capped() {
        let policy = RetryPolicy::default();
        let first = policy.backoff(1, None);
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&first),
            "{first:?}"
        );
        let fourth = policy.backoff(4, None);
        assert!(
            (Duration::from_millis(800)..=Duration::from_millis(1600)).contains(&fourth),
            "{fourth:?}"
        );
        assert_eq!(policy.backoff(40, None), policy.max_backoff);
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(3600))),
            policy.max_backoff
        );
    }

    #[test]
    fn the_outage_wait_defaults_to_ten_minutes_and_reads_whole_seconds() {
        assert_eq!(outage_wait_from_env(None), Duration::from_secs(600));
        assert_eq!(outage_wait_from_env(Some(" 5 ")), Duration::from_secs(5));
        assert_eq!(outage_wait_from_env(Some("5m")), DEFAULT_OUTAGE_WAIT);
    }
}
