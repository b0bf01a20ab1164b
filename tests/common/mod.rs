//! Helpers shared by the integration tests: a sandbox, steps over it, and event accessors.

#![allow(dead_code, reason = "each test binary uses its own subset")]

use std::sync::Arc;

use sailor::clock;
use sailor::config::StepConfig;
use sailor::emitter::{CollectingSink, Emitter};
use sailor::event::{Event, EventKind};
use sailor::message::Message;
use sailor::step::{Outcome, Step};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

/// Serves `app` on a fresh loopback port for the rest of the test; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A sandbox with default options.
pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("the sandbox starts on loopback")
}

/// A step of the built-in registry over `sandbox` with a fresh grant in `state`.
pub fn step(sandbox: &Sandbox, function: &str, state: GrantState, fields: Value) -> Step {
    let config = sandbox.step_config(sandbox.issue_grant(state), fields);
    let config = StepConfig::from_value(config).expect("a valid step config");
    Step::new(&component::registry(), function, config, clock::system()).expect("a known function")
}

/// Runs one message through `step` and returns the outcome and every event, in order.
pub async fn run(step: &Step, body: Value, snapshot: &Value) -> (Outcome, Vec<Event>) {
    let sink = CollectingSink::new();
    let emitter = Emitter::new(Arc::new(sink.clone()));
    let message = Message {
        body,
        ..Message::default()
    };
    let outcome = step.process(&message, snapshot, &emitter).await;
    (outcome, sink.events())
}

/// The bodies of the data events.
pub fn data(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data(message) => Some(message.body.clone()),
            _ => None,
        })
        .collect()
}

/// The `id` of every data event's body.
pub fn ids(events: &[Event]) -> Vec<String> {
    data(events)
        .iter()
        .map(|body| {
            body["id"]
                .as_str()
                .expect("items have string ids")
                .to_owned()
        })
        .collect()
}

/// How many events of `kind` there are.
pub fn count(events: &[Event], kind: EventKind) -> usize {
    events.iter().filter(|e| e.kind() == kind).count()
}

/// The last snapshot event's payload.
pub fn last_snapshot(events: &[Event]) -> Option<Value> {
    events.iter().rev().find_map(|e| match e {
        Event::Snapshot(snapshot) => Some(snapshot.clone()),
        _ => None,
    })
}

/// Items `{id, updated_at, name}`, one per stamp, ids `item-01`, `item-02`, ...
pub fn items(stamps: &[&str]) -> Vec<Value> {
    items_from(1, stamps)
}

/// Like [`items`], numbering from `first`.
pub fn items_from(first: usize, stamps: &[&str]) -> Vec<Value> {
    stamps
        .iter()
        .enumerate()
        .map(|(i, stamp)| {
            json!({"id": format!("item-{:02}", first + i), "updated_at": stamp, "name": format!("Item {}", first + i)})
        })
        .collect()
}

/// `n` items with distinct, increasing stamps.
pub fn distinct_items(n: usize) -> Vec<Value> {
    let stamps: Vec<String> = (1..=n)
        .map(|i| format!("2026-01-01T00:00:{i:02}Z"))
        .collect();
    items(&stamps.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `item-01` .. `item-NN`.
pub fn expected_ids(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("item-{i:02}")).collect()
}

/// The method and path-and-query of every exchange (token endpoint included) with its
/// status, e.g. `GET /api/items?page=2 401`.
pub fn traffic(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .traffic()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path_and_query, r.status))
        .collect()
}
