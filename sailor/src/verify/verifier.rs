//! The [`Verifier`] trait a component implements to check credentials its own way, and the
//! default, [`OAuth2Verifier`].
//!
//! elastic.io calls a component's `verifyCredentials` when a user connects an account. An
//! OAuth2 component rarely needs more than the default: one authenticated `GET verify_path`,
//! refreshing the token set on 401 as any flow would. A component with another kind of
//! credential (an API key, basic auth) implements [`Verifier`] and hands it to the entry
//! point.

use async_trait::async_trait;
use serde_json::Value;

use crate::config::StepConfig;
use crate::verify::check::{Verification, VerifyOptions, verify_credentials};
use crate::verify::input::{self, ConfigError};

/// Decides whether the credential in a config works.
///
/// ```
/// use sailor::prelude::*;
/// use sailor::verify::ConfigError;
///
/// /// Accepts any config with a non-empty `api_key`.
/// struct ApiKeyPresent;
///
/// #[async_trait]
/// impl Verifier for ApiKeyPresent {
///     async fn verify(&self, config: &StepConfig, _: &VerifyOptions) -> Verification {
///         match config.str_field("api_key") {
///             Some(key) if !key.is_empty() => Verification::verified(),
///             _ => Verification::not_verified("Enter the API key of your account."),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Verifier: Send + Sync + 'static {
    /// Checks the config's shape before the check, naming the field that is wrong. The
    /// default only requires what every step config must be.
    fn parse_config(&self, value: Value) -> Result<StepConfig, ConfigError> {
        input::parse_step_config(value)
    }

    /// Checks the credential. Every failure, network errors included, is an answer with a
    /// reason the user can act on, never an error. The runtime bounds the call by
    /// `options.timeout`; an OAuth2 refresh during the check should send its keys through
    /// `options.keys_sink`, as [`OAuth2Verifier`] does.
    async fn verify(&self, config: &StepConfig, options: &VerifyOptions) -> Verification;
}

/// The default check: `GET verify_path` (default `/me`) under `api_base_url` with the config's
/// token set, through the same authenticated client as every trigger, so an expired token is
/// refreshed once, its keys published, and the call replayed (DESIGN.md section 5).
#[derive(Clone, Copy, Debug, Default)]
pub struct OAuth2Verifier;

#[async_trait]
impl Verifier for OAuth2Verifier {
    fn parse_config(&self, value: Value) -> Result<StepConfig, ConfigError> {
        input::parse_config(value)
    }

    async fn verify(&self, config: &StepConfig, options: &VerifyOptions) -> Verification {
        verify_credentials(config, options).await
    }
}
