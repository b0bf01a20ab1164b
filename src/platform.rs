//! The step definition: config, snapshot and passthrough flag, from the environment or the
//! platform API (`GET {API_URI}/v1/tasks/{FLOW_ID}/steps/{STEP_ID}`, as sailor-nodejs does
//! once per container start).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::StepConfig;
use crate::http::{BodyCap, read_capped};
use crate::settings::{Identity, StepSource};

/// The most a step definition from the platform API may weigh: a config and a snapshot.
const STEP_DEFINITION_CAP: BodyCap = BodyCap::new(
    16 * 1024 * 1024,
    "for step definitions from the platform API (fixed)",
);

/// What the worker needs to know about its step.
#[derive(Clone, Debug)]
pub struct StepDefinition {
    /// The step config, credentials merged in.
    pub config: StepConfig,
    /// The snapshot the first message sees.
    pub snapshot: Value,
    /// True when the flow passes earlier steps' messages along.
    pub is_passthrough: bool,
}

/// Why the step definition could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StepSourceError {
    /// `ELASTICIO_CFG_FILE` could not be read.
    #[error("cannot read the step config file {path}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config is not a valid step config.
    #[error("the step config from {origin} is invalid: {problem}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// What is wrong (never the content).
        problem: String,
    },
    /// The platform API did not answer usefully.
    #[error("the platform API step endpoint failed: {0}")]
    Api(String),
}

#[derive(Deserialize)]
struct StepJson {
    #[serde(default)]
    config: Value,
    #[serde(default)]
    snapshot: Option<Value>,
    #[serde(default)]
    is_passthrough: Option<bool>,
}

fn parse_config(origin: &str, value: Value) -> Result<StepConfig, StepSourceError> {
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        other => other,
    };
    StepConfig::from_value(value).map_err(|error| StepSourceError::Invalid {
        origin: origin.to_owned(),
        problem: error.to_string(),
    })
}

fn parse_text(origin: &str, text: &str) -> Result<StepDefinition, StepSourceError> {
    let value: Value = serde_json::from_str(text).map_err(|error| StepSourceError::Invalid {
        origin: origin.to_owned(),
        problem: format!(
            "not JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
    })?;
    Ok(StepDefinition {
        config: parse_config(origin, value)?,
        snapshot: Value::Object(Map::new()),
        is_passthrough: false,
    })
}

/// Loads the step definition from where the settings say.
pub async fn load(
    source: &StepSource,
    identity: &Identity,
) -> Result<StepDefinition, StepSourceError> {
    match source {
        StepSource::Inline(text) => parse_text("ELASTICIO_CFG", text),
        StepSource::File(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| StepSourceError::File {
                path: origin.clone(),
                source,
            })?;
            parse_text(&origin, &text)
        }
        StepSource::Api {
            base_uri,
            username,
            key,
        } => {
            let url = format!(
                "{}/v1/tasks/{}/steps/{}",
                base_uri.trim_end_matches('/'),
                identity.flow_id,
                identity.step_id
            );
            let response = reqwest::Client::new()
                .get(&url)
                .basic_auth(username, Some(key.expose_secret()))
                .header("Accept", "application/json")
                .timeout(std::time::Duration::from_secs(15))
                .send()
                .await
                .map_err(|error| StepSourceError::Api(error.without_url().to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(StepSourceError::Api(format!("HTTP {status}")));
            }
            let body = read_capped(response, STEP_DEFINITION_CAP)
                .await
                .map_err(|error| StepSourceError::Api(error.to_string()))?;
            let step: StepJson = serde_json::from_slice(&body).map_err(|error| {
                StepSourceError::Api(format!(
                    "the answer is not a step definition ({:?} error at line {}, column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                ))
            })?;
            Ok(StepDefinition {
                config: parse_config("the platform API", step.config)?,
                snapshot: step
                    .snapshot
                    .filter(|s| !s.is_null())
                    .unwrap_or_else(|| Value::Object(Map::new())),
                is_passthrough: step.is_passthrough == Some(true),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Password;
    use axum::routing::get;
    use serde_json::json;

    #[tokio::test]
    async fn inline_config_is_parsed_with_an_empty_snapshot() {
        let source = StepSource::Inline(r#"{"_account": "acc", "path": "/x"}"#.into());
        let step = load(&source, &Identity::default()).await.unwrap();
        assert_eq!(step.config.account.as_deref(), Some("acc"));
        assert_eq!(step.snapshot, json!({}));
        assert!(!step.is_passthrough);
    }

    #[tokio::test]
    async fn a_bad_inline_config_names_the_variable_but_not_the_content() {
        let source = StepSource::Inline(r#"{"secret": "hunter2""#.into());
        let error = load(&source, &Identity::default()).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("ELASTICIO_CFG"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn the_platform_api_is_asked_with_basic_auth() {
        let app = axum::Router::new().route(
            "/v1/tasks/{flow}/steps/{step}",
            get(
                |axum::extract::Path((flow, step)): axum::extract::Path<(String, String)>,
                 headers: axum::http::HeaderMap| async move {
                    // "u:k" in base64.
                    let auth = headers["authorization"].to_str().unwrap().to_owned();
                    assert_eq!(auth, "Basic dTpr");
                    axum::Json(json!({
                        "config": {"_account": format!("{flow}/{step}")},
                        "snapshot": {"since": "2024"},
                        "is_passthrough": true
                    }))
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let source = StepSource::Api {
            base_uri: format!("http://{addr}/"),
            username: "u".into(),
            key: Password::new("k"),
        };
        let identity = Identity {
            flow_id: "f1".into(),
            step_id: "step_1".into(),
            ..Identity::default()
        };
        let step = load(&source, &identity).await.unwrap();
        assert_eq!(step.config.account.as_deref(), Some("f1/step_1"));
        assert_eq!(step.snapshot, json!({"since": "2024"}));
        assert!(step.is_passthrough);
    }
}
