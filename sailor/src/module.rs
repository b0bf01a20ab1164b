//! The extension point: the [`Trigger`] and [`Action`] traits and the [`Context`] they get.
//!
//! A module sees the message, the config, the snapshot and a context holding the emitter, the
//! authenticated HTTP client, the flow variables and where it runs ([`Invocation`]); never
//! tokens, channels or acks. Returning `Err` makes the runtime emit exactly one error event;
//! [`Context::emit_error`] reports an error and lets the module go on.
//!
//! Modules run on one thread by default (a current-thread tokio runtime), like sailor-nodejs'
//! on Node's: blocking calls and long computations belong in `tokio::task::spawn_blocking`,
//! or the process is started with `TOKIO_WORKER_THREADS` for tokio's multi-thread runtime.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::config::StepConfig;
use crate::emitter::{EmitError, Emitter};
use crate::event::ErrorReport;
use crate::http::{AuthClient, AuthError, BodyError, BodyTooLarge};
use crate::message::Message;
use crate::redact::Redactor;

/// A module's own error, for [`ProcessError::Named`]: any error type, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a trigger or action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// A config field is missing or wrong.
    #[error("the step config is invalid: {0}")]
    Config(String),
    /// The incoming message cannot be processed.
    #[error("the input message is invalid: {0}")]
    Input(String),
    /// The authenticated call failed (token refresh, transport, rejection).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API answered with a status the module does not accept.
    #[error("the API answered HTTP {status}: {excerpt}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        excerpt: String,
    },
    /// The API's response could not be read.
    #[error("reading the API response failed")]
    Response(#[source] reqwest::Error),
    /// The API's response body is larger than the step's cap (`max_response_bytes`). It was
    /// read no further than the cap; the same call would get the same answer, so the message
    /// fails rather than being retried.
    #[error("the API answered HTTP {status} with a body too large to read")]
    ResponseTooLarge {
        /// HTTP status.
        status: u16,
        /// The cap it passed.
        #[source]
        source: BodyTooLarge,
    },
    /// An event could not be emitted.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// An error the module names itself, e.g. `RecordNotFound`: the name goes into the error
    /// event, where the platform's error store and retry rules can tell it apart.
    #[error("{message}")]
    Named {
        /// The error's name in the error event.
        name: String,
        /// What went wrong, in words for the integration engineer.
        message: String,
        /// The cause, if any; its text joins the event's `stack`.
        #[source]
        source: Option<BoxError>,
    },
}

impl ProcessError {
    /// An error named by the module: `name` goes into the error event, `message` is its text.
    ///
    /// ```
    /// use sailor::ProcessError;
    ///
    /// let error = ProcessError::named("RecordNotFound", "no contact has the id 42");
    /// assert_eq!(error.name(), "RecordNotFound");
    /// assert_eq!(error.to_string(), "no contact has the id 42");
    /// ```
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Named {
            name: name.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An error named by the module, caused by `source`.
    pub fn named_with_source(
        name: impl Into<String>,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Named {
            name: name.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The error of a service method the function does not provide, named as sailor-nodejs
    /// words it.
    pub fn not_provided(method: &str) -> Self {
        Self::named(
            "MethodNotFound",
            format!("Method \"{method}\" is not found in this action or trigger"),
        )
    }

    /// The error's name in the error event, for the platform's error store.
    pub fn name(&self) -> &str {
        match self {
            Self::Config(_) => "ConfigurationError",
            Self::Input(_) => "InvalidInput",
            Self::Auth(error) if error.is_reauthorization_required() => "ReauthorizationRequired",
            Self::Auth(_) => "AuthenticatedRequestError",
            Self::Api { .. } => "ApiError",
            Self::Response(_) => "ResponseError",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Emit(_) => "EmitError",
            Self::Named { name, .. } => name,
        }
    }

    /// The error for a body of an answer with `status` that [`crate::http::read_capped`]
    /// could not read.
    pub fn reading_body(status: u16, error: BodyError) -> Self {
        match error {
            BodyError::TooLarge(source) => Self::ResponseTooLarge { status, source },
            BodyError::Read(error) => Self::Response(error),
        }
    }
}

/// Where a function runs: its flow and step, and the message's place in the flow. The worker
/// fills it from the `ELASTICIO_*` identity and the delivery's headers; `run` leaves the flow
/// and step empty and makes up the message's ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invocation {
    /// The flow (`ELASTICIO_FLOW_ID`, sent as `taskId`).
    pub flow_id: Option<String>,
    /// The step (`ELASTICIO_STEP_ID`).
    pub step_id: Option<String>,
    /// The incoming message's `messageId`.
    pub message_id: Option<String>,
    /// The `messageId` of the message the previous step emitted this one from.
    pub parent_message_id: Option<String>,
    /// The flow execution the message belongs to (`threadId`).
    pub thread_id: Option<String>,
}

impl Invocation {
    /// The invocation of a step of a flow.
    pub fn of_step(flow_id: impl Into<String>, step_id: impl Into<String>) -> Self {
        Self {
            flow_id: Some(flow_id.into()),
            step_id: Some(step_id.into()),
            ..Self::default()
        }
    }

    /// The same invocation, for the message with these ids.
    pub fn for_message(
        mut self,
        message_id: Option<String>,
        parent_message_id: Option<String>,
        thread_id: Option<String>,
    ) -> Self {
        self.message_id = message_id;
        self.parent_message_id = parent_message_id;
        self.thread_id = thread_id;
        self
    }
}

/// What a module may use while processing one message.
#[derive(Clone, Debug)]
pub struct Context {
    emitter: Emitter,
    client: reqwest::Client,
    http: Option<AuthClient>,
    redactor: Arc<Redactor>,
    invocation: Invocation,
    flow_variables: Arc<Map<String, Value>>,
}

impl Context {
    /// A context with the given emitter, plain HTTP client (see [`Self::client`]) and, when the
    /// config holds a token set, authenticated client.
    pub fn new(emitter: Emitter, client: reqwest::Client, http: Option<AuthClient>) -> Self {
        Self {
            emitter,
            client,
            http,
            redactor: Arc::default(),
            invocation: Invocation::default(),
            flow_variables: Arc::default(),
        }
    }

    /// The same context, quoting API bodies through `redactor` (a step's contexts share one).
    pub fn with_redactor(mut self, redactor: impl Into<Arc<Redactor>>) -> Self {
        self.redactor = redactor.into();
        self
    }

    /// The same context, running as `invocation`.
    pub fn with_invocation(mut self, invocation: Invocation) -> Self {
        self.invocation = invocation;
        self
    }

    /// The same context, with the flow's variables (a step's contexts share them).
    pub fn with_flow_variables(mut self, variables: impl Into<Arc<Map<String, Value>>>) -> Self {
        self.flow_variables = variables.into();
        self
    }

    /// Takes the account's secrets out of API bodies a module quotes in errors or logs
    /// (see [`crate::excerpt::excerpt`]).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Where events go.
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// The step's HTTP client, without credentials: for APIs that take an API key or basic
    /// auth, which the module adds itself. It pools connections across messages and has the
    /// runtime's timeouts; clone it freely.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The OAuth2-authenticated client (bearer token, refresh on 401, `updateKeys`, replay);
    /// an error when the config has no `oauth` token set.
    pub fn http(&self) -> Result<&AuthClient, ProcessError> {
        self.http
            .as_ref()
            .ok_or(ProcessError::Auth(AuthError::NoTokenSet))
    }

    /// The flow, step and message this call processes.
    pub fn invocation(&self) -> &Invocation {
        &self.invocation
    }

    /// The step's id, when running in a flow.
    pub fn step_id(&self) -> Option<&str> {
        self.invocation.step_id.as_deref()
    }

    /// The flow's id, when running in a flow.
    pub fn flow_id(&self) -> Option<&str> {
        self.invocation.flow_id.as_deref()
    }

    /// The flow's variables (the step definition's `variables`), as sailor-nodejs'
    /// `getFlowVariables()` gives them; empty when the flow has none.
    pub fn flow_variables(&self) -> &Map<String, Value> {
        &self.flow_variables
    }

    /// Emits an error event for `error` and lets the module go on, e.g. to report one bad
    /// item of a batch and process the rest. The event is built as for a returned `Err`
    /// (name, message, causes), with the account's secrets taken out. The worker rejects the
    /// input once processing ends, as sailor-nodejs does after an emitted error.
    pub async fn emit_error(&self, error: &ProcessError) -> Result<(), EmitError> {
        self.emitter.error(self.report(error)).await
    }

    /// The error event's content for `error`, redacted.
    pub(crate) fn report(&self, error: &ProcessError) -> ErrorReport {
        let mut report = ErrorReport::from_error(error.name(), error);
        // Any text in the chain may quote an API or token-endpoint body.
        report.message = self.redactor.redact(&report.message);
        report.stack = self.redactor.redact(&report.stack);
        report
    }
}

/// A trigger: starts a flow (e.g. polls an API on the platform's schedule).
///
/// Only [`Trigger::process`] is required. The other methods are sailor-nodejs' optional module
/// functions, with the same lifecycle: [`Trigger::startup`] once per flow start when the
/// platform asks (`ELASTICIO_STARTUP_REQUIRED`), its result stored by the platform and handed
/// to [`Trigger::shutdown`] when the flow stops (`ELASTICIO_HOOK_SHUTDOWN`);
/// [`Trigger::init`] each time a worker starts, before its first message; and the service
/// methods behind dynamic metadata and select views, [`Trigger::meta_model`] and
/// [`Trigger::select_model`]. A hook's context can call the API and emit `updateKeys` (through
/// a refresh), but emits no messages.
#[async_trait]
pub trait Trigger: Send + Sync + 'static {
    /// Processes one message; emits data and snapshot events through `ctx`.
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError>;

    /// Once per flow start (e.g. registers a webhook); what it returns is stored for
    /// [`Self::shutdown`].
    async fn startup(&self, _config: &StepConfig, _ctx: &Context) -> Result<Value, ProcessError> {
        Ok(Value::Object(Map::new()))
    }

    /// Each time a worker starts, before its first message.
    async fn init(&self, _config: &StepConfig, _ctx: &Context) -> Result<(), ProcessError> {
        Ok(())
    }

    /// When the flow stops, with what [`Self::startup`] returned.
    async fn shutdown(
        &self,
        _config: &StepConfig,
        _startup_state: &Value,
        _ctx: &Context,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// `getMetaModel`: the `{in, out}` JSON schemas for this config.
    async fn meta_model(
        &self,
        _config: &StepConfig,
        _ctx: &Context,
    ) -> Result<Value, ProcessError> {
        Err(ProcessError::not_provided("getMetaModel"))
    }

    /// A select view's choices, by the model method component.json names (`model`).
    async fn select_model(
        &self,
        method: &str,
        _config: &StepConfig,
        _ctx: &Context,
    ) -> Result<Value, ProcessError> {
        Err(ProcessError::not_provided(method))
    }
}

/// An action: does something with each message of a flow.
///
/// Only [`Action::process`] is required; the other methods are as [`Trigger`]'s.
#[async_trait]
pub trait Action: Send + Sync + 'static {
    /// Processes one message; emits data (or rebound) events through `ctx`.
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError>;

    /// As [`Trigger::startup`].
    async fn startup(&self, _config: &StepConfig, _ctx: &Context) -> Result<Value, ProcessError> {
        Ok(Value::Object(Map::new()))
    }

    /// As [`Trigger::init`].
    async fn init(&self, _config: &StepConfig, _ctx: &Context) -> Result<(), ProcessError> {
        Ok(())
    }

    /// As [`Trigger::shutdown`].
    async fn shutdown(
        &self,
        _config: &StepConfig,
        _startup_state: &Value,
        _ctx: &Context,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// As [`Trigger::meta_model`].
    async fn meta_model(
        &self,
        _config: &StepConfig,
        _ctx: &Context,
    ) -> Result<Value, ProcessError> {
        Err(ProcessError::not_provided("getMetaModel"))
    }

    /// As [`Trigger::select_model`].
    async fn select_model(
        &self,
        method: &str,
        _config: &StepConfig,
        _ctx: &Context,
    ) -> Result<Value, ProcessError> {
        Err(ProcessError::not_provided(method))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::clock;
    use crate::emitter::CollectingSink;
    use crate::event::Event;
    use crate::registry::Registry;
    use crate::step::{Outcome, Step};

    /// Emits an error for each item without an `id`, data for the rest, and echoes where it
    /// runs: what a module sees of its context.
    struct Items;

    #[async_trait]
    impl Action for Items {
        async fn process(
            &self,
            message: &Message,
            _: &StepConfig,
            _: &Value,
            ctx: &Context,
        ) -> Result<(), ProcessError> {
            for item in message.body["items"].as_array().into_iter().flatten() {
                if item.get("id").is_none() {
                    let cause = std::io::Error::other("the record has no id");
                    let error =
                        ProcessError::named_with_source("MalformedItem", "item skipped", cause);
                    ctx.emit_error(&error).await?;
                    continue;
                }
                ctx.emitter()
                    .data(Message::with_body(json!({
                        "item": item,
                        "step": ctx.step_id(),
                        "flow": ctx.flow_id(),
                        "thread": ctx.invocation().thread_id,
                        "region": ctx.flow_variables().get("region"),
                    })))
                    .await?;
            }
            if message.body["fail"] == true {
                return Err(ProcessError::named(
                    "Gone",
                    "the list is gone: key=s3cr3t-api-key",
                ));
            }
            Ok(())
        }
    }

    fn step() -> Step {
        let mut registry = Registry::new();
        registry.action("items", Items);
        let config = StepConfig::from_value(json!({"client_secret": "s3cr3t-api-key"})).unwrap();
        let mut variables = Map::new();
        variables.insert("region".into(), json!("eu"));
        Step::new(&registry, "items", config, clock::system())
            .unwrap()
            .with_flow_variables(variables)
    }

    async fn run(body: Value) -> (Outcome, Vec<Event>) {
        let sink = CollectingSink::new();
        let invocation = Invocation::of_step("flow-9", "step_3").for_message(
            Some("m-1".into()),
            Some("p-1".into()),
            Some("t-1".into()),
        );
        let outcome = step()
            .process_as(
                &Message::with_body(body),
                &json!({}),
                &Emitter::new(Arc::new(sink.clone())),
                invocation,
            )
            .await;
        (outcome, sink.events())
    }

    #[tokio::test]
    async fn a_module_reports_a_named_error_and_goes_on() {
        let (outcome, events) = run(json!({"items": [{"id": 1}, {"x": 2}, {"id": 3}]})).await;
        assert_eq!(outcome, Outcome::Completed);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind().as_str()).collect();
        assert_eq!(kinds, ["data", "error", "data"]);
        let Event::Error(report) = &events[1] else {
            unreachable!()
        };
        assert_eq!(report.name, "MalformedItem");
        assert_eq!(report.message, "item skipped: the record has no id");
        assert_eq!(
            report.stack,
            "item skipped\ncaused by: the record has no id"
        );
    }

    #[tokio::test]
    async fn the_context_tells_the_flow_step_thread_and_variables() {
        let (_, events) = run(json!({"items": [{"id": 1}]})).await;
        let Event::Data(message) = &events[0] else {
            unreachable!()
        };
        assert_eq!(
            message.body,
            json!({"item": {"id": 1}, "step": "step_3", "flow": "flow-9", "thread": "t-1",
                   "region": "eu"})
        );
    }

    #[tokio::test]
    async fn a_returned_named_error_keeps_its_name_and_loses_the_secrets() {
        let (outcome, events) = run(json!({"fail": true})).await;
        let Outcome::Failed { report, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(report.name, "Gone");
        assert!(
            !report.message.contains("s3cr3t-api-key"),
            "{}",
            report.message
        );
        assert_eq!(events.len(), 1);
    }
}
