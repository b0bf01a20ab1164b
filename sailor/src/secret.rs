//! Secret values: access and refresh tokens, the client secret, passwords.
//!
//! Each secret is a newtype over [`secrecy::SecretString`] whose `Debug` prints a redaction and
//! which has no `Display`. Reading the value takes a call to `expose_secret()`, so
//! `grep expose_secret` lists every place a secret leaves its box (oauth2-rs, secrecy).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret itself. Every caller is a place where the secret leaves its box.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose_secret() == other.expose_secret()
            }
        }

        impl Eq for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // serde's own message would quote a wrongly typed value: say what is wrong
                // without repeating the secret.
                String::deserialize(deserializer).map(Self::new).map_err(|_| {
                    serde::de::Error::custom(concat!("a ", stringify!($name), " must be a string"))
                })
            }
        }
    };
}

secret_type!(
    /// The bearer token sent to the protected API.
    AccessToken
);
secret_type!(
    /// The long-lived token exchanged for new access tokens; providers may rotate it.
    RefreshToken
);
secret_type!(
    /// The OAuth2 client's secret, sent to the token endpoint only.
    ClientSecret
);
secret_type!(
    /// A password, such as the message crypto password or the AMQP password.
    Password
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let printed = format!(
            "{:?} {:?} {:?} {:?}",
            AccessToken::new("at-123"),
            RefreshToken::new("rt-456"),
            ClientSecret::new("cs-789"),
            Password::new("pw-000")
        );
        assert_eq!(
            printed,
            "AccessToken([redacted]) RefreshToken([redacted]) ClientSecret([redacted]) Password([redacted])"
        );
    }

    #[test]
    fn a_wrongly_typed_secret_is_refused_without_quoting_it() {
        let error = serde_json::from_str::<ClientSecret>("123456789").unwrap_err();
        assert!(!error.to_string().contains("123456789"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("a ClientSecret must be a string"),
            "{error}"
        );
    }

    #[test]
    fn deserializes_from_a_json_string() {
        let token: AccessToken = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(token.expose_secret(), "abc");
    }
}
