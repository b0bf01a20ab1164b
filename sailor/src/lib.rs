//! sailor-rs: an elastic.io-model component runtime with OAuth2 key rotation.
//!
//! elastic.io runs each step of an integration flow as a worker of the step's component: the
//! platform hands the worker its config (`cfg`, whose `oauth` field holds the token set the user
//! authorised) and its messages over AMQP, and the worker runs the step's trigger or action on
//! each. This crate is that worker, as sailor-nodejs and sailor-jvm are for Node.js and Java: a
//! component is a crate that depends on it, registers its functions, and calls [`entry`] from
//! its `main`. The runtime knows no component.
//!
//! # A component in a few lines
//!
//! ```no_run
//! use sailor::prelude::*;
//!
//! /// An action that echoes its input.
//! struct Echo;
//!
//! #[async_trait]
//! impl Action for Echo {
//!     async fn process(
//!         &self,
//!         message: &Message,
//!         _config: &StepConfig,
//!         _snapshot: &Value,
//!         ctx: &Context,
//!     ) -> Result<(), ProcessError> {
//!         ctx.emitter().data(Message::with_body(message.body.clone())).await?;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = Registry::new();
//!     registry.action("echo", Echo);
//!     sailor::entry::Component::new(registry)
//!         .descriptor(COMPONENT_JSON) // include_str!("../component.json") in a real crate
//!         .main()
//! }
//! # const COMPONENT_JSON: &str = r#"{"title": "Echo", "description": "Echoes.",
//! #     "actions": {"echo": {"title": "Echo", "metadata": {"in": {}, "out": {}}}}}"#;
//! ```
//!
//! The binary then has the subcommands `worker` (production, configured by the `ELASTICIO_*`
//! environment), `run` (one message through one function, locally), `validate` (component.json
//! against the registry), `verify` (the credential check, with the [`verify::Verifier`] of
//! the component's choosing) and `service` (elastic.io's service mode: `verifyCredentials`,
//! `getMetaModel`, `selectModel`).
//!
//! # Layout
//!
//! A message flows through the crate like this:
//!
//! 1. **In**: [`local`] reads it from a file (`run`); the worker reads it from the step's AMQP
//!    queue.
//! 2. **Function**: [`step::Step`] looks the trigger or action up in the [`registry`] and calls
//!    it with the message, the [`config::StepConfig`], the snapshot and a [`module::Context`].
//! 3. **HTTP**: the module calls the API through [`http::AuthClient`], which injects the
//!    bearer token and, on 401, refreshes it once through the account's [`auth::TokenCache`]
//!    ([`auth::refresh`] talks to the token endpoint), emits `updateKeys` with the whole
//!    [`auth::TokenSet`], and replays the request. Response bodies are read through
//!    [`http::read_capped`], which stops at a byte cap instead of buffering any answer whole.
//! 4. **Events out**: the module emits [`event::Event`]s through its [`emitter::Emitter`];
//!    a module's `Err` becomes exactly one error event.
//! 5. **Ack**: in the worker, [`amqp::sink`] writes each event on the wire (encrypted with
//!    [`crypto`]) and waits for the broker's confirm; then [`worker`] acks the delivery, or
//!    rejects it when it caused an error event.
//!
//! The worker ([`worker::run`]) reads its [`settings`] from the `ELASTICIO_*` environment,
//! loads the step definition through [`platform`], and drives [`step::Step`] per delivery
//! over the [`amqp`] transport (read and write connections, consumer, confirming publisher).
//! Processes sharing an account (replicas, other steps, `verify_credentials`) share its token
//! set through the broker too: [`amqp::account_keys`] adopts newer keys, reads the newest at
//! start-up, and hands the token cache a lease around each refresh.
//!
//! Rotated keys also reach the platform API (`PUT /v1/accounts/{id}`) when it is configured
//! ([`platform_keys`]); [`platform_api`] is the platform API's client (basic auth, retries),
//! which the step fetch and the lifecycle [`hooks`] (`startup`, `init`, `shutdown`) use.
//! Publishes wait under the platform's rate limits ([`throttle`]).
//!
//! [`telemetry`] is what an operator watches: Prometheus metrics counted along that path,
//! the liveness and readiness behind `/healthz` and `/readyz`, and the log line formats.
//!
//! Inputs whose body lives in object storage (lightweight messages) are read back through
//! [`object_storage`] by [`lightweight`] before the function sees them, and large outputs are
//! stored there when the platform asks.
//!
//! Supporting modules: [`secret`] (redacted secret types), [`redact`] (known secrets taken
//! out of quoted API bodies before they are logged or emitted), [`excerpt`] (the start of a
//! body, redacted, for error messages), [`message`] (the message model), [`descriptor`]
//! (`component.json` and its validation against a registry), [`clock`] (injectable time) and
//! [`verify`] (the credential check: the [`verify::Verifier`] trait, its OAuth2 default, and
//! the service-mode answer).

pub mod amqp;
pub mod auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod descriptor;
pub mod emitter;
#[cfg(feature = "cli")]
pub mod entry;
pub mod event;
pub mod excerpt;
pub mod hooks;
pub mod http;
pub mod lightweight;
pub mod local;
pub mod message;
pub mod module;
pub mod object_storage;
pub mod platform;
pub mod platform_api;
pub mod platform_keys;
pub mod redact;
pub mod registry;
pub mod secret;
pub mod settings;
pub mod step;
pub mod telemetry;
pub mod throttle;
pub mod verify;
mod wake_gate;
pub mod worker;

pub use config::StepConfig;
pub use emitter::{Emitter, EventSink};
pub use event::Event;
pub use message::Message;
pub use module::{Action, Context, ProcessError, Trigger};
pub use registry::Registry;
pub use verify::{OAuth2Verifier, Verification, Verifier};

// What a component's code needs besides this crate, so that one dependency is enough.
pub use async_trait::async_trait;
pub use reqwest;
pub use serde_json;
pub use serde_json::{Value, json};
pub use url::Url;

/// The process's allocator, with the default feature `mimalloc`: the worker allocates and frees
/// a few dozen small buffers per message (JSON, headers, frames), which mimalloc serves with
/// a fifth less CPU than glibc's malloc. Disable default features to bring your own.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Everything a trigger, an action or a verifier usually names, in one `use`.
pub mod prelude {
    pub use crate::async_trait;
    pub use crate::config::StepConfig;
    pub use crate::http::AuthClient;
    pub use crate::message::Message;
    pub use crate::module::{Action, Context, ProcessError, Trigger};
    pub use crate::registry::Registry;
    pub use crate::verify::{Verification, Verifier, VerifyOptions};
    pub use reqwest::{Method, StatusCode};
    pub use serde_json::{Value, json};
}
