//! The process entry point: a component's whole `main` is a registry, its component.json and
//! one call.
//!
//! ```no_run
//! use sailor::entry::Component;
//! use sailor::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::new(); // .trigger("...", ...).action("...", ...)
//!     Component::new(registry)
//!         .descriptor(COMPONENT_JSON) // include_str!("../component.json") in a real crate
//!         .main()
//! }
//! # const COMPONENT_JSON: &str = r#"{"title": "t", "description": "d"}"#;
//! ```
//!
//! The binary then has these subcommands, with the same logging, signals, exit codes and
//! environment as elastic.io's sailors:
//!
//! | subcommand | does | exit codes |
//! | --- | --- | --- |
//! | `worker` | consumes the step's queue as the `ELASTICIO_*` environment says, until SIGTERM or SIGINT; logs JSON lines (`COMPONENT_LOG_FORMAT`) | 0 stopped, 1 failed, 2 unusable environment |
//! | `run --function F --config C [--message M] [--snapshot S]` | one message through one function, events as JSON lines on stdout | 0 no error event, 1 an error event, 2 unusable input |
//! | `validate [--descriptor FILE]` | component.json against the registry | 0 valid, 1 problems, 2 unreadable |
//! | `verify [--config FILE] [--timeout S]` | the credential check with the component's [`Verifier`] | 0 verified, 1 not verified, 2 unusable input |
//! | `service verifyCredentials\|getMetaModel\|selectModel` | elastic.io's service mode: the answer POSTed to `ELASTICIO_POST_RESULT_URL` | 0 answer delivered, 1 not delivered, 2 unusable environment |
//!
//! Logs go to stderr, filtered by `LOG_LEVEL` (default `info`). A component with commands of
//! its own (the REST component's `demo`) adds them with [`Component::main_with`]. Every
//! subcommand runs on a current-thread tokio runtime, or on tokio's multi-thread runtime
//! with `TOKIO_WORKER_THREADS` workers when that is set.

mod service;
mod verify;

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgMatches, FromArgMatches as _, Subcommand};

use crate::descriptor::Descriptor;
use crate::local::{self, RunRequest, RunStatus};
use crate::registry::Registry;
use crate::settings::{HookSettings, Settings};
use crate::telemetry::logs::{self, LogFormat};
use crate::verify::{OAuth2Verifier, Verifier};

pub use service::ServiceMethod;
pub use verify::{VerifyArgs, verify_credentials_main};

/// Exit code: a usage error or unusable input (clap's own code for bad arguments).
const EXIT_BAD_INPUT: u8 = 2;

/// A component, ready to run as a process: its functions, its component.json and its
/// credential check.
pub struct Component {
    registry: Registry,
    descriptor: Option<&'static str>,
    verifier: Arc<dyn Verifier>,
    name: Option<String>,
    version: Option<String>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("registry", &self.registry)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The runtime's own subcommands.
#[derive(Subcommand)]
enum RuntimeCommand {
    /// Production mode: consumes the step's queue as the ELASTICIO_* environment says, until
    /// SIGTERM or SIGINT.
    Worker,
    /// Runs one message through one trigger or action, printing events as JSON lines.
    Run {
        /// The trigger or action, as named in component.json.
        #[arg(long)]
        function: String,
        /// The step config (JSON).
        #[arg(long)]
        config: PathBuf,
        /// The incoming message (JSON); `-` reads stdin.
        #[arg(long)]
        message: Option<PathBuf>,
        /// The snapshot (JSON).
        #[arg(long)]
        snapshot: Option<PathBuf>,
    },
    /// Checks component.json against the functions compiled into this binary.
    Validate {
        /// The descriptor to check; defaults to ./component.json, else the embedded copy.
        #[arg(long)]
        descriptor: Option<PathBuf>,
    },
    /// Checks a credential (elastic.io's verifyCredentials): prints {"verified": ...}.
    Verify(VerifyArgs),
    /// elastic.io's service mode: runs a service method and POSTs its answer to
    /// ELASTICIO_POST_RESULT_URL.
    Service {
        /// The method, as the platform names it.
        #[arg(value_enum)]
        method: ServiceMethod,
    },
}

/// No subcommands of the component's own: what [`Component::main`] adds.
#[derive(Subcommand)]
pub enum NoCommand {}

impl Component {
    /// A component with these functions, checked by [`OAuth2Verifier`] unless
    /// [`Self::verifier`] says otherwise.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            descriptor: None,
            verifier: Arc::new(OAuth2Verifier),
            name: None,
            version: None,
        }
    }

    /// The component's component.json, compiled in (`include_str!`): `validate` checks it
    /// when no file is named, and `--help` shows its title and description.
    pub fn descriptor(mut self, text: &'static str) -> Self {
        self.descriptor = Some(text);
        self
    }

    /// Checks credentials with `verifier` instead of the OAuth2 default.
    pub fn verifier(mut self, verifier: impl Verifier) -> Self {
        self.verifier = Arc::new(verifier);
        self
    }

    /// The binary's name in `--help`; defaults to the name it was started by.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The version `--version` prints; defaults to component.json's `version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The functions this component runs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses the process's arguments, runs the subcommand and returns its exit code.
    pub fn main(self) -> ExitCode {
        self.main_with(|never: NoCommand| async move { match never {} })
    }

    /// [`Self::main`], with the component's own subcommands `E` beside the runtime's; `extra`
    /// runs one. Their logs go to stderr at `warn` unless `LOG_LEVEL` says otherwise, so that
    /// what they print on stdout stands alone.
    pub fn main_with<E, F, Fut>(self, extra: F) -> ExitCode
    where
        E: Subcommand,
        F: FnOnce(E) -> Fut,
        Fut: Future<Output = ExitCode>,
    {
        self.main_from::<E, F, Fut>(std::env::args_os(), extra)
    }

    /// [`Self::main_with`] on the given arguments (the first is the binary's name).
    pub fn main_from<E, F, Fut>(
        self,
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
        extra: F,
    ) -> ExitCode
    where
        E: Subcommand,
        F: FnOnce(E) -> Fut,
        Fut: Future<Output = ExitCode>,
    {
        let matches = match self.command::<E>().try_get_matches_from(args) {
            Ok(matches) => matches,
            Err(error) => {
                // --help and --version end here too, with exit 0.
                let _ = error.print();
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_BAD_INPUT));
            }
        };
        let runtime = match async_runtime() {
            Ok(runtime) => runtime,
            Err(exit) => return exit,
        };
        match which::<E>(&matches) {
            Ok(Chosen::Runtime(command)) => runtime.block_on(self.run(command)),
            Ok(Chosen::Extra(command)) => {
                init_logs("warn");
                runtime.block_on(extra(command))
            }
            Err(error) => {
                let _ = error.print();
                ExitCode::from(EXIT_BAD_INPUT)
            }
        }
    }

    /// The command line: the runtime's subcommands, then `E`'s.
    fn command<E: Subcommand>(&self) -> clap::Command {
        let parsed = self
            .descriptor
            .and_then(|text| Descriptor::parse(text, "component.json").ok());
        let name = self.name.clone().unwrap_or_else(binary_name);
        let command = clap::Command::new(name)
            .subcommand_required(true)
            .arg_required_else_help(true);
        // After the subcommands: a derived `E` brings its doc comment as an `about`.
        let mut command = E::augment_subcommands(RuntimeCommand::augment_subcommands(command));
        if let Some(descriptor) = &parsed {
            command = command.about(format!("{}: {}", descriptor.title, descriptor.description));
        }
        if let Some(version) = self
            .version
            .clone()
            .or_else(|| parsed.and_then(|d| d.version))
        {
            command = command.version(version);
        }
        command
    }

    async fn run(self, command: RuntimeCommand) -> ExitCode {
        match command {
            RuntimeCommand::Worker => {
                let _written_at_exit = logs::init(LogFormat::from_env(), "info");
                self.worker().await
            }
            RuntimeCommand::Run {
                function,
                config,
                message,
                snapshot,
            } => {
                init_logs("info");
                let request = RunRequest {
                    function,
                    config,
                    message,
                    snapshot,
                };
                match local::run(&self.registry, &request, Box::new(std::io::stdout())).await {
                    Ok(RunStatus::Succeeded) => ExitCode::SUCCESS,
                    Ok(RunStatus::Failed) => ExitCode::from(1),
                    Err(error) => bad_input(error),
                }
            }
            RuntimeCommand::Validate { descriptor } => {
                init_logs("info");
                self.validate(descriptor)
            }
            RuntimeCommand::Verify(args) => {
                init_logs("info");
                verify::run(args, self.verifier).await
            }
            RuntimeCommand::Service { method } => {
                init_logs("info");
                service::run(method, &self.registry, self.verifier).await
            }
        }
    }

    async fn worker(self) -> ExitCode {
        if HookSettings::requested() {
            return self.shutdown_hook().await;
        }
        let settings = match Settings::from_env() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(message = "The worker cannot start.", error = %error);
                return bad_input(error);
            }
        };
        match crate::worker::run(settings, &self.registry, termination()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(
                    message = "The worker failed.",
                    error = crate::event::chain_text(&error)
                );
                ExitCode::from(1)
            }
        }
    }

    /// `worker` with `ELASTICIO_HOOK_SHUTDOWN`: the flow stops; run the shutdown hook.
    async fn shutdown_hook(self) -> ExitCode {
        let settings = match HookSettings::from_env() {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(message = "The shutdown hook cannot run.", error = %error);
                return bad_input(error);
            }
        };
        match crate::hooks::shutdown(&settings, &self.registry).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(
                    message = "The shutdown hook failed.",
                    error = crate::event::chain_text(&error)
                );
                ExitCode::from(1)
            }
        }
    }

    fn validate(&self, path: Option<PathBuf>) -> ExitCode {
        let default = PathBuf::from("component.json");
        let (descriptor, origin) = match path.or_else(|| default.exists().then_some(default)) {
            Some(path) => match Descriptor::load(&path) {
                Ok(descriptor) => (descriptor, path.display().to_string()),
                Err(error) => return unusable(&error),
            },
            None => match self.descriptor {
                Some(text) => match Descriptor::parse(text, "the embedded component.json") {
                    Ok(descriptor) => (descriptor, "the embedded component.json".to_owned()),
                    Err(error) => return unusable(&error),
                },
                None => {
                    return bad_input(
                        "no component.json here and none compiled in; name one with --descriptor",
                    );
                }
            },
        };
        let problems = descriptor.problems(&self.registry);
        if problems.is_empty() {
            println!(
                "{origin} is valid: {}",
                self.registry.names().collect::<Vec<_>>().join(", ")
            );
            ExitCode::SUCCESS
        } else {
            eprintln!("{origin} has {} problem(s):", problems.len());
            for problem in problems {
                eprintln!("  - {problem}");
            }
            ExitCode::from(1)
        }
    }
}

/// The async runtime the subcommands run on.
///
/// By default a current-thread runtime: a worker's tasks wait on the broker and the API far
/// more than they compute, and tasks that wake each other on one thread cost no cross-thread
/// wake-ups, which were a third of the CPU a multi-thread runtime spent per message (see
/// BENCHMARKS.md). lapin's I/O runs on threads of its own either way. A component whose
/// functions compute a lot sets `TOKIO_WORKER_THREADS` to a positive count and gets tokio's
/// multi-thread runtime with that many workers.
///
/// Without a runtime, the reason is on stderr and the exit code says which: 2 for a bad
/// `TOKIO_WORKER_THREADS`, 1 when the operating system refused (threads, the I/O driver).
fn async_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let threads = std::env::var("TOKIO_WORKER_THREADS").unwrap_or_default();
    let mut builder = if threads.trim().is_empty() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        // tokio itself would panic on a bad value: say what is wrong instead.
        let count = threads
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| {
                bad_input(format!(
                    "TOKIO_WORKER_THREADS must be a positive number of threads, not {threads:?}"
                ))
            })?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(count);
        builder
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("error: the async runtime could not start: {error}");
        ExitCode::from(1)
    })
}

/// Reports an unusable input with its causes; exit 2.
fn unusable(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    bad_input(crate::event::chain_text(error))
}

/// Reports an unusable input or environment on stderr; exit 2.
fn bad_input(problem: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {problem}");
    ExitCode::from(EXIT_BAD_INPUT)
}

enum Chosen<E> {
    Runtime(RuntimeCommand),
    Extra(E),
}

fn which<E: Subcommand>(matches: &ArgMatches) -> Result<Chosen<E>, clap::Error> {
    match matches.subcommand_name() {
        Some(name) if RuntimeCommand::has_subcommand(name) => {
            RuntimeCommand::from_arg_matches(matches).map(Chosen::Runtime)
        }
        _ => E::from_arg_matches(matches).map(Chosen::Extra),
    }
}

/// The name the binary was started by, for `--help`.
fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "component".to_owned())
}

/// Logs for the subcommands other than `worker`: plain text on stderr, coloured on a terminal.
fn init_logs(default_level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| default_level.into()),
        )
        .try_init();
}

/// Completes on SIGTERM or SIGINT.
async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(message = "No SIGTERM handler could be installed; stopping on SIGINT only.", %error);
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
