//! The step definition: config, snapshot and passthrough flag, from the environment or the
//! platform API (`GET {API_URI}/v1/tasks/{FLOW_ID}/steps/{STEP_ID}`, as sailor-nodejs does
//! once per container start).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::clock;
use crate::config::StepConfig;
use crate::registry::Registry;
use crate::step::{Step, UnknownFunction};
use reqwest::Method;

use crate::http::BodyCap;
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
    /// The flow's variables (`variables`), given to modules through their context.
    pub flow_variables: Map<String, Value>,
}

/// A step definition made into the step that runs it.
#[derive(Debug)]
pub struct LoadedStep {
    /// The step, with the definition's config and flow variables.
    pub step: Step,
    /// The snapshot the first message sees.
    pub snapshot: Value,
    /// True when the flow passes earlier steps' messages along.
    pub is_passthrough: bool,
}

impl StepDefinition {
    /// The step running `function` from `registry` on this definition.
    pub fn into_step(
        self,
        registry: &Registry,
        function: &str,
    ) -> Result<LoadedStep, UnknownFunction> {
        let step = Step::new(registry, function, self.config, clock::system())?
            .with_flow_variables(self.flow_variables);
        Ok(LoadedStep {
            step,
            snapshot: self.snapshot,
            is_passthrough: self.is_passthrough,
        })
    }
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
    #[serde(default)]
    variables: Option<Map<String, Value>>,
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
        flow_variables: Map::new(),
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
        StepSource::Api(api) => {
            let path = format!("/v1/tasks/{}/steps/{}", identity.flow_id, identity.step_id);
            let answer = api
                .send(Method::GET, &path, None, STEP_DEFINITION_CAP)
                .await
                .map_err(|error| StepSourceError::Api(error.to_string()))?;
            if !answer.status.is_success() {
                return Err(StepSourceError::Api(format!("HTTP {}", answer.status)));
            }
            let body = answer.body;
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
                flow_variables: step.variables.unwrap_or_default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::secret::Password;
    use crate::settings::{ApiRetry, PlatformApi};
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use axum::routing::get;
    use serde_json::json;

    /// Serves the step endpoint, answering each request with the next of `statuses` (the last
    /// one for every request after), a step definition when it is 200; counts the requests.
    async fn platform_api(statuses: Vec<u16>) -> (String, Arc<AtomicU32>) {
        let requests = Arc::new(AtomicU32::new(0));
        let counter = requests.clone();
        let app = axum::Router::new().route(
            "/v1/tasks/{flow}/steps/{step}",
            get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
                let status = statuses[n.min(statuses.len() - 1)];
                async move {
                    match status {
                        200 => axum::Json(json!({"config": {"_account": "acc"}})).into_response(),
                        other => StatusCode::from_u16(other).unwrap().into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), requests)
    }

    fn api_source(base_uri: String, attempts: u32) -> StepSource {
        StepSource::Api(PlatformApi {
            base_uri,
            username: "u".into(),
            key: Password::new("k"),
            retry: ApiRetry {
                attempts,
                delay: Duration::from_millis(10),
            },
        })
    }

    fn step_identity() -> Identity {
        Identity {
            flow_id: "f1".into(),
            step_id: "step_1".into(),
            ..Identity::default()
        }
    }

    #[tokio::test]
    async fn a_platform_api_failing_with_5xx_is_asked_again_until_it_answers() {
        let (base, requests) = platform_api(vec![503, 500, 200]).await;
        let step = load(&api_source(base, 3), &step_identity()).await.unwrap();
        assert_eq!(step.config.account.as_deref(), Some("acc"));
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_platform_api_still_failing_after_the_attempts_is_an_error_naming_them() {
        let (base, requests) = platform_api(vec![502]).await;
        let error = load(&api_source(base, 2), &step_identity())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the platform API step endpoint failed: GET /v1/tasks/f1/steps/step_1: \
             HTTP 502 Bad Gateway (after 2 attempt(s))"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_platform_api_refusing_the_request_is_not_asked_again() {
        let (base, requests) = platform_api(vec![404, 200]).await;
        let error = load(&api_source(base, 3), &step_identity())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the platform API step endpoint failed: HTTP 404 Not Found"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_platform_api_is_tried_the_configured_number_of_times() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = load(
            &api_source(format!("http://{closed}"), 2),
            &Identity::default(),
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().ends_with("(after 2 attempt(s))"),
            "{error}"
        );
    }

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
                        "is_passthrough": true,
                        "variables": {"region": "eu", "limit": 5}
                    }))
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let source = api_source(format!("http://{addr}/"), 1);
        let identity = Identity {
            flow_id: "f1".into(),
            step_id: "step_1".into(),
            ..Identity::default()
        };
        let step = load(&source, &identity).await.unwrap();
        assert_eq!(step.config.account.as_deref(), Some("f1/step_1"));
        assert_eq!(step.snapshot, json!({"since": "2024"}));
        assert!(step.is_passthrough);
        assert_eq!(
            Value::Object(step.flow_variables),
            json!({"region": "eu", "limit": 5})
        );
    }
}
