//! The `component` binary: the worker and the developer's local runner.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use component::demo::DemoOptions;
use component::descriptor::Descriptor;
use component::local::{self, RunRequest, RunStatus};
use component::registry::Registry;
use component::settings::{AmqpUri, Settings};
use component::telemetry::logs::{self, LogFormat};

#[derive(Parser)]
#[command(
    version,
    about = "An elastic.io-model component runtime with OAuth2 key rotation."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Runs the component against a loopback OAuth2 provider and API, across token expiry,
    /// and checks that every item came once and every expiry cost one refresh.
    Demo {
        /// Runs the steps as workers through this RabbitMQ, e.g.
        /// amqp://guest:guest@127.0.0.1:5672/%2f, on a flow of their own that is deleted after.
        #[arg(long, value_name = "URI")]
        amqp: Option<String>,
    },
    /// Checks component.json against the functions compiled into this binary.
    Validate {
        /// The descriptor to check; defaults to ./component.json, else the embedded copy.
        #[arg(long)]
        descriptor: Option<PathBuf>,
    },
}

/// Completes on SIGTERM or SIGINT.
async fn termination() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works on Unix");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn worker() -> anyhow::Result<ExitCode> {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!(message = "The worker cannot start.", error = %error);
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    component::worker::run(settings, &Registry::builtin(), termination()).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_logs(default_level: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
                .unwrap_or_else(|_| default_level.into()),
        )
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The worker logs JSON lines (COMPONENT_LOG_FORMAT chooses their shape); the demo tells its own story on stdout, so its logs stay
    // quiet unless LOG_LEVEL asks.
    match cli.command {
        Command::Worker => logs::init(LogFormat::from_env(), "info"),
        Command::Demo { .. } => init_logs("warn"),
        _ => init_logs("info"),
    }
    match cli.command {
        Command::Worker => match worker().await {
            Ok(code) => code,
            Err(error) => {
                tracing::error!(message = "The worker failed.", error = format!("{error:#}"));
                ExitCode::from(1)
            }
        },
        Command::Run {
            function,
            config,
            message,
            snapshot,
        } => {
            let request = RunRequest {
                function,
                config,
                message,
                snapshot,
            };
            match local::run(&Registry::builtin(), &request, Box::new(std::io::stdout())).await {
                Ok(RunStatus::Succeeded) => ExitCode::SUCCESS,
                Ok(RunStatus::Failed) => ExitCode::from(1),
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo { amqp } => demo(amqp).await,
        Command::Validate { descriptor } => validate(descriptor),
    }
}

async fn demo(amqp: Option<String>) -> ExitCode {
    let options = DemoOptions::default();
    let mut out = std::io::stdout();
    let ran = match amqp {
        None => component::demo::run(&mut out, &options).await,
        Some(uri) => match AmqpUri::parse(&uri) {
            Ok(uri) => component::demo::run_amqp(&mut out, &options, &uri).await,
            Err(problem) => {
                eprintln!("error: --amqp {problem}");
                return ExitCode::from(2);
            }
        },
    };
    match ran {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::new(error));
            ExitCode::from(1)
        }
    }
}

fn validate(path: Option<PathBuf>) -> ExitCode {
    let default = PathBuf::from("component.json");
    let (descriptor, origin) = match path.or_else(|| default.exists().then_some(default)) {
        Some(path) => match Descriptor::load(&path) {
            Ok(descriptor) => (descriptor, path.display().to_string()),
            Err(error) => {
                eprintln!("error: {:#}", anyhow::Error::new(error));
                return ExitCode::from(2);
            }
        },
        None => (
            Descriptor::embedded(),
            "the embedded component.json".to_owned(),
        ),
    };
    let problems = descriptor.problems(&Registry::builtin());
    if problems.is_empty() {
        let registry = Registry::builtin();
        println!(
            "{origin} is valid: {}",
            registry.names().collect::<Vec<_>>().join(", ")
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
