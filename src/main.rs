//! The `component` binary: the REST component on the sailor runtime's entry point, plus the
//! demo.

use std::process::ExitCode;

use clap::Subcommand;
use component::demo;

/// The REST component's own subcommand, beside the runtime's `worker`, `run`, `validate` and
/// `verify`.
#[derive(Subcommand)]
enum ComponentCommand {
    /// Runs the component against a loopback OAuth2 provider and API, across token expiry,
    /// and checks that every item came once and every expiry cost one refresh.
    Demo {
        /// Runs the steps as workers through this RabbitMQ, e.g.
        /// amqp://guest:guest@127.0.0.1:5672/%2f, on a flow of their own that is deleted after.
        #[arg(long, value_name = "URI")]
        amqp: Option<String>,
    },
}

fn main() -> ExitCode {
    sailor::entry::Component::new(component::registry())
        .descriptor(component::DESCRIPTOR)
        .name("component")
        .version(env!("CARGO_PKG_VERSION"))
        .main_with(|ComponentCommand::Demo { amqp }| demo::cli(amqp))
}
