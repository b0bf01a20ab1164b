//! Where the credential config comes from, and what is wrong with it when it is unusable.
//!
//! The config is read from `--config FILE`, else the `ELASTICIO_CFG` env var, else stdin.
//! Syntax errors are reported with line and column; a field of the wrong shape is named by
//! its path (`oauth.access_token`), so the user knows what to fix.

use std::io::Read as _;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::auth::token::{TokenSet, TokenSetError};
use crate::config::{RefreshMode, StepConfig, TokenAuthMethod};
use crate::verify::Verifier;
use crate::verify::check::VERIFY_PATH_FIELD;

/// The env var elastic.io uses to hand a service method its config.
pub const CFG_ENV: &str = "ELASTICIO_CFG";

/// Where the config is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file named by `--config`.
    File(PathBuf),
    /// The text of `ELASTICIO_CFG`.
    Env(String),
    /// Standard input.
    Stdin,
}

impl ConfigSource {
    /// `--config` wins over `ELASTICIO_CFG`, which wins over stdin.
    pub fn choose(file: Option<PathBuf>, env: Option<String>) -> Self {
        match (file, env) {
            (Some(path), _) => Self::File(path),
            (None, Some(text)) => Self::Env(text),
            (None, None) => Self::Stdin,
        }
    }

    /// The source as named in error messages.
    pub fn origin(&self) -> String {
        match self {
            Self::File(path) => format!("config file {}", path.display()),
            Self::Env(_) => CFG_ENV.to_owned(),
            Self::Stdin => "standard input".to_owned(),
        }
    }

    /// Reads the config and checks it as `verifier` asks.
    pub fn load(&self, verifier: &dyn Verifier) -> Result<StepConfig, InputError> {
        let origin = self.origin();
        let text = match self {
            Self::File(path) => {
                std::fs::read_to_string(path).map_err(|source| InputError::Read {
                    origin: origin.clone(),
                    source,
                })?
            }
            Self::Env(text) => text.clone(),
            Self::Stdin => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|source| InputError::Read {
                        origin: origin.clone(),
                        source,
                    })?;
                text
            }
        };
        parse_text(&origin, &text, verifier)
    }
}

/// Input the check cannot run on. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file or stdin could not be read.
    #[error("cannot read {origin}")]
    Read {
        /// Where from.
        origin: String,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing was given.
    #[error("{origin} is empty; expected the credential config as a JSON object")]
    Empty {
        /// Where from.
        origin: String,
    },
    /// The text is not JSON.
    #[error("{origin} is not valid JSON: {problem} at line {line}, column {column}")]
    Json {
        /// Where from.
        origin: String,
        /// What is wrong.
        problem: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The JSON is not a usable config.
    #[error("{origin}")]
    Config {
        /// Where from.
        origin: String,
        /// What is wrong.
        #[source]
        source: ConfigError,
    },
}

/// A config that is JSON but not a usable credential config.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The top level is not an object.
    #[error("the config must be a JSON object, not {found}")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A field is missing or has the wrong shape.
    #[error("field `{field}` {problem}")]
    Field {
        /// The field's path, e.g. `oauth.access_token`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn parse_text(origin: &str, text: &str, verifier: &dyn Verifier) -> Result<StepConfig, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty {
            origin: origin.to_owned(),
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|error| {
        let message = error.to_string();
        // serde_json appends " at line L column C"; we say where ourselves.
        let problem = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        InputError::Json {
            origin: origin.to_owned(),
            problem,
            line: error.line(),
            column: error.column(),
        }
    })?;
    verifier
        .parse_config(value)
        .map_err(|source| InputError::Config {
            origin: origin.to_owned(),
            source,
        })
}

/// Builds a step config for any verifier: a JSON object whose runtime fields (`oauth`,
/// `client_secret`, ...) have their shapes, the field at fault named.
pub fn parse_step_config(value: Value) -> Result<StepConfig, ConfigError> {
    let Value::Object(fields) = &value else {
        return Err(ConfigError::NotAnObject {
            found: json_type(&value),
        });
    };
    check_oauth(fields)?;
    StepConfig::from_value(value).map_err(|error| ConfigError::Field {
        field: "(config)".into(),
        problem: error.to_string(),
    })
}

/// Checks a config for the OAuth2 credential check, field by field, and builds it. The API's
/// base URL is required unless `verify_path` is an absolute URL.
pub fn parse_config(value: Value) -> Result<StepConfig, ConfigError> {
    let Value::Object(fields) = &value else {
        return Err(ConfigError::NotAnObject {
            found: json_type(&value),
        });
    };
    check_oauth(fields)?;
    for name in [
        "client_id",
        "client_secret",
        "scope",
        "_account",
        VERIFY_PATH_FIELD,
    ] {
        check_field::<String>(fields, name, "must be a string")?;
    }
    check_field::<TokenAuthMethod>(
        fields,
        "token_auth_method",
        "must be `client_secret_basic` or `client_secret_post`",
    )?;
    check_field::<RefreshMode>(fields, "refresh", "must be `on_401` or `every_call`")?;
    check_field::<u64>(
        fields,
        "expiry_skew_s",
        "must be a whole number of seconds (0 or more)",
    )?;
    check_url(fields, "token_uri")?;
    let verify_path = present(fields, VERIFY_PATH_FIELD).and_then(Value::as_str);
    let absolute = verify_path.is_some_and(|path| url::Url::parse(path).is_ok());
    if !absolute && present(fields, "api_base_url").is_none() {
        return Err(ConfigError::Field {
            field: "api_base_url".into(),
            problem: "is missing; the check calls `verify_path` under it".into(),
        });
    }
    check_url(fields, "api_base_url")?;
    StepConfig::from_value(value.clone()).map_err(|error| ConfigError::Field {
        field: "(config)".into(),
        problem: error.to_string(),
    })
}

/// The field's value, treating `null` as absent (as the config's deserializer does).
fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn check_field<T: DeserializeOwned>(
    fields: &Map<String, Value>,
    name: &str,
    expected: &str,
) -> Result<(), ConfigError> {
    let Some(value) = present(fields, name) else {
        return Ok(());
    };
    match serde_json::from_value::<T>(value.clone()) {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::Field {
            field: name.to_owned(),
            problem: format!("{expected}, not {}", describe(name, value)),
        }),
    }
}

fn check_url(fields: &Map<String, Value>, name: &str) -> Result<(), ConfigError> {
    check_field::<String>(fields, name, "must be a string")?;
    let Some(text) = present(fields, name).and_then(Value::as_str) else {
        return Ok(());
    };
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(ConfigError::Field {
            field: name.to_owned(),
            problem: "must be an absolute http or https URL".into(),
        }),
    }
}

fn check_oauth(fields: &Map<String, Value>) -> Result<(), ConfigError> {
    let Some(oauth) = present(fields, "oauth") else {
        return Ok(());
    };
    TokenSet::from_stored(oauth.clone())
        .map(drop)
        .map_err(|error| {
            let (field, problem) = match error {
                TokenSetError::NotAnObject => (
                    "oauth",
                    format!(
                        "must be the token set (a JSON object), not {}",
                        json_type(oauth)
                    ),
                ),
                TokenSetError::MissingAccessToken => (
                    "oauth.access_token",
                    "is missing, empty or not a string".to_owned(),
                ),
                TokenSetError::InvalidRefreshToken => {
                    ("oauth.refresh_token", "must be a string".to_owned())
                }
            };
            ConfigError::Field {
                field: field.to_owned(),
                problem,
            }
        })
}

/// Config fields whose value is a secret whatever its JSON type.
const SECRET_FIELDS: [&str; 1] = ["client_secret"];

/// A value's type, and its text when that cannot be a secret (never for strings, never for
/// a secret field: `"client_secret": 123456` is a secret typed as a number).
fn describe(field: &str, value: &Value) -> String {
    match value {
        Value::Bool(_) | Value::Number(_) if !SECRET_FIELDS.contains(&field) => {
            format!("{} {value}", json_type(value))
        }
        _ => json_type(value).to_owned(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::OAuth2Verifier;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"oauth": {"access_token": "at"}, "api_base_url": "http://127.0.0.1:1/api"})
    }

    fn field_error(value: Value) -> (String, String) {
        match parse_config(value) {
            Err(ConfigError::Field { field, problem }) => (field, problem),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn the_command_line_file_wins_over_the_env_var_which_wins_over_stdin() {
        let file = Some(PathBuf::from("cfg.json"));
        let env = Some("{}".to_owned());
        assert_eq!(
            ConfigSource::choose(file.clone(), env.clone()),
            ConfigSource::File("cfg.json".into())
        );
        assert_eq!(
            ConfigSource::choose(None, env),
            ConfigSource::Env("{}".into())
        );
        assert_eq!(ConfigSource::choose(None, None), ConfigSource::Stdin);
    }

    #[test]
    fn a_minimal_config_is_accepted() {
        let config = parse_config(minimal()).unwrap();
        assert_eq!(
            config.api_base_url.as_deref(),
            Some("http://127.0.0.1:1/api")
        );
    }

    #[test]
    fn a_config_without_oauth_is_usable_input() {
        assert!(parse_config(json!({"api_base_url": "http://x.example"})).is_ok());
    }

    #[test]
    fn invalid_json_is_located_by_line_and_column() {
        let error = parse_text("ELASTICIO_CFG", "{\n  \"oauth\": }", &OAuth2Verifier).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ELASTICIO_CFG is not valid JSON: expected value at line 2, column 12"
        );
    }

    #[test]
    fn an_empty_input_is_named() {
        let error = parse_text("standard input", " \n", &OAuth2Verifier).unwrap_err();
        assert_eq!(
            error.to_string(),
            "standard input is empty; expected the credential config as a JSON object"
        );
    }

    #[test]
    fn a_missing_access_token_is_named_by_its_path() {
        let (field, problem) = field_error(
            json!({"oauth": {"refresh_token": "rt"}, "api_base_url": "http://x.example"}),
        );
        assert_eq!(field, "oauth.access_token");
        assert_eq!(problem, "is missing, empty or not a string");
    }

    #[test]
    fn wrong_shapes_are_named_without_echoing_strings() {
        let mut config = minimal();
        config["refresh"] = json!("sometimes");
        assert_eq!(
            field_error(config),
            (
                "refresh".into(),
                "must be `on_401` or `every_call`, not a string".into()
            )
        );
        let mut config = minimal();
        config["expiry_skew_s"] = json!(-5);
        assert_eq!(
            field_error(config),
            (
                "expiry_skew_s".into(),
                "must be a whole number of seconds (0 or more), not a number -5".into()
            )
        );
        let mut config = minimal();
        config["token_uri"] = json!("not a url");
        assert_eq!(field_error(config).0, "token_uri");
        let mut config = minimal();
        config["oauth"] = json!("at");
        assert_eq!(
            field_error(config),
            (
                "oauth".into(),
                "must be the token set (a JSON object), not a string".into()
            )
        );
    }

    #[test]
    fn a_numeric_client_secret_is_named_but_never_quoted() {
        for secret in [json!(123456), json!(654.321), json!(true)] {
            let mut config = minimal();
            config["client_secret"] = secret.clone();
            let error = parse_config(config.clone()).unwrap_err();
            let (field, problem) = field_error(config);
            assert_eq!(field, "client_secret");
            assert!(problem.starts_with("must be a string, not a"), "{problem}");
            for printed in [error.to_string(), format!("{error:?}")] {
                assert!(!printed.contains(&secret.to_string()), "{printed}");
            }
        }
        let error = parse_text(
            "ELASTICIO_CFG",
            r#"{"oauth": {"access_token": "at"},
            "api_base_url": "http://x.example", "client_secret": 123456}"#,
            &OAuth2Verifier,
        )
        .unwrap_err();
        let printed = format!("{error} {:?}", std::error::Error::source(&error));
        assert!(printed.contains("client_secret"), "{printed}");
        assert!(!printed.contains("123456"), "{printed}");
    }

    #[test]
    fn the_api_base_url_is_required_unless_verify_path_is_absolute() {
        let (field, _) = field_error(json!({"oauth": {"access_token": "at"}}));
        assert_eq!(field, "api_base_url");
        assert!(
            parse_config(json!({"oauth": {"access_token": "at"},
                                "verify_path": "https://api.example/me"}))
            .is_ok()
        );
    }

    #[test]
    fn a_top_level_array_is_refused() {
        assert_eq!(
            parse_config(json!([])).unwrap_err(),
            ConfigError::NotAnObject { found: "an array" }
        );
    }
}
