//! `service <METHOD>`: elastic.io's service mode (sailor-nodejs' `runService.js`), for the
//! methods the platform calls outside a flow: `verifyCredentials`, `getMetaModel` (a
//! function's dynamic `{in, out}` schemas) and `selectModel` (a select view's choices).
//!
//! The environment is sailor-nodejs': `ELASTICIO_CFG` (the config), `ELASTICIO_POST_RESULT_URL`
//! (where the answer goes, required), `ELASTICIO_ACTION_OR_TRIGGER` (the function, for the
//! model methods) and `ELASTICIO_GET_MODEL_METHOD` (for `selectModel`). The answer,
//! `{"status":"success","data":...}` or `{"status":"error","data":{"message":...}}`, is POSTed
//! there and printed on stdout. Keys a refresh rotates meanwhile go where they go from the
//! credential check ([`crate::platform_keys::StandaloneKeys`]): the broker, the platform API. Exit 0 once the answer is delivered (whatever its
//! status, as sailor-nodejs), 1 when it could not be, 2 for an unusable environment.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::{Value, json};

use super::bad_input;
use super::verify::{self, VerifyArgs, env_var};
use crate::clock;
use crate::emitter::{CollectingSink, Emitter};
use crate::module::Invocation;
use crate::platform_keys::StandaloneKeys;
use crate::registry::Registry;
use crate::step::Step;
use crate::verify::{
    CFG_ENV, DEFAULT_TIMEOUT, POST_RESULT_URL_ENV, ResultUrl, Verifier, parse_step_config,
    service_error,
};

/// The function whose model method is asked for.
pub const ACTION_OR_TRIGGER_ENV: &str = "ELASTICIO_ACTION_OR_TRIGGER";
/// The select-model method's name.
pub const GET_MODEL_METHOD_ENV: &str = "ELASTICIO_GET_MODEL_METHOD";

/// A service method, spelt as the platform spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum ServiceMethod {
    /// The credential check, with the component's verifier.
    VerifyCredentials,
    /// A function's dynamic metadata.
    GetMetaModel,
    /// A select view's choices.
    SelectModel,
}

/// Runs `method` as the environment says.
pub(super) async fn run(
    method: ServiceMethod,
    registry: &Registry,
    verifier: Arc<dyn Verifier>,
) -> ExitCode {
    if method == ServiceMethod::VerifyCredentials {
        if env(POST_RESULT_URL_ENV).is_none() {
            return bad_input(format!("{POST_RESULT_URL_ENV} is not provided"));
        }
        return verify::run(VerifyArgs::default(), verifier).await;
    }
    let url = match env(POST_RESULT_URL_ENV).map(|url| ResultUrl::parse(&url)) {
        Some(Ok(url)) => url,
        Some(Err(error)) => return bad_input(error),
        None => return bad_input(format!("{POST_RESULT_URL_ENV} is not provided")),
    };
    let answer = match model(method, registry).await {
        Ok(data) => json!({"status": "success", "data": data}),
        Err(message) => service_error(&message),
    };
    println!("{answer}");
    match url.post(&answer, DEFAULT_TIMEOUT).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the result could not be posted to {POST_RESULT_URL_ENV}: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs a model method; the error is the message the platform shows.
async fn model(method: ServiceMethod, registry: &Registry) -> Result<Value, String> {
    let config = env(CFG_ENV).ok_or_else(|| format!("{CFG_ENV} is not provided"))?;
    let function = env(ACTION_OR_TRIGGER_ENV)
        .ok_or_else(|| format!("{ACTION_OR_TRIGGER_ENV} is not provided"))?;
    let model_method = match method {
        ServiceMethod::SelectModel => Some(
            env(GET_MODEL_METHOD_ENV)
                .ok_or_else(|| format!("{GET_MODEL_METHOD_ENV} is not provided"))?,
        ),
        _ => None,
    };
    let config: Value =
        serde_json::from_str(&config).map_err(|_| "Unable to parse CFG".to_owned())?;
    let config = parse_step_config(config).map_err(|error| error.to_string())?;
    let step = Step::new(registry, &function, config, clock::system())
        .map_err(|error| error.to_string())?;
    let keys = StandaloneKeys::from_env(step.config().account.as_deref(), &function)?;
    let sink = keys
        .sink()
        .unwrap_or_else(|| Arc::new(CollectingSink::new()));
    let ctx = step.context(&Emitter::new(sink), Invocation::default());
    let call = async {
        match &model_method {
            Some(name) => {
                step.function()
                    .select_model(name, step.config(), &ctx)
                    .await
            }
            None => step.function().meta_model(step.config(), &ctx).await,
        }
    };
    let result = tokio::time::timeout(DEFAULT_TIMEOUT + Duration::from_secs(30), call).await;
    keys.close().await;
    let asked = model_method.as_deref().unwrap_or("getMetaModel");
    match result {
        Ok(Ok(data)) => Ok(data),
        // sailor-nodejs' words, with the function named.
        Ok(Err(error)) if error.name() == "MethodNotFound" => Err(format!(
            "Method \"{asked}\" is not found in \"{function}\" action or trigger"
        )),
        Ok(Err(error)) => Err(ctx.report(&error).message),
        Err(_) => Err("the method did not answer in time".to_owned()),
    }
}

/// An env var's value; `None` when unset, empty or not UTF-8.
fn env(name: &str) -> Option<String> {
    env_var(name).ok().flatten()
}
