//! The in-process driver: each message goes straight to [`Step::process`], the path the
//! worker takes after decoding a delivery, and events are caught by a [`CollectingSink`], with the time of each.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};

use super::DemoError;
use super::checks::Checks;
use super::driver::{Driver, Round};
use super::journal::Entry;
use sailor::emitter::{CollectingSink, Emitter};
use sailor::event::Event;
use sailor::message::Message;
use sailor::step::{Outcome, Step};

/// The two steps, called directly; the poll's snapshot is carried here, as the worker would.
pub struct Local {
    poll: Step,
    request: Step,
    sink: CollectingSink,
    emitter: Emitter,
    snapshot: Value,
}

impl Local {
    /// Drives `poll` and `request`.
    pub fn new(poll: Step, request: Step) -> Self {
        let sink = CollectingSink::new();
        Self {
            poll,
            request,
            emitter: Emitter::new(Arc::new(sink.clone())),
            sink,
            snapshot: json!({}),
        }
    }

    fn round(&mut self, completed: bool) -> Round {
        let entries: Vec<_> = self
            .sink
            .take_timed()
            .into_iter()
            .map(|(at, event)| (at, Entry::Event(event)))
            .collect();
        if let Some(snapshot) = entries.iter().rev().find_map(|(_, e)| match e.event() {
            Some(Event::Snapshot(s)) => Some(s.clone()),
            _ => None,
        }) {
            self.snapshot = snapshot;
        }
        Round { entries, completed }
    }
}

impl Driver for Local {
    fn title(&self) -> &'static str {
        "component demo: the REST component and its runtime against a loopback OAuth2 provider"
    }

    fn preamble(&self) -> Vec<String> {
        Vec::new()
    }

    fn update_keys_noun(&self) -> &'static str {
        "event"
    }

    async fn poll(&mut self) -> Result<Round, DemoError> {
        let outcome = self
            .poll
            .process(&Message::default(), &self.snapshot, &self.emitter)
            .await;
        Ok(self.round(outcome == Outcome::Completed))
    }

    async fn request(&mut self, bodies: Vec<Value>) -> Result<Round, DemoError> {
        let mut completed = true;
        for body in bodies {
            let message = Message {
                body,
                ..Message::default()
            };
            let outcome = self
                .request
                .process(&message, &json!({}), &self.emitter)
                .await;
            completed &= outcome == Outcome::Completed;
        }
        Ok(self.round(completed))
    }

    async fn finish(
        &mut self,
        _out: &mut (dyn Write + Send),
        _checks: &mut Checks,
    ) -> Result<(), DemoError> {
        Ok(())
    }
}
