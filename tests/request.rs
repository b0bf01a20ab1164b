//! The `request` action against the sandbox API: templating, headers and query, response
//! shapes, rebounds and errors.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use sailor::event::{Event, EventKind, Rebound};
use sailor::step::{Outcome, Step};
use sandbox::{GrantState, Sandbox};
use serde_json::{Value, json};

/// A `request` step over `sandbox` with a valid grant: all but the token-refresh test start so.
fn request_step(sandbox: &Sandbox, fields: Value) -> Step {
    step(sandbox, "request", GrantState::Valid, fields)
}

/// Sends one message with `body` through `step`: `request` keeps no snapshot, so it gets an
/// empty one.
async fn send(step: &Step, body: Value) -> (Outcome, Vec<Event>) {
    run(step, body, &json!({})).await
}

/// The one data event's body, after checking the request completed and emitted only that.
fn only_data(outcome: Outcome, events: &[Event]) -> Value {
    assert_eq!(outcome, Outcome::Completed, "{events:?}");
    let data = data(events);
    assert_eq!(data.len(), 1, "{events:?}");
    data[0].clone()
}

/// The error report of a failed request; a completed one fails the test.
fn failure(outcome: Outcome) -> sailor::event::ErrorReport {
    match outcome {
        Outcome::Failed { report, .. } => report,
        Outcome::Completed => panic!("the request should fail"),
    }
}

#[tokio::test]
async fn path_placeholders_are_filled_from_the_body_and_percent_encoded() {
    let sandbox = sandbox().await;
    let step = request_step(
        &sandbox,
        json!({"method": "post", "path": "/echo/items/{id}/notes/{n}"}),
    );
    let body = json!({"id": "a b/c?d#é", "n": 7, "text": "hello"});
    let (outcome, events) = send(&step, body.clone()).await;
    let out = only_data(outcome, &events);
    assert_eq!(out["status"], json!(200));
    assert_eq!(out["headers"]["content-type"], json!("application/json"));
    assert_eq!(
        out["body"],
        json!({
            "method": "POST",
            "path": "/api/echo/items/a%20b%2Fc%3Fd%23%C3%A9/notes/7",
            "query": null,
            "content_type": "application/json",
            "x_request_tag": null,
            "body": body,
        })
    );
}

#[tokio::test]
async fn extra_headers_and_query_from_json_text_are_sent() {
    let sandbox = sandbox().await;
    let step = request_step(
        &sandbox,
        json!({
            "method": "GET",
            "path": "/echo/search",
            "headers": "{\"X-Request-Tag\": \"tag-1\"}",
            "query": "{\"q\": \"a b&c\", \"n\": 2, \"tag\": [\"x\", \"y\"]}",
        }),
    );
    let (outcome, events) = send(&step, json!({"ignored": true})).await;
    let out = only_data(outcome, &events);
    assert_eq!(out["body"]["query"], json!("q=a+b%26c&n=2&tag=x&tag=y"));
    assert_eq!(out["body"]["x_request_tag"], json!("tag-1"));
    assert_eq!(out["body"]["body"], Value::Null, "a GET carries no body");
}

#[tokio::test]
async fn a_missing_placeholder_field_is_an_input_error_and_nothing_is_sent() {
    let sandbox = sandbox().await;
    let step = request_step(
        &sandbox,
        json!({"method": "DELETE", "path": "/echo/items/{id}"}),
    );
    let (outcome, _) = send(&step, json!({"name": "x"})).await;
    let report = failure(outcome);
    assert_eq!(report.name, "InvalidInput");
    assert_eq!(
        report.message,
        "the input message is invalid: the message body has no field `id` for the path `/echo/items/{id}`"
    );
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn a_429_becomes_a_rebound_carrying_retry_after() {
    let sandbox = sandbox().await;
    let post = request_step(&sandbox, json!({"method": "POST", "path": "/echo/items"}));
    sandbox.fail_api_calls(&[429]);
    let (outcome, events) = send(&post, json!({"a": 1})).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        events,
        vec![Event::Rebound(Rebound {
            reason: "the API answered HTTP 429 Too Many Requests".into(),
            retry_after_ms: Some(1000),
        })]
    );

    let get = request_step(
        &sandbox,
        json!({"method": "GET", "path": "/status/429?retry_after=7"}),
    );
    let (_, events) = send(&get, json!({})).await;
    assert_eq!(
        events,
        vec![Event::Rebound(Rebound {
            reason: "the API answered HTTP 429 Too Many Requests".into(),
            retry_after_ms: Some(7000),
        })]
    );
}

#[tokio::test]
async fn a_503_becomes_a_rebound_and_an_http_date_counts_from_now() {
    let sandbox = sandbox().await;
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let path = format!(
        "/status/503?retry_after={}",
        url::form_urlencoded::byte_serialize(date.as_bytes()).collect::<String>()
    );
    let step = request_step(&sandbox, json!({"method": "GET", "path": path}));
    let (outcome, events) = send(&step, json!({})).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(events.len(), 1);
    let Event::Rebound(rebound) = &events[0] else {
        panic!("a rebound, got {events:?}");
    };
    assert_eq!(
        rebound.reason,
        "the API answered HTTP 503 Service Unavailable"
    );
    let wait = rebound.retry_after_ms.expect("a wait");
    assert!((118_000..=120_000).contains(&wait), "{wait}");
}

#[tokio::test]
async fn other_statuses_fail_naming_the_status_and_a_body_excerpt() {
    let sandbox = sandbox().await;
    for (code, reason) in [(404, "Not Found"), (500, "Internal Server Error")] {
        let step = request_step(
            &sandbox,
            json!({"method": "GET", "path": format!("/status/{code}")}),
        );
        let (outcome, events) = send(&step, json!({})).await;
        let report = failure(outcome);
        assert_eq!(report.name, "ApiError");
        assert_eq!(
            report.message,
            format!(r#"the API answered HTTP {code}: {{"error":"{reason}"}}"#)
        );
        assert_eq!(count(&events, EventKind::Error), 1);
        assert_eq!(count(&events, EventKind::Rebound), 0);
    }
}

#[tokio::test]
async fn text_bodies_are_emitted_as_text_and_empty_ones_as_null() {
    let sandbox = sandbox().await;
    let csv = request_step(&sandbox, json!({"method": "GET", "path": "/report.csv"}));
    let (outcome, events) = send(&csv, json!({})).await;
    let out = only_data(outcome, &events);
    assert_eq!(out["body"], json!("id,name\n1,first\n"));
    assert_eq!(
        out["headers"]["content-type"],
        json!("text/csv; charset=utf-8")
    );

    let empty = request_step(&sandbox, json!({"method": "GET", "path": "/status/204"}));
    let (outcome, events) = send(&empty, json!({})).await;
    let out = only_data(outcome, &events);
    assert_eq!(out["status"], json!(204));
    assert_eq!(out["body"], Value::Null);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_replayed() {
    let sandbox = sandbox().await;
    let step = step(
        &sandbox,
        "request",
        GrantState::ExpiredUnknown,
        json!({"method": "PUT", "path": "/echo/items/{id}"}),
    );
    let (outcome, events) = send(&step, json!({"id": 5, "x": true})).await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        events.iter().map(Event::kind).collect::<Vec<_>>(),
        vec![EventKind::UpdateKeys, EventKind::Data]
    );
    assert_eq!(
        data(&events)[0]["body"]["body"],
        json!({"id": 5, "x": true})
    );
    assert_eq!(
        traffic(&sandbox),
        vec![
            "PUT /api/echo/items/5 401",
            "POST /oauth/token 200",
            "PUT /api/echo/items/5 200",
        ]
    );
}

#[tokio::test]
async fn a_dot_dot_value_cannot_climb_out_of_the_base_path_and_nothing_is_sent() {
    let sandbox = sandbox().await;
    // The account's API is /api/echo/tenant-a; /api/echo/secret is another API on that host.
    let base = format!("{}/echo/tenant-a", sandbox.api_base_url());
    let step = request_step(
        &sandbox,
        json!({"method": "GET", "path": "/{id}/secret", "api_base_url": base}),
    );
    for id in ["..", "."] {
        let (outcome, events) = send(&step, json!({"id": id})).await;
        let report = failure(outcome);
        assert_eq!(report.name, "InvalidInput");
        let encoded = if id == ".." { "%2E%2E" } else { "%2E" };
        assert_eq!(
            report.message,
            format!(
                "the input message is invalid: the path `/{encoded}/secret` has a `.` or `..` \
                 segment, which would send the request to another path; nothing was sent"
            )
        );
        assert_eq!(count(&events, EventKind::Error), 1);
        assert_eq!(count(&events, EventKind::Data), 0);
    }
    assert_eq!(sandbox.api_calls(), 0);
    assert_eq!(traffic(&sandbox), Vec::<String>::new());

    // A value that merely contains dots stays one segment under the base.
    let (outcome, events) = send(&step, json!({"id": "..."})).await;
    let out = only_data(outcome, &events);
    assert_eq!(out["body"]["path"], json!("/api/echo/tenant-a/.../secret"));
}

#[tokio::test]
async fn a_path_resolving_outside_api_base_url_is_refused_and_gets_no_token() {
    use std::sync::{Arc, Mutex};

    // Another origin that records every request and its Authorization header.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = seen.clone();
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}", elsewhere.local_addr().unwrap());
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        recorder
            .lock()
            .unwrap()
            .push(format!("{} {auth:?}", request.uri()));
        async { "ok" }
    });
    tokio::spawn(async move { axum::serve(elsewhere, router).await });

    let sandbox = sandbox().await;
    for path in [
        format!("{elsewhere_url}/collect/{{id}}"),
        format!("{}/admin/{{id}}", sandbox.url()),
    ] {
        let step = request_step(&sandbox, json!({"method": "POST", "path": path}));
        let (outcome, events) = send(&step, json!({"id": "7"})).await;
        let report = failure(outcome);
        assert_eq!(report.name, "ConfigurationError");
        let target = path.replace("{id}", "7");
        assert_eq!(
            report.message,
            format!(
                "the step config is invalid: `path` resolves to {target}, outside \
                 `api_base_url` ({}); the access token is not sent there",
                sandbox.api_base_url()
            )
        );
        assert_eq!(count(&events, EventKind::Error), 1);
    }
    assert_eq!(seen.lock().unwrap().clone(), Vec::<String>::new());
    assert_eq!(sandbox.api_calls(), 0);
    assert_eq!(traffic(&sandbox), Vec::<String>::new());
}
