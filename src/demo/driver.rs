//! What the demo's rounds drive: the two steps in-process ([`super::local`]) or as workers
//! behind RabbitMQ ([`super::amqp`]). The story, the printout and the checks are the same
//! for both; only how a message reaches a step and how its events come back differ.

use std::io::Write;
use std::time::Instant;

use serde_json::Value;

use super::DemoError;
use super::checks::Checks;
use super::journal::Entry;

/// What one round of messages caused, beyond the HTTP traffic the sandbox records.
pub struct Round {
    /// Events and notes, each with the moment it happened.
    pub entries: Vec<(Instant, Entry)>,
    /// False when a message of the round failed (an error event, a rejection).
    pub completed: bool,
}

/// A way of getting messages to the steps and their events back.
pub trait Driver {
    /// The first line of the printout.
    fn title(&self) -> &'static str;

    /// Lines for the printout's preamble, after the provider and the API.
    fn preamble(&self) -> Vec<String>;

    /// What an `updateKeys` is in this mode: an event in-process, a message on the broker.
    fn update_keys_noun(&self) -> &'static str;

    /// One trigger message to `pollItems`; returns once its snapshot is out.
    async fn poll(&mut self) -> Result<Round, DemoError>;

    /// One message per body to `request`; returns once each has its response.
    async fn request(&mut self, bodies: Vec<Value>) -> Result<Round, DemoError>;

    /// Stops what the driver started and checks what only it can see; runs even when the
    /// rounds failed, so nothing is left behind.
    async fn finish(
        &mut self,
        out: &mut (dyn Write + Send),
        checks: &mut Checks,
    ) -> Result<(), DemoError>;
}
