//! [`AuthClient`]: bearer injection, refresh on 401, one replay.
//!
//! The request is built and cloned *before* it is first sent, so a body that cannot be
//! replayed is refused up front rather than lost after a refresh. A 401 (or a 403/400 whose
//! `WWW-Authenticate` says `error="invalid_token"`) invalidates only the token generation the
//! request carried; the replay goes out once, and a second rejection is an error, not a loop.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use super::base_url::BaseUrl;
use crate::auth::{Lease, RefreshError, TokenCache};
use crate::emitter::Emitter;

/// Why an authenticated call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The step config has no `oauth` token set.
    #[error("the step config has no `oauth` token set")]
    NoTokenSet,
    /// The body is a stream, which could not be sent again after a refresh.
    #[error(
        "the request body cannot be replayed after a token refresh; send a buffered body instead"
    )]
    NotReplayable,
    /// The request could not be built (bad URL, header, body).
    #[error("the request is invalid")]
    InvalidRequest(#[source] reqwest::Error),
    /// The path could not be joined to `api_base_url`.
    #[error("`{path}` is not a valid URL, nor a path under `api_base_url`")]
    InvalidUrl {
        /// The path or URL given.
        path: String,
    },
    /// The access token could not be renewed.
    #[error("could not renew the access token")]
    Refresh(#[from] RefreshError),
    /// The API rejected the token again, after a refresh.
    #[error("the API rejected the access token again after a refresh (HTTP {status})")]
    Unauthorized {
        /// The second rejection's status.
        status: u16,
    },
    /// The API could not be reached or did not answer.
    #[error("the API request failed")]
    Transport(#[source] reqwest::Error),
}

impl AuthError {
    /// True when only a new authorisation by the user can fix it.
    pub fn is_reauthorization_required(&self) -> bool {
        matches!(self, Self::Refresh(error) if error.is_reauthorization_required())
    }

    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refresh(error) => error.is_retryable(),
            Self::Transport(error) => {
                error.is_timeout() || error.is_connect() || error.is_request()
            }
            _ => false,
        }
    }
}

/// Time allowed to open a connection to the API.
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one API request, so that a hung API cannot hold a message forever.
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The `reqwest` client behind [`AuthClient`]: connect and request timeouts, and a user agent
/// that names this runtime. Redirects keep reqwest's default, which drops the bearer token
/// when a redirect leaves the origin.
pub fn api_http_client() -> reqwest::Client {
    super::tls::client_builder()
        .connect_timeout(API_CONNECT_TIMEOUT)
        .timeout(API_REQUEST_TIMEOUT)
        .user_agent(concat!(
            "sailor-rs/",
            env!("CARGO_PKG_VERSION"),
            " (elastic.io-model runtime)"
        ))
        .build()
        .unwrap_or_default()
}

/// The HTTP client given to modules: every request carries the account's current access
/// token, and token expiry is handled here, invisibly to the module.
#[derive(Clone, Debug)]
pub struct AuthClient {
    http: reqwest::Client,
    cache: TokenCache,
    emitter: Emitter,
    base_url: Option<Arc<BaseUrl>>,
}

impl AuthClient {
    /// A client over the account's `cache`; `emitter` receives `updateKeys` after refreshes.
    pub fn new(
        http: reqwest::Client,
        cache: TokenCache,
        emitter: Emitter,
        base_url: Option<Url>,
    ) -> Self {
        Self::sharing_base(
            http,
            cache,
            emitter,
            base_url.map(|url| Arc::new(BaseUrl::new(url))),
        )
    }

    /// Like [`Self::new`], with a base URL shared by the clients of a step's messages.
    pub fn sharing_base(
        http: reqwest::Client,
        cache: TokenCache,
        emitter: Emitter,
        base_url: Option<Arc<BaseUrl>>,
    ) -> Self {
        Self {
            http,
            cache,
            emitter,
            base_url,
        }
    }

    /// The token cache behind this client.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// `api_base_url`, parsed.
    pub fn base_url(&self) -> Option<&Url> {
        self.base_url.as_deref().map(BaseUrl::url)
    }

    /// Starts a request to `url`, already resolved (by [`Self::url`]): not parsed again.
    pub fn request_url(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Resolves `path` against `api_base_url` (an absolute URL is taken as is).
    pub fn url(&self, path: &str) -> Result<Url, AuthError> {
        let invalid = || AuthError::InvalidUrl {
            path: path.to_owned(),
        };
        // Only a path with a scheme can be absolute; parsing the others would only fail.
        if path.contains(':')
            && let Ok(url) = Url::parse(path)
        {
            return Ok(url);
        }
        let base = self.base_url.as_ref().ok_or_else(invalid)?;
        base.resolve(path).ok_or_else(invalid)
    }

    /// Starts a request to `path` (relative to `api_base_url`, or absolute).
    pub fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, AuthError> {
        Ok(self.http.request(method, self.url(path)?))
    }

    /// Sends the request with the current access token; on a rejected token, refreshes
    /// (once for all concurrent callers) and replays the request exactly once.
    pub async fn send(&self, builder: RequestBuilder) -> Result<Response, AuthError> {
        let request = builder
            .build()
            .map_err(|error| AuthError::InvalidRequest(without_url_secrets(error)))?;
        let replay = request.try_clone().ok_or(AuthError::NotReplayable)?;

        let lease = self.cache.lease_for_call(&self.emitter).await?;
        let response = self.execute(request, &lease).await?;
        if !is_token_rejected(&response) {
            return Ok(response);
        }
        // Boxed: a rejected token is rare, and every call's future would otherwise carry a
        // refresh and a second request.
        Box::pin(self.replay_after_rejection(response, lease, replay)).await
    }

    /// The rest of [`Self::send`] after the API rejected the token of `lease`: refresh, then
    /// `replay` once with the new token.
    async fn replay_after_rejection(
        &self,
        response: Response,
        lease: Lease,
        replay: reqwest::Request,
    ) -> Result<Response, AuthError> {
        tracing::info!(
            message = "API rejected the access token; refreshing.",
            status = response.status().as_u16(),
            generation = lease.generation
        );
        let fresh = self
            .cache
            .refresh_after_rejection(&lease, &self.emitter)
            .await?;
        let response = self.execute(replay, &fresh).await?;
        if is_token_rejected(&response) {
            return Err(AuthError::Unauthorized {
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    async fn execute(
        &self,
        mut request: reqwest::Request,
        lease: &Lease,
    ) -> Result<Response, AuthError> {
        let bearer = lease.bearer().cloned().ok_or_else(|| {
            AuthError::Refresh(RefreshError::InvalidResponse(
                "the access token is not header-safe".into(),
            ))
        })?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
        self.http
            .execute(request)
            .await
            .map_err(|error| AuthError::Transport(without_url_secrets(error)))
    }
}

/// Removes from `url` what may hold a secret: user info, query (API keys) and fragment.
pub fn strip_url_secrets(url: &mut Url) {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
}

/// The error with the secrets taken out of the URL it quotes, since its `Display` ends up in
/// error events and logs.
pub fn without_url_secrets(mut error: reqwest::Error) -> reqwest::Error {
    if let Some(url) = error.url_mut() {
        strip_url_secrets(url);
    }
    error
}

/// 401, or 403/400 carrying `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 3.1).
pub fn is_token_rejected(response: &Response) -> bool {
    match response.status() {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(is_invalid_token_challenge),
        _ => false,
    }
}

/// True when a `WWW-Authenticate` value holds a Bearer challenge whose `error` parameter is
/// exactly `invalid_token`. One header may carry several challenges (`Basic realm="x",
/// Bearer error="invalid_token"`); the Bearer one's parameters run to the next scheme.
fn is_invalid_token_challenge(challenge: &str) -> bool {
    let lower = challenge.to_ascii_lowercase();
    let scheme_starts = lower
        .match_indices("bearer")
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = lower[..at].trim_end();
            let after = lower[at + "bearer".len()..].chars().next();
            (before.is_empty() || before.ends_with(','))
                && after.is_none_or(|c| c.is_whitespace() || c == ',')
        });
    scheme_starts.into_iter().any(|at| {
        let params = &lower[at + "bearer".len()..];
        let mut rest = params;
        while let Some(found) = rest.find("error=") {
            let before = rest[..found].trim_end();
            let value = &rest[found + "error=".len()..];
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split([',', ' ', '\t']).next().unwrap_or_default(),
            };
            if (before.is_empty() || before.ends_with(',')) && value == "invalid_token" {
                return true;
            }
            rest = &rest[found + "error=".len()..];
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenSet;
    use crate::config::RefreshMode;
    use crate::emitter::CollectingSink;
    use crate::event::ErrorReport;

    #[tokio::test]
    async fn a_transport_error_does_not_quote_the_query_or_credentials_of_the_url() {
        let tokens = TokenSet::from_stored(serde_json::json!({"access_token": "at"})).unwrap();
        let cache = TokenCache::new(
            tokens,
            Err(RefreshError::NotConfigured(
                "no token endpoint in this test",
            )),
            RefreshMode::On401,
            60,
            crate::clock::system(),
        );
        let emitter = Emitter::new(std::sync::Arc::new(CollectingSink::new()));
        let client = AuthClient::new(reqwest::Client::new(), cache, emitter, None);
        // Port 1 on loopback refuses the connection.
        let request = client
            .request(
                Method::GET,
                "http://user:pw-s3cret@127.0.0.1:1/items?api_key=k-s3cret",
            )
            .unwrap();
        let error = client.send(request).await.unwrap_err();
        assert!(matches!(error, AuthError::Transport(_)), "{error:?}");
        let report = ErrorReport::from_error("AuthenticatedRequestError", &error);
        for printed in [report.message, report.stack, format!("{error:?}")] {
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(printed.contains("127.0.0.1:1/items"), "{printed}");
        }
    }

    #[tokio::test]
    async fn only_failures_that_may_pass_are_retryable() {
        let unavailable = AuthError::Refresh(RefreshError::Unavailable {
            attempts: 3,
            last: "HTTP 503".into(),
            retry_after: None,
        });
        let refused = reqwest::Client::new()
            .get("http://127.0.0.1:1/")
            .send()
            .await
            .unwrap_err();
        assert!(unavailable.is_retryable());
        assert!(AuthError::Transport(refused).is_retryable());

        // An API that hangs up without answering, and one that stalls mid-body.
        let hangs_up = raw_server(b"").await;
        let lost = reqwest::get(format!("http://{hangs_up}/"))
            .await
            .unwrap_err();
        assert!(!lost.is_connect() && !lost.is_timeout(), "{lost:?}");
        assert!(AuthError::Transport(lost).is_retryable());
        let stalls = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").await;
        let stalled = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
            .get(format!("http://{stalls}/"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap_err();
        assert!(stalled.is_timeout() && !stalled.is_request(), "{stalled:?}");
        assert!(AuthError::Transport(stalled).is_retryable());

        let (addr, _) = serve_once("not json").await;
        let undecodable = reqwest::get(format!("http://{addr}/"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap_err();
        let permanent = [
            AuthError::NoTokenSet,
            AuthError::NotReplayable,
            AuthError::InvalidUrl { path: "x".into() },
            AuthError::Unauthorized { status: 401 },
            AuthError::Refresh(RefreshError::NoRefreshToken),
            AuthError::Refresh(RefreshError::NotConfigured("no token_uri")),
            AuthError::Transport(undecodable),
        ];
        for error in permanent {
            assert!(!error.is_retryable(), "{error:?}");
        }
    }

    /// A loopback TCP server that reads a request, writes `answer` and, when that is empty,
    /// hangs up; otherwise it keeps the connection open without another byte.
    async fn raw_server(answer: &'static [u8]) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    if answer.is_empty() {
                        return;
                    }
                    let _ = socket.write_all(answer).await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                });
            }
        });
        addr
    }

    /// A loopback server answering every request with `body`; the second value holds the
    /// `User-Agent` of the last request.
    async fn serve_once(
        body: &'static str,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Option<String>>>,
    ) {
        let agent = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = agent.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let agent = headers
                .get(reqwest::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            *seen.lock().unwrap() = agent;
            async move { body }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, agent)
    }

    #[tokio::test]
    async fn the_api_client_names_this_runtime_as_its_user_agent() {
        let (addr, agent) = serve_once("ok").await;
        api_http_client()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            agent.lock().unwrap().as_deref(),
            Some(concat!(
                "sailor-rs/",
                env!("CARGO_PKG_VERSION"),
                " (elastic.io-model runtime)"
            ))
        );
    }

    #[test]
    fn only_bearer_invalid_token_challenges_count() {
        assert!(is_invalid_token_challenge(
            r#"Bearer realm="api", error="invalid_token""#
        ));
        assert!(is_invalid_token_challenge("bearer error=invalid_token"));
        assert!(!is_invalid_token_challenge(
            r#"Bearer error="insufficient_scope""#
        ));
        assert!(!is_invalid_token_challenge(r#"Basic realm="x""#));
        assert!(is_invalid_token_challenge(
            r#"Basic realm="x", Bearer realm="api", error="invalid_token""#
        ));
        assert!(!is_invalid_token_challenge(
            r#"Bearer error="invalid_token_x""#
        ));
        assert!(!is_invalid_token_challenge("bearer error=invalid_token_x"));
        assert!(!is_invalid_token_challenge(
            r#"Bearer realm="api", suberror="invalid_token""#
        ));
        assert!(!is_invalid_token_challenge(
            r#"Bearerx error="invalid_token""#
        ));
        // Another scheme that merely contains or starts with "bearer" is not Bearer.
        assert!(!is_invalid_token_challenge(
            r#"Notbearer error="invalid_token""#
        ));
        assert!(!is_invalid_token_challenge(
            r#"Bearerish, error="invalid_token""#
        ));
    }
}
