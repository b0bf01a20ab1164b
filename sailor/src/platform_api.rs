//! The platform API's client: basic auth with `ELASTICIO_API_USERNAME`/`ELASTICIO_API_KEY`,
//! and patience: a 5xx, 408 or 429 answer or a network failure is asked again,
//! `ELASTICIO_API_REQUEST_RETRY_ATTEMPTS` requests in all, the first wait
//! `ELASTICIO_API_REQUEST_RETRY_DELAY`, doubling up to [`MAX_RETRY_DELAY`]; any other answer
//! is the caller's to judge.
//!
//! The step definition ([`crate::platform`]), the startup hook's data ([`crate::hooks`]) and
//! rotated keys ([`crate::platform_keys`]) go through it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::http::{BodyCap, read_capped};
use crate::settings::PlatformApi;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two requests.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// An answer that was not a 5xx.
#[derive(Debug)]
pub struct ApiAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its body, read up to the caller's cap.
    pub body: Vec<u8>,
}

/// Why the platform API gave no answer to judge.
#[derive(Debug, thiserror::Error)]
pub enum PlatformApiError {
    /// Every attempt failed with a 5xx or a network error.
    #[error("{method} {path}: {failure} (after {attempts} attempt(s))")]
    Failed {
        /// The request's method.
        method: Method,
        /// The path asked for (the API's address and credentials are not quoted).
        path: String,
        /// The last failure.
        failure: String,
        /// Requests made.
        attempts: u32,
    },
    /// The answer's body could not be read.
    #[error("{method} {path}: the answer could not be read: {problem}")]
    Body {
        /// The request's method.
        method: Method,
        /// The path asked for.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

/// A status worth asking again for: the API is failing or busy, not refusing.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

impl PlatformApi {
    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_uri.trim_end_matches('/'))
    }

    /// Sends `method path` with `body` as JSON, asking again while the API answers 5xx or
    /// cannot be reached; reads the answer's body up to `cap`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        cap: BodyCap,
    ) -> Result<ApiAnswer, PlatformApiError> {
        let client = crate::http::tls::client_builder()
            .build()
            .unwrap_or_default();
        let url = self.url(path);
        let mut attempt = 1;
        let mut delay = self.retry.delay;
        let response = loop {
            let mut request = client
                .request(method.clone(), &url)
                .basic_auth(&self.username, Some(self.key.expose_secret()))
                .header("Accept", "application/json")
                .header("Connection", "Keep-Alive")
                .timeout(REQUEST_TIMEOUT);
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) if !is_transient(response.status()) => break response,
                Ok(response) => format!("HTTP {}", response.status()),
                Err(error) => crate::event::innermost(&error.without_url()),
            };
            if attempt >= self.retry.attempts {
                return Err(PlatformApiError::Failed {
                    method,
                    path: path.to_owned(),
                    failure,
                    attempts: attempt,
                });
            }
            tracing::warn!(
                message = "The platform API failed; asking again.",
                method = %method,
                path,
                attempt,
                error = %failure,
                retry_in_ms = delay.as_millis() as u64
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            attempt += 1;
        };
        let status = response.status();
        let body = read_capped(response, cap)
            .await
            .map_err(|error| PlatformApiError::Body {
                method,
                path: path.to_owned(),
                problem: error.to_string(),
            })?;
        Ok(ApiAnswer { status, body })
    }
}
