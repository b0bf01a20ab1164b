//! Why a token refresh failed, classified by what the caller should do next.

use std::time::Duration;

/// A failed refresh. Cloneable, because every caller waiting on one refresh gets its outcome.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshError {
    /// The provider refused the grant or the client for good (`invalid_grant`,
    /// `invalid_client`, `unauthorized_client`): the user must authorise the account again.
    #[error("re-authorisation required: the token endpoint answered {error}{}{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        if *after_lost_response { "; an earlier refresh whose answer was lost may have rotated the refresh token" } else { "" })]
    ReauthorizationRequired {
        /// The RFC 6749 section 5.2 error code.
        error: String,
        /// The provider's `error_description`.
        description: Option<String>,
        /// The refresh was retried after a response was lost, so the provider may have
        /// rotated the refresh token on the attempt whose answer never arrived.
        after_lost_response: bool,
    },
    /// The token set holds no refresh token, so an expired access token cannot be renewed.
    #[error("re-authorisation required: the token set has no refresh token")]
    NoRefreshToken,
    /// The token endpoint refused the request for another reason (`invalid_request`,
    /// `invalid_scope`, an unexpected 4xx): a configuration problem, not retried.
    #[error("the token endpoint refused the refresh with HTTP {status}: {error}{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code, or a summary when the body had none.
        error: String,
        /// The provider's `error_description`.
        description: Option<String>,
    },
    /// The token endpoint could not be reached or kept failing (5xx, 429, network).
    #[error("the token endpoint is unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// The wait the endpoint asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The token endpoint answered success with a body that is no token set.
    #[error("the token endpoint's response is not a usable token set: {0}")]
    InvalidResponse(String),
    /// The token was refreshed, but the `updateKeys` event carrying it could not be
    /// published; it is published again before the next call.
    #[error("the access token was refreshed but the new keys could not be published: {0}")]
    KeysNotPublished(String),
    /// The config lacks what a refresh needs.
    #[error("cannot refresh the access token: {0}")]
    NotConfigured(&'static str),
}

impl RefreshError {
    /// True when only a new authorisation by the user can fix it.
    pub fn is_reauthorization_required(&self) -> bool {
        matches!(
            self,
            Self::ReauthorizationRequired { .. } | Self::NoRefreshToken
        )
    }

    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::KeysNotPublished(_))
    }
}
