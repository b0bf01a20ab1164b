//! `component demo`: the component and the runtime against a loopback OAuth2 provider and API,
//! with no outside service.
//!
//! The demo starts the [`sandbox`] in-process (access tokens living three seconds,
//! refresh tokens rotated on every use, reuse revoking the grant) and drives `pollItems` and
//! `request` through [`sailor::step::Step::process`], the same path the worker takes, over five rounds
//! with pauses long enough for the access token to die three times. It prints each HTTP
//! exchange and each event on one timeline (tokens redacted to fingerprints), then checks
//! its own expectations ([`checks`]) and fails when any is broken.
//!
//! With `--amqp URI` ([`run_amqp`]) the same rounds go through RabbitMQ: the steps run as
//! workers behind a flow the demo declares, and what they publish is read back from the
//! broker (`amqp.rs`, `topology.rs`). Both modes share the story (`story.rs`), the printout
//! ([`journal`]) and the [`checks`]; the driver (`driver.rs`) is the only difference.
//!
//! The runtime's clock is held still during the demo. With a running clock the runtime
//! refreshes ahead of expiry and no 401 is ever seen; holding it still shows the path a
//! token revoked early, or a clock out of step with the provider's, takes: the API's 401,
//! one refresh, `updateKeys`, one replay.

mod amqp;
pub mod checks;
mod driver;
pub mod journal;
mod local;
mod setup;
mod story;
mod topology;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use sailor::settings::AmqpUri;
use setup::Setup;
use story::Demo;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long the sandbox's access tokens live.
    pub access_token_ttl: Duration,
    /// Items per page of the poll.
    pub page_size: u64,
    /// Whether the provider rotates refresh tokens. The demo expects rotation, so `false`
    /// makes it fail, which is how its own test shows that the checks bite.
    pub rotate_refresh_tokens: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            // Long enough that a loaded machine does not expire a token inside a round,
            // short enough that three expiries fit in about ten seconds.
            access_token_ttl: Duration::from_secs(3),
            page_size: 5,
            rotate_refresh_tokens: true,
        }
    }
}

/// The numbers of a demo run that went as it should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Items emitted by `pollItems`, all distinct.
    pub items: usize,
    /// Requests that reached the API, rejected ones included.
    pub api_calls: usize,
    /// API requests rejected for an expired token.
    pub rejections: usize,
    /// Requests to the token endpoint.
    pub token_requests: usize,
    /// `updateKeys` emitted: events in-process, messages read from the broker with `--amqp`.
    pub update_keys: usize,
}

/// Why the demo did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The loopback provider could not start.
    #[error("the loopback OAuth2 provider and API could not start")]
    Sandbox(#[source] std::io::Error),
    /// The demo's own step configs were refused (a bug in the demo).
    #[error("the demo's step config is invalid: {0}")]
    Setup(String),
    /// RabbitMQ could not be reached (`--amqp`).
    #[error("RabbitMQ at {host} (vhost {vhost}) is unreachable: {reason}")]
    Unreachable {
        /// `host:port`; the URI itself may hold a password.
        host: String,
        /// The vhost.
        vhost: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// RabbitMQ refused or dropped something the demo's flow needs (`--amqp`).
    #[error("RabbitMQ refused the demo's flow")]
    Broker(#[source] lapin::Error),
    /// The printout could not be written.
    #[error("the demo could not write its account")]
    Output(#[source] std::io::Error),
    /// The runtime did not behave as promised.
    #[error("{} of the demo's expectations failed: {}", .0.len(), .0.join("; "))]
    Expectations(Vec<String>),
}

/// Runs the demo in-process, writing the account of what happened to `out`; `Ok` only when
/// every expectation held.
pub async fn run(
    out: &mut (dyn Write + Send),
    options: &DemoOptions,
) -> Result<DemoSummary, DemoError> {
    let setup = Setup::start(options).await?;
    let driver = local::Local::new(setup.poll.clone(), setup.request.clone());
    Demo::new(options, setup, driver).run(out).await
}

/// Runs the demo through the RabbitMQ at `uri`: the steps as workers of a flow the demo
/// declares and deletes again. `Ok` only when every expectation held.
pub async fn run_amqp(
    out: &mut (dyn Write + Send),
    options: &DemoOptions,
    uri: &AmqpUri,
) -> Result<DemoSummary, DemoError> {
    let setup = Setup::start(options).await?;
    let flow = amqp::Flow::start(uri, setup.poll.clone(), setup.request.clone()).await?;
    Demo::new(options, setup, flow).run(out).await
}

fn say(out: &mut (dyn Write + Send), line: impl AsRef<str>) -> Result<(), DemoError> {
    writeln!(out, "{}", line.as_ref())
        .and_then(|()| out.flush())
        .map_err(DemoError::Output)
}

/// `component demo [--amqp URI]`: runs the demo, printing its story on stdout. Exit 0 when
/// every expectation held, 1 when one did not or the demo could not run, 2 for a bad URI.
pub async fn cli(amqp: Option<String>) -> ExitCode {
    let options = DemoOptions::default();
    let mut out = std::io::stdout();
    let ran = match amqp {
        None => run(&mut out, &options).await,
        Some(uri) => match AmqpUri::parse(&uri) {
            Ok(uri) => run_amqp(&mut out, &options, &uri).await,
            Err(problem) => {
                eprintln!("error: --amqp {problem}");
                return ExitCode::from(2);
            }
        },
    };
    match ran {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", sailor::event::chain_text(&error));
            ExitCode::from(1)
        }
    }
}
