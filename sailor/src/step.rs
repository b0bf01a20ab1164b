//! A configured step: one function, its config and its account's token cache.
//!
//! This is the runtime core, independent of the broker: `component run`, the worker and the
//! demo all process messages through [`Step::process`], which turns a module's `Err` into
//! exactly one error event.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::auth::{RetryPolicy, TokenCache};
use crate::clock::Clock;
use crate::config::StepConfig;
use crate::emitter::Emitter;
use crate::event::ErrorReport;
use crate::http::{AuthClient, BaseUrl};
use crate::message::Message;
use crate::module::{Context, Invocation};
use crate::redact::Redactor;
use crate::registry::{Function, Registry};

/// The name is not a compiled-in function.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown function `{name}`; this component has: {}", known.join(", "))]
pub struct UnknownFunction {
    /// The name asked for.
    pub name: String,
    /// The names there are.
    pub known: Vec<String>,
}

/// How processing one message ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The function returned `Ok`.
    Completed,
    /// The function returned `Err`; its error event was emitted when `error_published`.
    Failed {
        /// The error as reported.
        report: ErrorReport,
        /// False when even the error event could not be emitted.
        error_published: bool,
    },
}

/// One trigger or action, ready to process messages.
#[derive(Clone)]
pub struct Step {
    name: String,
    function: Function,
    config: Arc<StepConfig>,
    tokens: Option<TokenCache>,
    http: reqwest::Client,
    flow_variables: Arc<Map<String, Value>>,
    /// `api_base_url`, parsed once for every message's client.
    base_url: Option<Arc<BaseUrl>>,
    /// The account's secrets, gathered once for every message's context.
    redactor: Arc<Redactor>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Step {
    /// The step running `name` from `registry` with `config`.
    pub fn new(
        registry: &Registry,
        name: &str,
        config: StepConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, UnknownFunction> {
        let function = registry.get(name).cloned().ok_or_else(|| UnknownFunction {
            name: name.to_owned(),
            known: registry.names().map(str::to_owned).collect(),
        })?;
        let tokens = TokenCache::from_config(&config, RetryPolicy::default(), clock);
        let base_url = config
            .api_base_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .map(|url| Arc::new(BaseUrl::new(url)));
        let redactor = Arc::new(Redactor::for_step(&config, tokens.clone()));
        Ok(Self {
            base_url,
            name: name.to_owned(),
            function,
            config: Arc::new(config),
            tokens,
            http: crate::http::api_http_client(),
            flow_variables: Arc::default(),
            redactor,
        })
    }

    /// Uses `tokens` as the account's cache, e.g. one shared with other steps of the account
    /// or one with a custom retry policy.
    pub fn with_token_cache(mut self, tokens: TokenCache) -> Self {
        self.redactor = Arc::new(Redactor::for_step(&self.config, Some(tokens.clone())));
        self.tokens = Some(tokens);
        self
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same step, giving its modules the flow's variables.
    pub fn with_flow_variables(mut self, variables: Map<String, Value>) -> Self {
        self.flow_variables = Arc::new(variables);
        self
    }

    /// The step config.
    pub fn config(&self) -> &StepConfig {
        &self.config
    }

    /// The account's token cache, when the config holds a token set.
    pub fn tokens(&self) -> Option<&TokenCache> {
        self.tokens.as_ref()
    }

    /// True when the function is a trigger.
    pub fn is_trigger(&self) -> bool {
        self.function.is_trigger()
    }

    /// The function itself, for its hooks and service methods.
    pub fn function(&self) -> &Function {
        &self.function
    }

    /// The context the function gets when running as `invocation`, emitting through
    /// `emitter`: the step's HTTP clients, flow variables and redactor.
    pub fn context(&self, emitter: &Emitter, invocation: Invocation) -> Context {
        let http = self.tokens.clone().map(|cache| {
            AuthClient::sharing_base(
                self.http.clone(),
                cache,
                emitter.clone(),
                self.base_url.clone(),
            )
        });
        Context::new(emitter.clone(), self.http.clone(), http)
            .with_redactor(self.redactor.clone())
            .with_invocation(invocation)
            .with_flow_variables(self.flow_variables.clone())
    }

    /// Processes one message, emitting through `emitter`, outside any flow (`run`, tests).
    pub async fn process(&self, message: &Message, snapshot: &Value, emitter: &Emitter) -> Outcome {
        let invocation = Invocation::default().for_message(message.id.clone(), None, None);
        self.process_as(message, snapshot, emitter, invocation)
            .await
    }

    /// Processes one message as `invocation`, emitting through `emitter`. A failure becomes
    /// exactly one error event, with the account's secrets taken out of its text.
    pub async fn process_as(
        &self,
        message: &Message,
        snapshot: &Value,
        emitter: &Emitter,
        invocation: Invocation,
    ) -> Outcome {
        let ctx = self.context(emitter, invocation);
        match self
            .function
            .process(message, &self.config, snapshot, &ctx)
            .await
        {
            Ok(()) => Outcome::Completed,
            Err(error) => {
                let report = ctx.report(&error);
                tracing::warn!(message = "Function failed.", function = %self.name, error = %report.message);
                let error_published = match emitter.error(report.clone()).await {
                    Ok(()) => true,
                    Err(emit_error) => {
                        tracing::error!(message = "Error event could not be emitted.", error = %emit_error);
                        false
                    }
                };
                Outcome::Failed {
                    report,
                    error_published,
                }
            }
        }
    }
}
