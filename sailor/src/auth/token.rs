//! The token set: the provider's whole token response, kept field for field.
//!
//! Providers send more than `access_token` and `refresh_token` (`instance_url`, `id_token`,
//! `ext_expires_in`, ...), and the platform must store all of it. So the token set keeps the
//! response as received, in its order and number formats, and adds one field of its own,
//! `expires_at` (Unix seconds), when it knows `expires_in` at receipt.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::{Map, Value};

use crate::secret::{AccessToken, RefreshToken};

/// The field this runtime adds: when the access token expires, in Unix seconds.
pub const EXPIRES_AT: &str = "expires_at";

/// What is wrong with a token set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenSetError {
    /// The token set is not a JSON object.
    #[error("the token set must be a JSON object")]
    NotAnObject,
    /// `access_token` is missing, empty or not a string.
    #[error("the token set has no `access_token` string")]
    MissingAccessToken,
    /// `refresh_token` is present but not a string.
    #[error("`refresh_token` in the token set is not a string")]
    InvalidRefreshToken,
}

/// A token set as the platform stores it under `cfg.oauth`.
#[derive(Clone, PartialEq)]
pub struct TokenSet {
    /// The whole response as received, plus `expires_at`.
    fields: Map<String, Value>,
    access_token: AccessToken,
    refresh_token: Option<RefreshToken>,
    expires_at: Option<u64>,
}

impl TokenSet {
    /// Reads a stored token set (from the step config). `expires_at` is taken as stored; a
    /// token set without it has an unknown expiry and is refreshed on its first 401.
    pub fn from_stored(value: Value) -> Result<Self, TokenSetError> {
        let Value::Object(fields) = value else {
            return Err(TokenSetError::NotAnObject);
        };
        let expires_at = fields.get(EXPIRES_AT).and_then(seconds);
        Self::from_fields(fields, expires_at)
    }

    /// Builds the token set from a token endpoint's response received at `received_at`.
    /// `expires_at` is recomputed from `expires_in`; when the response holds no
    /// `refresh_token`, the one from `previous` is kept (RFC 6749 section 6).
    pub fn from_response(
        mut fields: Map<String, Value>,
        received_at: u64,
        previous: Option<&TokenSet>,
    ) -> Result<Self, TokenSetError> {
        // `null` and `""` are no refresh token either, as `from_fields` reads them.
        let holds_refresh_token = match fields.get("refresh_token") {
            None | Some(Value::Null) => false,
            Some(Value::String(token)) => !token.is_empty(),
            Some(_) => true,
        };
        if !holds_refresh_token && let Some(old) = previous.and_then(|p| p.refresh_token.as_ref()) {
            // The one place a refresh token is written back: into the token set itself.
            fields.insert("refresh_token".into(), Value::from(old.expose_secret()));
        }
        fields.remove(EXPIRES_AT);
        let expires_at = fields
            .get("expires_in")
            .and_then(seconds)
            .map(|lifetime| received_at.saturating_add(lifetime));
        if let Some(at) = expires_at {
            fields.insert(EXPIRES_AT.into(), Value::from(at));
        }
        Self::from_fields(fields, expires_at)
    }

    fn from_fields(
        fields: Map<String, Value>,
        expires_at: Option<u64>,
    ) -> Result<Self, TokenSetError> {
        let access_token = match fields.get("access_token") {
            Some(Value::String(token)) if !token.is_empty() => AccessToken::new(token.clone()),
            _ => return Err(TokenSetError::MissingAccessToken),
        };
        let refresh_token = match fields.get("refresh_token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) if token.is_empty() => None,
            Some(Value::String(token)) => Some(RefreshToken::new(token.clone())),
            Some(_) => return Err(TokenSetError::InvalidRefreshToken),
        };
        Ok(Self {
            fields,
            access_token,
            refresh_token,
            expires_at,
        })
    }

    /// The bearer token for API calls.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The refresh token, when the provider issued one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// When the access token expires (Unix seconds), if known.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// True once `now` is within `skew` seconds of the expiry. The skew is capped at half the
    /// token's lifetime, so that a token living less than twice the skew is not refreshed on
    /// every call. Unknown expiry never counts as expired: such a token is refreshed when the
    /// API rejects it.
    pub fn is_expired(&self, now: u64, skew: u64) -> bool {
        let lifetime = self.fields.get("expires_in").and_then(seconds);
        let skew = lifetime.map_or(skew, |lifetime| skew.min(lifetime / 2));
        self.expires_at
            .is_some_and(|at| now.saturating_add(skew) >= at)
    }

    /// A field of the response other than the tokens, e.g. `instance_url`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match name {
            "access_token" | "refresh_token" | "id_token" => None,
            _ => self.fields.get(name),
        }
    }

    /// Names of the fields held, for logs and `Debug`.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The whole token set as JSON, secrets included. Only for the `updateKeys` payload and
    /// for writing the step config back out.
    pub fn expose_json(&self) -> Value {
        Value::Object(self.fields.clone())
    }
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for TokenSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_stored(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `serialize_with` helper for fields holding a token set: writes the secrets out.
pub fn expose_serialize<S: Serializer>(tokens: &Option<TokenSet>, s: S) -> Result<S::Ok, S::Error> {
    match tokens {
        Some(tokens) => s.serialize_some(&tokens.expose_json()),
        None => s.serialize_none(),
    }
}

/// Reads a duration or instant in seconds from a number or a numeric string, as providers
/// send both (`"expires_in": "3600"`).
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_stored_token_set_round_trips_field_for_field() {
        let stored = json!({
            "access_token": "at", "refresh_token": "rt", "expires_in": 3600.0,
            "scope": "a b", "instance_url": "https://x.example", "nested": {"k": [1, 2.5]},
            "expires_at": 1_700_000_000u64
        });
        let tokens = TokenSet::from_stored(stored.clone()).unwrap();
        assert_eq!(tokens.expose_json(), stored);
        assert_eq!(tokens.expose_json().to_string(), stored.to_string());
        assert_eq!(tokens.expires_at(), Some(1_700_000_000));
    }

    #[test]
    fn expires_at_is_computed_from_expires_in_at_receipt() {
        let tokens = TokenSet::from_response(
            response(json!({"access_token": "a", "expires_in": "120"})),
            1000,
            None,
        )
        .unwrap();
        assert_eq!(tokens.expires_at(), Some(1120));
        assert_eq!(tokens.expose_json()["expires_at"], json!(1120));
        assert_eq!(tokens.expose_json()["expires_in"], json!("120"));
        assert!(!tokens.is_expired(1059, 60));
        assert!(tokens.is_expired(1060, 60));
    }

    #[test]
    fn a_response_without_refresh_token_keeps_the_old_one() {
        let old =
            TokenSet::from_stored(json!({"access_token": "a", "refresh_token": "keep"})).unwrap();
        let new =
            TokenSet::from_response(response(json!({"access_token": "b"})), 0, Some(&old)).unwrap();
        assert_eq!(new.refresh_token().unwrap().expose_secret(), "keep");
        assert_eq!(
            new.expose_json(),
            json!({"access_token": "b", "refresh_token": "keep"})
        );
    }

    #[test]
    fn a_null_or_empty_refresh_token_keeps_the_old_one() {
        let old =
            TokenSet::from_stored(json!({"access_token": "a", "refresh_token": "keep"})).unwrap();
        for none in [json!(null), json!("")] {
            let new = TokenSet::from_response(
                response(json!({"access_token": "b", "refresh_token": none})),
                0,
                Some(&old),
            )
            .unwrap();
            assert_eq!(new.refresh_token().unwrap().expose_secret(), "keep");
            assert_eq!(
                new.expose_json(),
                json!({"access_token": "b", "refresh_token": "keep"})
            );
        }
    }

    #[test]
    fn a_rotated_refresh_token_replaces_the_old_one() {
        let old =
            TokenSet::from_stored(json!({"access_token": "a", "refresh_token": "old"})).unwrap();
        let new = TokenSet::from_response(
            response(json!({"access_token": "b", "refresh_token": "new"})),
            0,
            Some(&old),
        )
        .unwrap();
        assert_eq!(new.refresh_token().unwrap().expose_secret(), "new");
    }

    #[test]
    fn the_skew_is_capped_at_half_a_short_lifetime() {
        let tokens = TokenSet::from_response(
            response(json!({"access_token": "a", "expires_in": 4})),
            1000,
            None,
        )
        .unwrap();
        assert!(!tokens.is_expired(1001, 60));
        assert!(tokens.is_expired(1002, 60));
    }

    #[test]
    fn unknown_expiry_never_counts_as_expired() {
        let tokens = TokenSet::from_stored(json!({"access_token": "a", "expires_in": 10})).unwrap();
        assert!(!tokens.is_expired(u64::MAX / 2, 60));
    }

    #[test]
    fn invalid_token_sets_are_named() {
        assert_eq!(
            TokenSet::from_stored(json!([])),
            Err(TokenSetError::NotAnObject)
        );
        assert_eq!(
            TokenSet::from_stored(json!({"access_token": ""})),
            Err(TokenSetError::MissingAccessToken)
        );
        assert_eq!(
            TokenSet::from_stored(json!({"access_token": "a", "refresh_token": 5})),
            Err(TokenSetError::InvalidRefreshToken)
        );
    }

    #[test]
    fn debug_shows_field_names_but_no_token() {
        let tokens = TokenSet::from_stored(
            json!({"access_token": "secret-at", "refresh_token": "secret-rt"}),
        )
        .unwrap();
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("secret-"), "{printed}");
        assert!(printed.contains("refresh_token"), "{printed}");
    }
}
