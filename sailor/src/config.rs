//! The step config (`cfg`): what the platform hands each step.
//!
//! The runtime reads the OAuth2 fields named in DESIGN.md section 2; the component reads its
//! own fields from [`StepConfig::fields`]. Unknown fields are kept and passed through untouched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::token::{self, TokenSet};
use crate::secret::ClientSecret;

/// Seconds before expiry that count as expired, unless `expiry_skew_s` says otherwise.
pub const DEFAULT_EXPIRY_SKEW_S: u64 = 60;

/// Env var holding the OAuth2 client id when the config has none.
pub const CLIENT_ID_ENV: &str = "OAUTH_CLIENT_ID";
/// Env var holding the OAuth2 client secret when the config has none.
pub const CLIENT_SECRET_ENV: &str = "OAUTH_CLIENT_SECRET";

/// How the client authenticates itself to the token endpoint (RFC 6749 section 2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP basic auth with the form-urlencoded client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// When the runtime refreshes the access token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshMode {
    /// When the API answers 401, and proactively once the token is within the expiry skew.
    /// Spelt `on_401`, as the README and component.json's select view spell it; serde's own
    /// snake case of the name, `on401`, is still read.
    #[default]
    #[serde(rename = "on_401", alias = "on401")]
    On401,
    /// Before every API call, as some providers demand.
    EveryCall,
}

/// A step's configuration.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct StepConfig {
    /// The token set the user authorised.
    #[serde(
        default,
        serialize_with = "token::expose_serialize",
        skip_serializing_if = "Option::is_none"
    )]
    pub oauth: Option<TokenSet>,
    /// OAuth2 client id; falls back to `OAUTH_CLIENT_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth2 client secret; falls back to `OAUTH_CLIENT_SECRET`.
    #[serde(
        default,
        serialize_with = "expose_client_secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_secret: Option<ClientSecret>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    /// Client authentication at the token endpoint.
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// Scope sent with refresh requests, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When to refresh.
    #[serde(default)]
    pub refresh: RefreshMode,
    /// Seconds before expiry that count as expired.
    #[serde(default = "default_skew")]
    pub expiry_skew_s: u64,
    /// Base URL of the protected API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// The platform's credential id, echoed in `updateKeys` headers.
    #[serde(default, rename = "_account", skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The component's own fields and anything else, kept as received.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

fn default_skew() -> u64 {
    DEFAULT_EXPIRY_SKEW_S
}

fn expose_client_secret<S: serde::Serializer>(
    secret: &Option<ClientSecret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    // Writing the config back out is the one place the client secret is serialized.
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

impl StepConfig {
    /// Parses a config from JSON; errors name the field and, for text, line and column.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }

    /// The client id from the config, else from `OAUTH_CLIENT_ID`.
    pub fn resolved_client_id(&self) -> Option<String> {
        self.client_id
            .clone()
            .or_else(|| std::env::var(CLIENT_ID_ENV).ok())
            .filter(|id| !id.is_empty())
    }

    /// The client secret from the config, else from `OAUTH_CLIENT_SECRET`.
    pub fn resolved_client_secret(&self) -> Option<ClientSecret> {
        self.client_secret
            .clone()
            .or_else(|| std::env::var(CLIENT_SECRET_ENV).ok().map(ClientSecret::new))
            .filter(|secret| !secret.expose_secret().is_empty())
    }

    /// A component field as a string, if present.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

impl std::fmt::Debug for StepConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Component fields may hold secrets of their own (API keys): print their names only.
        f.debug_struct("StepConfig")
            .field("oauth", &self.oauth)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("token_uri", &self.token_uri)
            .field("token_auth_method", &self.token_auth_method)
            .field("refresh", &self.refresh)
            .field("expiry_skew_s", &self.expiry_skew_s)
            .field("api_base_url", &self.api_base_url)
            .field("account", &self.account)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_config() -> Value {
        json!({
            "oauth": {"access_token": "at", "refresh_token": "rt", "expires_in": 3600,
                      "instance_url": "https://eu.example", "expires_at": 99},
            "client_id": "cid", "client_secret": "csecret",
            "token_uri": "http://127.0.0.1:1/token",
            "token_auth_method": "client_secret_post", "scope": "read write",
            "refresh": "every_call", "expiry_skew_s": 30,
            "api_base_url": "http://127.0.0.1:1/api", "_account": "acc-1",
            "path": "/items", "custom": {"nested": [true, null]}
        })
    }

    #[test]
    fn config_round_trip_keeps_every_field() {
        let config = StepConfig::from_value(full_config()).unwrap();
        assert_eq!(config.token_auth_method, TokenAuthMethod::ClientSecretPost);
        assert_eq!(config.refresh, RefreshMode::EveryCall);
        assert_eq!(config.account.as_deref(), Some("acc-1"));
        assert_eq!(config.str_field("path"), Some("/items"));
        assert_eq!(serde_json::to_value(&config).unwrap(), full_config());
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = StepConfig::from_value(json!({})).unwrap();
        assert_eq!(config.token_auth_method, TokenAuthMethod::ClientSecretBasic);
        assert_eq!(config.refresh, RefreshMode::On401);
        assert_eq!(config.expiry_skew_s, DEFAULT_EXPIRY_SKEW_S);
        assert!(config.oauth.is_none());
    }

    #[test]
    fn refresh_on_401_is_read_in_its_documented_spelling_and_its_old_one() {
        for spelling in ["on_401", "on401"] {
            let config = StepConfig::from_value(json!({"refresh": spelling})).unwrap();
            assert_eq!(config.refresh, RefreshMode::On401, "{spelling}");
        }
        assert_eq!(
            serde_json::to_value(RefreshMode::On401).unwrap(),
            json!("on_401")
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let error = StepConfig::from_value(json!({"refresh": "sometimes"})).unwrap_err();
        assert!(error.to_string().contains("sometimes"), "{error}");
        let error = StepConfig::from_value(json!({"oauth": {"refresh_token": "x"}})).unwrap_err();
        assert!(error.to_string().contains("access_token"), "{error}");
    }

    #[test]
    fn a_numeric_secret_is_refused_naming_its_type_but_not_its_value() {
        for config in [
            json!({"client_secret": 123456}),
            json!({"oauth": {"access_token": "at", "refresh_token": 123456}}),
            json!({"oauth": {"access_token": 123456}}),
        ] {
            let error = StepConfig::from_value(config).unwrap_err();
            assert!(!error.to_string().contains("123456"), "{error}");
            assert!(!format!("{error:?}").contains("123456"), "{error:?}");
        }
        let error = StepConfig::from_value(json!({"client_secret": 123456})).unwrap_err();
        assert!(
            error.to_string().contains("ClientSecret must be a string"),
            "{error}"
        );
    }

    #[test]
    fn debug_never_shows_secrets_or_component_values() {
        let printed = format!("{:?}", StepConfig::from_value(full_config()).unwrap());
        for secret in ["\"at\"", "\"rt\"", "csecret", "/items"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
}
