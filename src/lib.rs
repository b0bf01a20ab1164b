//! An elastic.io-model component runtime with OAuth2 key rotation, and a REST API component.
//!
//! # Layout
//!
//! A message flows through the crate like this:
//!
//! 1. **In**: [`local`] reads it from a file (`component run`); the worker reads it from the
//!    step's AMQP queue.
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
//! [`telemetry`] is what an operator watches: Prometheus metrics counted along that path,
//! the liveness and readiness behind `/healthz` and `/readyz`, and the log line formats.
//!
//! Supporting modules: [`secret`] (redacted secret types), [`redact`] (known secrets taken
//! out of quoted API bodies before they are logged or emitted), [`message`] (the message model),
//! [`descriptor`] (`component.json` and its validation), [`clock`] (injectable time),
//! [`template`] (path templates), [`triggers`] and [`actions`] (the REST component),
//! [`verify`] (the credential check behind the `verify_credentials` binary: `GET verify_path`
//! through the same [`http::AuthClient`], answered as `{"verified": ...}`),
//! [`sandbox`] (a loopback OAuth2 provider and API) and [`demo`] (`component demo`, which
//! drives the component against the sandbox and checks what happened; with `--amqp` it runs
//! the steps as workers through RabbitMQ via [`worker::serve`]).

pub mod actions;
pub mod amqp;
pub mod auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod descriptor;
pub mod emitter;
pub mod event;
pub mod http;
pub mod local;
pub mod message;
pub mod module;
pub mod platform;
pub mod platform_keys;
pub mod redact;
pub mod registry;
pub mod sandbox;
pub mod secret;
pub mod settings;
pub mod step;
pub mod telemetry;
pub mod template;
pub mod throttle;
pub mod triggers;
pub mod verify;
pub mod worker;

pub use config::StepConfig;
pub use emitter::{Emitter, EventSink};
pub use event::Event;
pub use message::Message;
pub use module::{Action, Context, ProcessError, Trigger};
pub use registry::Registry;
