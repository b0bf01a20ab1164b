//! `ELASTICIO_POST_RESULT_URL`: where elastic.io's service mode expects the answer.
//!
//! As in sailor-nodejs (`lib/service.js`), `user:pass@` in the URL becomes basic auth and is
//! removed from the URL before sending. The password is a secret: it is never logged, and
//! errors name the host only.

use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use url::Url;

use crate::event::innermost;
use crate::secret::Password;

/// The env var naming the result URL.
pub const POST_RESULT_URL_ENV: &str = "ELASTICIO_POST_RESULT_URL";

/// Why the result could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The URL is not usable. The URL itself is not quoted, since it may hold a password.
    #[error("{POST_RESULT_URL_ENV} is not a valid http or https URL")]
    InvalidUrl,
    /// The request could not be sent or got no answer.
    #[error("POST to {host} failed: {cause}")]
    Transport {
        /// The result URL's host.
        host: String,
        /// The deepest cause.
        cause: String,
    },
    /// The platform answered with a non-2xx status.
    #[error("POST to {host} was answered with HTTP {status}")]
    Rejected {
        /// The result URL's host.
        host: String,
        /// The status.
        status: u16,
    },
}

/// The result URL with its credentials taken out.
#[derive(Clone)]
pub struct ResultUrl {
    url: Url,
    username: Option<String>,
    password: Option<Password>,
}

impl std::fmt::Debug for ResultUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultUrl")
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl ResultUrl {
    /// Parses the URL and moves `user:pass@` out of it into basic-auth credentials.
    pub fn parse(text: &str) -> Result<Self, PostError> {
        let mut url = Url::parse(text.trim()).map_err(|_| PostError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(PostError::InvalidUrl);
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let username = Some(decode(url.username())).filter(|u| !u.is_empty());
        let password = url.password().map(|p| Password::new(decode(p)));
        url.set_username("").map_err(|()| PostError::InvalidUrl)?;
        url.set_password(None).map_err(|()| PostError::InvalidUrl)?;
        Ok(Self {
            url,
            username,
            password,
        })
    }

    /// The URL the result goes to, without credentials.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// True when the URL carried credentials for basic auth.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() || self.password.is_some()
    }

    /// POSTs `body` as JSON; any 2xx counts as delivered.
    pub async fn post(&self, body: &Value, timeout: Duration) -> Result<(), PostError> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let http = crate::http::tls::client_builder()
            // Following a redirect could carry the credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|error| PostError::Transport {
                host: host.clone(),
                cause: innermost(&error),
            })?;
        let mut request = http.post(self.url.clone()).json(body);
        if self.has_credentials() {
            request = request.basic_auth(
                self.username.as_deref().unwrap_or_default(),
                self.password.as_ref().map(Password::expose_secret),
            );
        }
        let response = request.send().await.map_err(|error| PostError::Transport {
            host: host.clone(),
            cause: innermost(&error.without_url()),
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(PostError::Rejected {
                host,
                status: status.as_u16(),
            });
        }
        tracing::info!(message = "Result posted.", host = %host, status = status.as_u16());
        Ok(())
    }
}

/// The body elastic.io's service mode expects when the input itself was unusable:
/// `{"status":"error","data":{"message":...}}` (sailor-nodejs `lib/service.js`).
pub fn service_error(message: &str) -> Value {
    json!({"status": "error", "data": {"message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_move_from_the_url_to_basic_auth() {
        let url = ResultUrl::parse("http://task%2D1:p%40ss@127.0.0.1:8080/results?x=1").unwrap();
        assert_eq!(url.url().as_str(), "http://127.0.0.1:8080/results?x=1");
        assert_eq!(url.username.as_deref(), Some("task-1"));
        assert_eq!(url.password.as_ref().unwrap().expose_secret(), "p@ss");
    }

    #[test]
    fn a_url_without_credentials_sends_no_basic_auth() {
        let url = ResultUrl::parse("https://platform.example/r").unwrap();
        assert!(!url.has_credentials());
    }

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let url = ResultUrl::parse("http://u:hunter2@platform.example/r").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
        let error = ResultUrl::parse("ftp://u:hunter2@platform.example/r").unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn input_errors_have_the_service_error_shape() {
        assert_eq!(
            service_error("bad").to_string(),
            r#"{"status":"error","data":{"message":"bad"}}"#
        );
    }
}
