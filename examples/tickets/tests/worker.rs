//! The example component as the platform runs it: `tickets worker` on the real RabbitMQ, its
//! step definition (config and flow variables) from a platform-API stand-in.

#[path = "../../../tests/bed/mod.rs"]
mod bed;
mod desk;

use std::path::Path;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use bed::{Bed, decrypt, error_report, routing_keys, spawn_binary_worker_logging_to};
use desk::{API_KEY, Desk};
use sailor::crypto::Encoding;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

/// Serves the step definition at `GET /v1/tasks/flow-1/steps/step_2` (the bed's flow and
/// step), as the platform API does once per container start.
async fn platform_api(step: Value) -> String {
    let app = axum::Router::new().route(
        "/v1/tasks/flow-1/steps/step_2",
        get(move || {
            let step = step.clone();
            async move { Json(step) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The bed's worker environment for `function`, its step definition from `api`.
fn vars_from_api(bed: &Bed, function: &str, api: &str) -> Vec<(String, String)> {
    let mut vars = bed.vars(function, &json!({}));
    vars.retain(|(name, _)| name != "ELASTICIO_CFG");
    vars.extend([
        ("ELASTICIO_API_URI".to_owned(), api.to_owned()),
        ("ELASTICIO_API_USERNAME".to_owned(), "task-user".to_owned()),
        (
            "ELASTICIO_API_KEY".to_owned(),
            "task-key-0123456789".to_owned(),
        ),
    ]);
    vars
}

fn tickets_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tickets"))
}

#[tokio::test]
async fn create_ticket_runs_as_a_worker_with_the_flows_variables() {
    let bed = Bed::new().await;
    let desk = Desk::start(vec![]).await;
    let api = platform_api(json!({
        "config": desk.config(API_KEY),
        "variables": {"queue": "billing"},
    }))
    .await;
    for (n, body) in [
        json!({"title": "one"}),
        json!({"description": "no title"}),
        json!({"title": "three"}),
    ]
    .into_iter()
    .enumerate()
    {
        bed.send(
            &json!({ "body": body }),
            Encoding::Base64,
            &format!("m-{n}"),
        )
        .await;
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = spawn_binary_worker_logging_to(
        tickets_binary(),
        &vars_from_api(&bed, "createTicket", &api),
        log.path(),
    );

    // Two tickets, one error event for the message without a title, and that input rejected
    // (dead-lettered to the events queue).
    let events = bed.collect(4, Duration::from_secs(20)).await;
    worker.kill().await.unwrap();
    let mut keys = routing_keys(&events);
    keys.sort();
    assert_eq!(
        keys,
        ["data", "data", "dead", "error"],
        "{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    let created = desk.created();
    assert_eq!(created.len(), 2);
    for ticket in &created {
        assert_eq!(
            (&ticket["queue"], &ticket["source_step"]),
            (&json!("billing"), &json!("step_2"))
        );
    }
    let error = events
        .iter()
        .find(|e| routing_keys(std::slice::from_ref(e)) == ["error"])
        .unwrap();
    assert_eq!(error_report(error)["name"], "InvalidInput");
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| routing_keys(std::slice::from_ref(e)) == ["data"])
        .map(|e| decrypt(e)["body"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["T-1", "T-2"]);
    bed.cleanup().await;
}

#[tokio::test]
async fn fetch_profile_refreshes_once_and_publishes_the_keys_from_a_worker() {
    let bed = Bed::new().await;
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    for n in 0..3 {
        bed.send(
            &json!({"body": {"n": n}}),
            Encoding::Base64,
            &format!("m-{n}"),
        )
        .await;
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = spawn_binary_worker_logging_to(
        tickets_binary(),
        &bed.vars("fetchProfile", &config),
        log.path(),
    );
    let events = bed.collect(4, Duration::from_secs(20)).await;
    worker.kill().await.unwrap();
    let mut keys = routing_keys(&events);
    keys.sort();
    assert_eq!(
        keys,
        ["data", "data", "data", "keys"],
        "{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    assert_eq!(sandbox.token_requests(), 1);
    bed.cleanup().await;
}
