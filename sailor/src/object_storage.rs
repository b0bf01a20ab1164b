//! elastic.io's object storage (maester), where message bodies too large for the broker live:
//! the client sailor-nodejs 2.7.8 uses (`@elastic.io/maester-client` 6), on the same wire.
//!
//! - `POST {uri}/objects` stores a body and answers `{"objectId": ...}`; `GET
//!   {uri}/objects/{id}` reads it back.
//! - Every request carries `Authorization: Bearer {ELASTICIO_OBJECT_STORAGE_TOKEN}` (the token
//!   as given: sailor-nodejs passes it as a ready token, never signs a JWT with it) and
//!   `x-request-id: f:{flow};s:{step};m:`.
//! - What is stored is the body's JSON text encrypted with the message cipher (AES-256-CBC,
//!   the worker's key and IV), raw bytes: no base64, no compression, as sailor-nodejs pipes
//!   `Readable.from(JSON.stringify(body))` through `createCipheriv`. Uploads are sent as
//!   `application/json`, the type maester-client falls back to for bytes it cannot sniff.
//! - 5xx answers and network failures are retried twice, 100 ms then 200 ms apart, each
//!   request bounded by 10 s (maester-client's defaults); any other failure is final.
//! - A stored body is read under a byte cap (`COMPONENT_OBJECT_STORAGE_MAX_BYTES`) through
//!   [`crate::http::read_capped`].

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::crypto::MessageCipher;
use crate::http::{BodyCap, BodyError, read_capped, without_url_secrets};
use crate::secret::Password;
use crate::settings::{Identity, ObjectStorageSettings};

/// Retries of a request that failed with a 5xx or on the network (maester-client's 2).
pub const RETRIES: u32 = 2;
/// The wait before the first retry; it doubles for each next one (maester-client's 100 ms).
pub const RETRY_DELAY: Duration = Duration::from_millis(100);
/// The bound on one request (maester-client's 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Object storage is needed but its variables do not make a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {problem}")]
pub struct NotConfigured {
    /// The variable to set, e.g. `ELASTICIO_OBJECT_STORAGE_URI`.
    pub variable: &'static str,
    /// What is wrong with it: "is not set", "is not an http(s) URL".
    pub problem: &'static str,
}

const URI: &str = "ELASTICIO_OBJECT_STORAGE_URI";
const NOT_A_URL: NotConfigured = NotConfigured {
    variable: URI,
    problem: "is not an http(s) URL",
};

/// Why a body could not be stored or read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectStorageError {
    /// The object storage variables are incomplete.
    #[error(transparent)]
    NotConfigured(#[from] NotConfigured),
    /// The service answered with an error status.
    #[error("object storage answered HTTP {status} to {method} {path}")]
    Status {
        /// The answer's status.
        status: u16,
        /// `GET` or `POST`.
        method: Method,
        /// `/objects` or `/objects/{id}`.
        path: String,
    },
    /// The service could not be reached, or the connection broke.
    #[error("object storage could not be reached")]
    Transport(#[source] reqwest::Error),
    /// A stored body is larger than the cap, or could not be read.
    #[error("the stored body could not be read")]
    Body(#[source] BodyError),
    /// The stored bytes do not decrypt with this worker's key and IV.
    #[error("the stored body does not decrypt (wrong password or IV, or a damaged object)")]
    Decrypt,
    /// The stored bytes decrypt, but not to JSON.
    #[error("the stored body is not JSON")]
    NotJson,
    /// A stored body's answer names no `objectId`.
    #[error("object storage stored the body but its answer names no objectId")]
    NoObjectId,
}

impl ObjectStorageError {
    /// Whether the same request may succeed later: a 5xx or a network failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Transport(_) => true,
            _ => false,
        }
    }
}

/// The client of one worker. `Debug` leaves the token out.
#[derive(Clone)]
pub struct ObjectStorage {
    base: url::Url,
    token: Password,
    cipher: MessageCipher,
    request_id: String,
    cap: BodyCap,
    http: reqwest::Client,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// The client `settings` describe, encrypting with `cipher`; an error names the first
    /// missing variable.
    pub fn new(
        settings: &ObjectStorageSettings,
        cipher: MessageCipher,
        identity: &Identity,
    ) -> Result<Self, NotConfigured> {
        let uri = settings.uri.as_deref().ok_or(NotConfigured {
            variable: URI,
            problem: "is not set",
        })?;
        let token = settings.token.clone().ok_or(NotConfigured {
            variable: "ELASTICIO_OBJECT_STORAGE_TOKEN",
            problem: "is not set",
        })?;
        let mut base = url::Url::parse(uri).map_err(|_| NOT_A_URL)?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(NOT_A_URL);
        }
        // `{uri}/objects` whether or not the URI ends in a slash, as axios joins them.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = crate::http::tls::client_builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("component/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Ok(Self {
            base,
            token,
            cipher,
            request_id: format!("f:{};s:{};m:", identity.flow_id, identity.step_id),
            cap: BodyCap::new(
                settings.max_bytes,
                "set by COMPONENT_OBJECT_STORAGE_MAX_BYTES",
            ),
            http,
        })
    }

    /// Stores `json` (a body's JSON text), encrypted, and returns its object id.
    pub async fn add(&self, json: &[u8]) -> Result<String, ObjectStorageError> {
        let encrypted = self.cipher.encrypt(json);
        let response = self.send(Method::POST, "objects", Some(encrypted)).await?;
        let answer = read_capped(
            response,
            BodyCap::new(64 * 1024, "for object storage answers"),
        )
        .await
        .map_err(ObjectStorageError::Body)?;
        serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|answer| match &answer["objectId"] {
                Value::String(id) if !id.is_empty() => Some(id.clone()),
                _ => None,
            })
            .ok_or(ObjectStorageError::NoObjectId)
    }

    /// Reads the body stored as `id` back, decrypted and parsed.
    pub async fn get(&self, id: &str) -> Result<Value, ObjectStorageError> {
        let path = format!(
            "objects/{}",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        let response = self.send(Method::GET, &path, None).await?;
        let encrypted = read_capped(response, self.cap)
            .await
            .map_err(ObjectStorageError::Body)?;
        let plain = self
            .cipher
            .decrypt(&encrypted)
            .map_err(|_| ObjectStorageError::Decrypt)?;
        serde_json::from_slice(&plain).map_err(|_| ObjectStorageError::NotJson)
    }

    /// One request, retried while it fails with a 5xx or on the network; a successful
    /// answer's body is left to the caller.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, ObjectStorageError> {
        let url = self.base.join(path).map_err(|_| NOT_A_URL)?;
        let mut retry = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.token.expose_secret())
                .header("x-request-id", &self.request_id);
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let error = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => ObjectStorageError::Status {
                    status: response.status().as_u16(),
                    method: method.clone(),
                    path: format!("/{path}"),
                },
                Err(error) => ObjectStorageError::Transport(without_url_secrets(error)),
            };
            if !error.is_retryable() || retry >= RETRIES {
                return Err(error);
            }
            let delay = RETRY_DELAY * 2u32.pow(retry);
            tracing::warn!(message = "Object storage request failed; retrying.", %error, retry_in_ms = delay.as_millis() as u64);
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}
