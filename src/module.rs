//! The extension point: the [`Trigger`] and [`Action`] traits and the [`Context`] they get.
//!
//! A module sees the message, the config, the snapshot and a context holding the emitter and
//! the authenticated HTTP client; never tokens, channels or acks. Returning `Err` makes the
//! runtime emit exactly one error event.

use async_trait::async_trait;
use serde_json::Value;

use crate::config::StepConfig;
use crate::emitter::{EmitError, Emitter};
use crate::http::{AuthClient, AuthError, BodyError, BodyTooLarge};
use crate::message::Message;
use crate::redact::Redactor;

/// Why a trigger or action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// A config field is missing or wrong.
    #[error("the step config is invalid: {0}")]
    Config(String),
    /// The incoming message cannot be processed.
    #[error("the input message is invalid: {0}")]
    Input(String),
    /// The authenticated call failed (token refresh, transport, rejection).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API answered with a status the module does not accept.
    #[error("the API answered HTTP {status}: {excerpt}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        excerpt: String,
    },
    /// The API's response could not be read.
    #[error("reading the API response failed")]
    Response(#[source] reqwest::Error),
    /// The API's response body is larger than the step's cap (`max_response_bytes`). It was
    /// read no further than the cap; the same call would get the same answer, so the message
    /// fails rather than being retried.
    #[error("the API answered HTTP {status} with a body too large to read")]
    ResponseTooLarge {
        /// HTTP status.
        status: u16,
        /// The cap it passed.
        #[source]
        source: BodyTooLarge,
    },
    /// An event could not be emitted.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

impl ProcessError {
    /// The error's name in the error event, for the platform's error store.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Config(_) => "ConfigurationError",
            Self::Input(_) => "InvalidInput",
            Self::Auth(error) if error.is_reauthorization_required() => "ReauthorizationRequired",
            Self::Auth(_) => "AuthenticatedRequestError",
            Self::Api { .. } => "ApiError",
            Self::Response(_) => "ResponseError",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Emit(_) => "EmitError",
        }
    }

    /// The error for a body of an answer with `status` that [`crate::http::read_capped`]
    /// could not read.
    pub fn reading_body(status: u16, error: BodyError) -> Self {
        match error {
            BodyError::TooLarge(source) => Self::ResponseTooLarge { status, source },
            BodyError::Read(error) => Self::Response(error),
        }
    }
}

/// What a module may use while processing one message.
#[derive(Clone, Debug)]
pub struct Context {
    emitter: Emitter,
    http: Option<AuthClient>,
    redactor: Redactor,
}

impl Context {
    /// A context with the given emitter and, when the config holds a token set, client.
    pub fn new(emitter: Emitter, http: Option<AuthClient>) -> Self {
        Self {
            emitter,
            http,
            redactor: Redactor::new(),
        }
    }

    /// The same context, quoting API bodies through `redactor`.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Takes the account's secrets out of API bodies a module quotes in errors or logs
    /// (see [`crate::template::excerpt`]).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Where events go.
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// The authenticated client; an error when the config has no `oauth` token set.
    pub fn http(&self) -> Result<&AuthClient, ProcessError> {
        self.http
            .as_ref()
            .ok_or(ProcessError::Auth(AuthError::NoTokenSet))
    }
}

/// A trigger: starts a flow (e.g. polls an API on the platform's schedule).
#[async_trait]
pub trait Trigger: Send + Sync + 'static {
    /// Processes one message; emits data and snapshot events through `ctx`.
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError>;
}

/// An action: does something with each message of a flow.
#[async_trait]
pub trait Action: Send + Sync + 'static {
    /// Processes one message; emits data (or rebound) events through `ctx`.
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError>;
}
