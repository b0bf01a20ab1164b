//! The desk's API: where it is, the API key it takes, and what its answers mean.

use sailor::prelude::*;
use sailor::reqwest::{RequestBuilder, Response};

/// The header the desk reads the API key from.
pub const API_KEY_HEADER: &str = "X-Api-Key";

/// The desk's URL and key, from the step config.
#[derive(Clone)]
pub struct Desk {
    url: String,
    api_key: String,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Desk")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// Reads `desk_url` and `api_key`; a missing one is a configuration error naming it.
    pub fn from_config(config: &StepConfig) -> Result<Self, ProcessError> {
        let field = |name: &str| {
            config
                .str_field(name)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ProcessError::Config(format!("`{name}` is missing")))
        };
        Ok(Self {
            url: field("desk_url")?.trim_end_matches('/').to_owned(),
            api_key: field("api_key")?,
        })
    }

    /// A request to `path` under the desk's URL, carrying the key, sent by `client` (in a
    /// function, the step's: [`Context::client`]).
    pub fn request(
        &self,
        client: &sailor::reqwest::Client,
        method: Method,
        path: &str,
    ) -> RequestBuilder {
        client
            .request(method, format!("{}{path}", self.url))
            .header(API_KEY_HEADER, &self.api_key)
    }

    /// Sends the request and reads a JSON answer; a rejected key and any other failure are
    /// errors with names of their own.
    pub async fn send(&self, request: RequestBuilder) -> Result<Value, ProcessError> {
        let response = request.send().await.map_err(ProcessError::Response)?;
        check(response).await
    }
}

/// The answer's JSON body, or the error its status means.
async fn check(response: Response) -> Result<Value, ProcessError> {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(ProcessError::named(
            "InvalidApiKey",
            format!("the desk refused the API key (HTTP {})", status.as_u16()),
        ));
    }
    if !status.is_success() {
        return Err(ProcessError::Api {
            status: status.as_u16(),
            excerpt: String::new(),
        });
    }
    response.json().await.map_err(ProcessError::Response)
}
