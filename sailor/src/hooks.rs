//! The lifecycle hooks, as sailor-nodejs runs them: `startup` once per flow start, `init` each
//! time a worker starts, `shutdown` when the flow stops.
//!
//! - With `ELASTICIO_STARTUP_REQUIRED`, the worker runs the function's `startup` before
//!   consuming and stores what it returns with the platform API
//!   (`POST {API_URI}/sailor-support/hooks/task/{FLOW_ID}/startup/data`; data already there,
//!   409, is deleted and stored again).
//! - Then, always, `init`.
//! - With `ELASTICIO_HOOK_SHUTDOWN`, `worker` consumes nothing: it reads the stored data
//!   (`GET`), runs `shutdown` with it, and deletes it (`DELETE`).
//!
//! A hook that fails stops the worker with exit 1 (the start-up error is also published on
//! the error routing key). A hook's context can call the API through the step's clients;
//! keys a refresh rotates during a hook go out as a standalone `updateKeys` message.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::emitter::{CollectingSink, Emitter, EventSink};
use crate::event::ErrorReport;
use crate::http::BodyCap;
use crate::module::{Context, Invocation, ProcessError};
use crate::platform::{self, StepSourceError};
use crate::platform_api::PlatformApiError;
use crate::platform_keys::StandaloneKeys;
use crate::registry::Registry;
use crate::settings::{HookSettings, Identity, PlatformApi, Settings};
use crate::step::{Step, UnknownFunction};

/// The most startup data the platform may hand back.
const STARTUP_DATA_CAP: BodyCap = BodyCap::new(
    16 * 1024 * 1024,
    "for the startup hook's data from the platform API (fixed)",
);

/// Why a hook could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The function's hook returned an error.
    #[error("the {hook} hook failed: {} ({})", report.message, report.name)]
    Failed {
        /// `startup`, `init` or `shutdown`.
        hook: &'static str,
        /// The error, redacted.
        report: ErrorReport,
    },
    /// The platform API did not answer.
    #[error("the startup data could not be {action}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: PlatformApiError,
    },
    /// The platform API refused.
    #[error("the startup data could not be {action}: the platform API answered HTTP {status}")]
    Refused {
        /// What was being done.
        action: &'static str,
        /// Its answer.
        status: StatusCode,
    },
    /// The stored startup data is not JSON.
    #[error("the startup data the platform API holds is not JSON")]
    NotJson,
    /// The step definition could not be loaded (shutdown mode).
    #[error(transparent)]
    StepSource(#[from] StepSourceError),
    /// `ELASTICIO_FUNCTION` names no compiled-in function (shutdown mode).
    #[error(transparent)]
    UnknownFunction(#[from] UnknownFunction),
}

/// The startup hook's data at the platform API, for one flow.
#[derive(Debug)]
pub struct StartupData<'a> {
    api: &'a PlatformApi,
    path: String,
}

impl<'a> StartupData<'a> {
    /// The data of the flow `flow_id`.
    pub fn new(api: &'a PlatformApi, flow_id: &str) -> Self {
        Self {
            api,
            path: format!("/sailor-support/hooks/task/{flow_id}/startup/data"),
        }
    }

    /// Stores `data`, replacing what a previous start stored.
    pub async fn create(&self, data: &Value) -> Result<(), HookError> {
        match self.request(Method::POST, Some(data), "stored").await? {
            (StatusCode::CONFLICT, _) => {
                tracing::warn!(message = "Startup data already exists; rewriting it.");
                self.delete().await?;
                self.request(Method::POST, Some(data), "stored")
                    .await
                    .and_then(|answer| success(answer, "stored"))
                    .map(drop)
            }
            answer => success(answer, "stored").map(drop),
        }
    }

    /// The stored data.
    pub async fn retrieve(&self) -> Result<Value, HookError> {
        let answer = self.request(Method::GET, None, "read").await?;
        let body = success(answer, "read")?;
        if body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(&body).map_err(|_| HookError::NotJson)
    }

    /// Deletes the stored data.
    pub async fn delete(&self) -> Result<(), HookError> {
        let answer = self.request(Method::DELETE, None, "deleted").await?;
        success(answer, "deleted").map(drop)
    }

    async fn request(
        &self,
        method: Method,
        body: Option<&Value>,
        action: &'static str,
    ) -> Result<(StatusCode, Vec<u8>), HookError> {
        let answer = self
            .api
            .send(method, &self.path, body, STARTUP_DATA_CAP)
            .await
            .map_err(|source| HookError::Store { action, source })?;
        Ok((answer.status, answer.body))
    }
}

/// The body of a 2xx answer; any other status is refused.
fn success(
    (status, body): (StatusCode, Vec<u8>),
    action: &'static str,
) -> Result<Vec<u8>, HookError> {
    if status.is_success() {
        Ok(body)
    } else {
        Err(HookError::Refused { action, status })
    }
}

/// Runs the step's `startup` hook when the settings ask for it, storing its result, then its
/// `init` hook: what a worker does before consuming. Keys a refresh rotates meanwhile go to
/// `keys` (the worker's keys destinations).
pub async fn before_consuming(
    settings: &Settings,
    step: &Step,
    keys: Arc<dyn EventSink>,
) -> Result<(), HookError> {
    let ctx = hook_context(step, &settings.identity, keys);
    async {
        if settings.startup_required {
            let api = settings
                .platform_api
                .as_ref()
                .expect("the settings refuse ELASTICIO_STARTUP_REQUIRED without the platform API");
            let state = step
                .function()
                .startup(step.config(), &ctx)
                .await
                .map_err(|error| failed("startup", &ctx, &error))?;
            StartupData::new(api, &settings.identity.flow_id)
                .create(&state)
                .await?;
            tracing::info!(message = "Startup hook ran; its data is stored.");
        }
        step.function()
            .init(step.config(), &ctx)
            .await
            .map_err(|error| failed("init", &ctx, &error))
    }
    .await
}

/// `worker` with `ELASTICIO_HOOK_SHUTDOWN`: runs the step's `shutdown` hook with the stored
/// startup data, then deletes the data.
pub async fn shutdown(settings: &HookSettings, registry: &Registry) -> Result<(), HookError> {
    let step = platform::load(&settings.step_source, &settings.identity)
        .await?
        .into_step(registry, &settings.function)?
        .step;
    let data = StartupData::new(&settings.platform_api, &settings.identity.flow_id);
    let state = data.retrieve().await?;
    let keys = StandaloneKeys::from_env(step.config().account.as_deref(), step.name())
        .inspect_err(|problem| {
            tracing::warn!(message = "Keys rotated during the shutdown hook go nowhere.", %problem);
        })
        .ok();
    let sink = keys
        .as_ref()
        .and_then(StandaloneKeys::sink)
        .unwrap_or_else(|| Arc::new(CollectingSink::new()));
    let ctx = hook_context(&step, &settings.identity, sink);
    let ran = step
        .function()
        .shutdown(step.config(), &state, &ctx)
        .await
        .map_err(|error| failed("shutdown", &ctx, &error));
    if let Some(keys) = &keys {
        keys.close().await;
    }
    ran?;
    data.delete().await?;
    tracing::info!(message = "Shutdown hook ran; the startup data is deleted.");
    Ok(())
}

/// A hook's context: the step's clients, its flow and step, events going to `sink`.
fn hook_context(step: &Step, identity: &Identity, sink: Arc<dyn EventSink>) -> Context {
    let invocation = Invocation::of_step(&identity.flow_id, &identity.step_id);
    step.context(&Emitter::new(sink), invocation)
}

fn failed(hook: &'static str, ctx: &Context, error: &ProcessError) -> HookError {
    HookError::Failed {
        hook,
        report: ctx.report(error),
    }
}
