//! The check itself: `GET verify_path` through the authenticated client, and a reason the user
//! can act on when it fails.
//!
//! The call goes through [`AuthClient`] like every trigger's, so an expired access token is
//! refreshed once and the call replayed once. The refresh emits `updateKeys`; a collecting sink
//! keeps those keys so the answer can carry the whole new token set in `updatedKeys`, and an
//! optional extra sink (the worker's AMQP publisher) receives them too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::ACCEPT;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use url::Url;

use crate::amqp::account_keys::{AccountKeys, AccountKeysConfig};
use crate::auth::{RefreshError, RetryPolicy, TokenCache};
use crate::clock::{self, Clock};
use crate::config::{RefreshMode, StepConfig};
use crate::emitter::{CollectingSink, EmitError, Emitter, EventSink};
use crate::event::{Event, Keys, innermost};
use crate::excerpt::{redacted_start, truncate};
use crate::http::{AuthClient, AuthError, BodyCap, BodyError, read_capped, strip_url_secrets};
use crate::redact::Redactor;

/// The config field naming the verification request's path.
pub const VERIFY_PATH_FIELD: &str = "verify_path";
/// The verification request's path when the config names none (DESIGN.md section 5).
pub const DEFAULT_VERIFY_PATH: &str = "/me";
/// How long the whole check may take before the answer is "not verified".
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an API error body quoted in a reason.
const EXCERPT_CHARS: usize = 200;
/// The most of an API error body read for that quote: the check needs the status and an
/// excerpt, never a whole body. A success's body is not read at all.
pub const ERROR_BODY_CAP: BodyCap = BodyCap::new(
    64 * 1024,
    "for an error body quoted in a verification reason (fixed)",
);

/// How long a refresh already sent to the token endpoint may still take after the timeout:
/// the provider may have rotated the refresh token, and the new one exists nowhere else.
pub const REFRESH_GRACE: Duration = Duration::from_secs(10);
/// How long the check waits out a failing token endpoint: a user connecting an account
/// wants an answer, not the worker's patience.
pub const TOKEN_OUTAGE_WAIT: Duration = Duration::from_secs(2);

/// The reason given when the config holds no token set.
pub const NO_TOKEN_SET_REASON: &str =
    "The config has no oauth token set: connect the account through its OAuth2 sign-in first.";

/// How the check runs.
#[derive(Clone)]
pub struct VerifyOptions {
    /// The whole check, refresh included, must finish within this.
    pub timeout: Duration,
    /// How a failing token endpoint is retried, and for how long (bounded by `timeout`
    /// anyway).
    pub retry: RetryPolicy,
    /// The clock deciding whether the token set has expired.
    pub clock: Arc<dyn Clock>,
    /// Also receives the `updateKeys` event of a refresh, e.g. the worker's AMQP publisher
    /// when the `ELASTICIO_AMQP_*` variables are set. A failure to publish there makes the
    /// answer "not verified", since the platform would not learn the rotated keys.
    pub keys_sink: Option<Arc<dyn EventSink>>,
    /// The account's keys on the broker, when the AMQP variables are set: the check starts
    /// from the newest keys any process published, and a refresh takes the account's lease
    /// and publishes to the others, so that a check never rotates the workers' keys away.
    pub account_keys: Option<AccountKeysConfig>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy {
                max_wait: TOKEN_OUTAGE_WAIT,
                ..RetryPolicy::default()
            },
            clock: clock::system(),
            keys_sink: None,
            account_keys: None,
        }
    }
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("keys_sink", &self.keys_sink.is_some())
            .field("account_keys", &self.account_keys.is_some())
            .finish_non_exhaustive()
    }
}

impl VerifyOptions {
    /// The same options with another overall timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same options, also sending refreshed keys to `sink`.
    pub fn with_keys_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.keys_sink = Some(sink);
        self
    }

    /// The same options, sharing the account's keys on the broker.
    pub fn with_account_keys(mut self, config: AccountKeysConfig) -> Self {
        self.account_keys = Some(config);
        self
    }
}

/// The answer: `{"verified":true}` or `{"verified":false,"reason":"..."}`, plus
/// `"updatedKeys":{...}` when the check refreshed the token set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verification {
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(
        rename = "updatedKeys",
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_keys"
    )]
    updated_keys: Option<Keys>,
}

fn expose_keys<S: Serializer>(keys: &Option<Keys>, s: S) -> Result<S::Ok, S::Error> {
    // The one place the check writes tokens out: `updatedKeys`, so the platform can store the
    // rotated token set, which exists nowhere else.
    match keys {
        Some(keys) => s.serialize_some(keys.expose_json()),
        None => s.serialize_none(),
    }
}

impl Verification {
    /// The credential works.
    pub fn verified() -> Self {
        Self {
            verified: true,
            reason: None,
            updated_keys: None,
        }
    }

    /// The credential does not work, and why.
    pub fn not_verified(reason: impl Into<String>) -> Self {
        Self {
            verified: false,
            reason: Some(reason.into()),
            updated_keys: None,
        }
    }

    /// True when the credential works.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// Why not, in words for the user.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The keys a refresh produced during the check (`{"oauth": <token set>}`).
    pub fn updated_keys(&self) -> Option<&Keys> {
        self.updated_keys.as_ref()
    }

    /// The answer as printed on stdout, `updatedKeys` (with its tokens) included.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({"verified": self.verified}))
    }

    /// The body POSTed to `ELASTICIO_POST_RESULT_URL`, in elastic.io's service-mode shape:
    /// `{"status":"success","data":{"verified":...,"reason"?:...}}`. No keys.
    pub fn service_result(&self) -> Value {
        let mut data = json!({"verified": self.verified});
        if let Some(reason) = &self.reason {
            data["reason"] = json!(reason);
        }
        json!({"status": "success", "data": data})
    }
}

/// Keeps every `updateKeys` for the answer, then forwards it to the extra sink, if any.
struct KeysSink {
    collected: CollectingSink,
    forward: Option<Arc<dyn EventSink>>,
}

#[async_trait]
impl EventSink for KeysSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        self.collected.publish(event.clone()).await?;
        match &self.forward {
            Some(forward) => forward.publish(event).await,
            None => Ok(()),
        }
    }
}

/// The path the check calls: `cfg.verify_path`, else [`DEFAULT_VERIFY_PATH`].
pub fn verify_path(config: &StepConfig) -> &str {
    config
        .str_field(VERIFY_PATH_FIELD)
        .unwrap_or(DEFAULT_VERIFY_PATH)
}

/// Checks the credential in `config`: `GET verify_path` with its token set, refreshing on 401
/// (or before the call when the token set says it has expired). Every failure, network errors
/// and the timeout included, is an answer with a reason, never an error.
pub async fn verify_credentials(config: &StepConfig, options: &VerifyOptions) -> Verification {
    let Some(cache) = TokenCache::from_config(config, options.retry.clone(), options.clock.clone())
    else {
        return Verification::not_verified(NO_TOKEN_SET_REASON);
    };
    let shared = match &options.account_keys {
        None => None,
        Some(keys) => {
            let started = tokio::time::timeout(
                options.timeout,
                AccountKeys::start(keys.clone(), cache.clone()),
            )
            .await;
            match started {
                Ok(Ok(shared)) => Some(shared),
                Ok(Err(error)) => {
                    tracing::warn!(message = "The account's keys on the broker are not available; checking with the config's.", %error);
                    None
                }
                Err(_) => {
                    tracing::warn!(
                        message = "The account's keys on the broker did not answer in time; checking with the config's."
                    );
                    None
                }
            }
        }
    };
    let verification = check_with(config, options, cache).await;
    if let Some(shared) = shared {
        shared.close().await;
    }
    verification
}

/// The check itself, with the account's token cache.
async fn check_with(
    config: &StepConfig,
    options: &VerifyOptions,
    cache: TokenCache,
) -> Verification {
    let collected = CollectingSink::new();
    let emitter = Emitter::new(Arc::new(KeysSink {
        collected: collected.clone(),
        forward: options.keys_sink.clone(),
    }));
    // No per-request timeout: `options.timeout` bounds the whole check, refresh included.
    let http = match crate::http::tls::client_builder().build() {
        Ok(http) => http,
        Err(error) => {
            return Verification::not_verified(format!(
                "The HTTP client could not be set up ({}).",
                innermost(&error)
            ));
        }
    };
    let base_url = config
        .api_base_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok());
    let client = AuthClient::new(http, cache.clone(), emitter, base_url);
    let redactor = Redactor::for_step(config, Some(cache.clone()));
    let path = verify_path(config);
    let due_before_call = config.refresh == RefreshMode::EveryCall
        || cache
            .current()
            .tokens
            .is_expired(options.clock.now_unix(), config.expiry_skew_s);

    let outcome = tokio::time::timeout(options.timeout, call(&client, path, &redactor)).await;
    let mut verification = match outcome {
        Ok(Ok(())) => Verification::verified(),
        Ok(Err(failure)) => Verification::not_verified(failure.reason(due_before_call)),
        Err(_elapsed) => {
            if tokio::time::timeout(REFRESH_GRACE, cache.wait_for_refresh())
                .await
                .is_err()
            {
                tracing::warn!(message = "A refresh was still running when the check gave up.");
            }
            Verification::not_verified(format!(
                "No answer within {}: the API or the token endpoint is too slow or unreachable. \
                 Try again later; if this persists, check `api_base_url` and `token_uri`.",
                seconds(options.timeout)
            ))
        }
    };
    // The reason is printed, logged and POSTed: no secret the account knows may be in it.
    verification.reason = verification.reason.map(|reason| redactor.redact(&reason));
    // A refresh that completed hands over its keys even when the check failed afterwards:
    // a rotated refresh token exists nowhere else.
    verification.updated_keys =
        collected
            .events()
            .into_iter()
            .rev()
            .find_map(|event| match event {
                Event::UpdateKeys(keys) => Some(keys),
                _ => None,
            });
    match &verification.reason {
        None => tracing::info!(
            message = "Credentials verified.",
            refreshed = verification.updated_keys.is_some()
        ),
        Some(reason) => tracing::warn!(message = "Credentials not verified.", %reason),
    }
    verification
}

/// Why the verification request failed.
enum Failure {
    Auth {
        url: String,
        error: AuthError,
    },
    Status {
        url: String,
        status: reqwest::StatusCode,
        excerpt: String,
    },
}

async fn call(client: &AuthClient, path: &str, redactor: &Redactor) -> Result<(), Failure> {
    let url = client
        .url(path)
        .map(|url| display_url(&url))
        .unwrap_or_else(|_| path.to_owned());
    let auth = |error| Failure::Auth {
        url: url.clone(),
        error,
    };
    let request = client
        .request(Method::GET, path)
        .map_err(auth)?
        .header(ACCEPT, "application/json");
    let response = client.send(request).await.map_err(auth)?;
    let status = response.status();
    tracing::debug!(
        message = "Verification request answered.",
        status = status.as_u16()
    );
    if status.is_success() {
        return Ok(());
    }
    let excerpt = match read_capped(response, ERROR_BODY_CAP).await {
        Ok(body) => excerpt(&String::from_utf8_lossy(&body), redactor),
        Err(BodyError::TooLarge(too_large)) => format!("(not quoted: {too_large})"),
        Err(BodyError::Read(_)) => String::new(),
    };
    Err(Failure::Status {
        url,
        status,
        excerpt,
    })
}

impl Failure {
    fn reason(&self, due_before_call: bool) -> String {
        match self {
            Self::Status {
                url,
                status,
                excerpt,
            } => status_reason(url, *status, excerpt),
            Self::Auth { url, error } => auth_reason(url, error, due_before_call),
        }
    }
}

fn status_reason(url: &str, status: reqwest::StatusCode, excerpt: &str) -> String {
    let code = status.as_u16();
    let label = match status.canonical_reason() {
        Some(phrase) => format!("HTTP {code} {phrase}"),
        None => format!("HTTP {code}"),
    };
    let advice = match code {
        403 => {
            " The token is valid but may not read this resource: check the scopes granted to the \
             account and `verify_path`."
        }
        404 => " Check `api_base_url` and `verify_path`.",
        429 => " The API is rate limiting; try again later.",
        500..=599 => " The credential could not be checked; try again later.",
        _ => " Check `api_base_url` and `verify_path`.",
    };
    let response = if excerpt.is_empty() {
        String::new()
    } else {
        format!(" Response: {excerpt}")
    };
    format!("The API answered {label} to GET {url}.{advice}{response}")
}

fn auth_reason(url: &str, error: &AuthError, due_before_call: bool) -> String {
    let lead = if due_before_call {
        "The access token has expired and could not be renewed"
    } else {
        "The access token was rejected and could not be renewed"
    };
    match error {
        AuthError::NoTokenSet => NO_TOKEN_SET_REASON.to_owned(),
        AuthError::Refresh(refresh) => refresh_reason(lead, refresh),
        AuthError::Unauthorized { status } => format!(
            "The API rejected the access token again after a successful refresh (HTTP {status} \
             to GET {url}): the account may lack access to this API. Re-authorise the account, \
             or check `api_base_url` and `verify_path`."
        ),
        AuthError::Transport(transport) if transport.is_timeout() => format!(
            "The API did not answer GET {url} in time. Try again later; if this persists, check \
             `api_base_url`."
        ),
        AuthError::Transport(transport) => format!(
            "The API could not be reached at GET {url} ({}). Check `api_base_url` and the \
             network, then try again.",
            innermost(transport)
        ),
        AuthError::InvalidUrl { path } => format!(
            "The verification URL is invalid: `{path}` is neither a URL nor a path under \
             `api_base_url`. Check `api_base_url` and `verify_path`."
        ),
        AuthError::InvalidRequest(request) => format!(
            "The verification request to {url} could not be built ({}). Check `api_base_url` \
             and `verify_path`.",
            innermost(request)
        ),
        other => format!("The verification request to {url} failed: {other}."),
    }
}

fn refresh_reason(lead: &str, error: &RefreshError) -> String {
    let described = |description: &Option<String>| {
        description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    };
    match error {
        RefreshError::ReauthorizationRequired {
            error,
            description,
            after_lost_response,
        } => {
            let lost = if *after_lost_response {
                " An earlier refresh whose answer was lost may have rotated the refresh token."
            } else {
                ""
            };
            format!(
                "{lead}: the token endpoint answered {error}{}. Re-authorise the account.{lost}",
                described(description)
            )
        }
        RefreshError::NoRefreshToken => {
            format!("{lead}: the token set has no refresh token. Re-authorise the account.")
        }
        RefreshError::Refused {
            status,
            error,
            description,
        } => format!(
            "{lead}: the token endpoint refused the refresh with HTTP {status} {error}{}. Check \
             the OAuth2 client settings (`client_id`, `client_secret`, `token_auth_method`, \
             `scope`).",
            described(description)
        ),
        RefreshError::Unavailable { attempts, last, .. } => format!(
            "{lead}: the token endpoint is unreachable or failing ({last}; {attempts} attempts). \
             Try again later; if this persists, check `token_uri`."
        ),
        RefreshError::InvalidResponse(problem) => format!(
            "{lead}: the token endpoint's answer is not a usable token set ({problem}). Check \
             `token_uri`."
        ),
        RefreshError::KeysNotPublished(problem) => format!(
            "The access token was renewed, but the new keys could not be published ({problem}). \
             Store the token set from `updatedKeys`, or the account stops working."
        ),
        RefreshError::NotConfigured(problem) => format!(
            "{lead}: {problem}. Add the OAuth2 client settings (`token_uri`, `client_id`, \
             `client_secret`)."
        ),
    }
}

/// A URL as shown to the user: no credentials, no query (either may hold a secret).
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    strip_url_secrets(&mut shown);
    shown.to_string()
}

/// A body as quoted in a reason: the account's secrets taken out (a gateway may echo the
/// Authorization header), whitespace collapsed, cut at [`EXCERPT_CHARS`].
fn excerpt(body: &str, redactor: &Redactor) -> String {
    let redacted = redacted_start(body, redactor);
    let collapsed = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, EXCERPT_CHARS)
}

fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_answer_is_just_verified_true() {
        assert_eq!(
            Verification::verified().to_json().to_string(),
            r#"{"verified":true}"#
        );
        assert_eq!(
            Verification::verified().service_result().to_string(),
            r#"{"status":"success","data":{"verified":true}}"#
        );
    }

    #[test]
    fn updated_keys_are_printed_but_never_posted_or_debugged() {
        let mut verification = Verification::not_verified("why");
        verification.updated_keys = Some(Keys::new(json!({"oauth": {"access_token": "at-1"}})));
        assert_eq!(
            verification.to_json().to_string(),
            r#"{"verified":false,"reason":"why","updatedKeys":{"oauth":{"access_token":"at-1"}}}"#
        );
        assert_eq!(
            verification.service_result().to_string(),
            r#"{"status":"success","data":{"verified":false,"reason":"why"}}"#
        );
        assert!(!format!("{verification:?}").contains("at-1"));
    }

    #[test]
    fn invalid_grant_asks_for_re_authorisation_and_quotes_the_provider() {
        let error = RefreshError::ReauthorizationRequired {
            error: "invalid_grant".into(),
            description: Some("the grant was revoked".into()),
            after_lost_response: false,
        };
        assert_eq!(
            refresh_reason(
                "The access token was rejected and could not be renewed",
                &error
            ),
            "The access token was rejected and could not be renewed: the token endpoint answered \
             invalid_grant (the grant was revoked). Re-authorise the account."
        );
    }

    #[test]
    fn an_expired_token_is_named_as_expired_rather_than_rejected() {
        let error = AuthError::Refresh(RefreshError::NoRefreshToken);
        assert_eq!(
            auth_reason("http://api.example/me", &error, true),
            "The access token has expired and could not be renewed: the token set has no \
             refresh token. Re-authorise the account."
        );
    }

    #[test]
    fn api_errors_name_the_status_and_the_request() {
        assert_eq!(
            status_reason(
                "http://api.example/me",
                reqwest::StatusCode::SERVICE_UNAVAILABLE,
                ""
            ),
            "The API answered HTTP 503 Service Unavailable to GET http://api.example/me. The \
             credential could not be checked; try again later."
        );
    }

    #[test]
    fn urls_in_reasons_lose_credentials_and_query() {
        let url = Url::parse("https://user:pw@api.example/v1/me?api_key=k#f").unwrap();
        assert_eq!(display_url(&url), "https://api.example/v1/me");
    }

    #[test]
    fn long_bodies_are_cut_and_whitespace_collapsed() {
        let body = format!("a\n\n b {}", "x".repeat(300));
        let cut = excerpt(&body, &Redactor::new());
        assert!(cut.starts_with("a b xxx"), "{cut}");
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn timeouts_are_shown_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }

    #[tokio::test]
    async fn a_config_without_a_token_set_is_not_verified() {
        let verification =
            verify_credentials(&StepConfig::default(), &VerifyOptions::default()).await;
        assert_eq!(verification.reason(), Some(NO_TOKEN_SET_REASON));
    }
}
