//! Response bodies are read under a cap: `request`, `pollItems`, the token endpoint and the
//! credential check refuse an answer larger than their cap after reading no more than it, and
//! close the connection. The server here sends an endless (or hugely declared) body; each test
//! finishes quickly, names the cap in its error, and sees the server's stream dropped.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use common::*;
use sailor::auth::{RefreshError, RetryPolicy, TokenEndpoint};
use sailor::config::StepConfig;
use sailor::event::{Event, EventKind, Rebound};
use sailor::secret::RefreshToken;
use sailor::step::Outcome;
use sailor::verify::{VerifyOptions, verify_credentials};
use sandbox::GrantState;
use serde_json::{Value, json};

/// Far longer than any capped read takes, far shorter than reading an endless body.
const QUICK: Duration = Duration::from_secs(20);

/// What the server answers to every request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// This status and a body without `Content-Length` that never ends.
    Endless(u16),
    /// This status, `Content-Length` of this many bytes, and a body streamed lazily.
    Declared(u16, u64),
}

/// Counts answers whose body stream was dropped: hyper drops it when the client closes the
/// connection, since the body is never finished.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A loopback server sending big bodies, and what it saw.
struct BigBodyServer {
    url: String,
    requests: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

impl BigBodyServer {
    async fn start(answer: Answer) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (r, c, s) = (requests.clone(), closed.clone(), sent.clone());
        let app = axum::Router::new().fallback(move || {
            r.fetch_add(1, Ordering::SeqCst);
            let (closed, sent) = (c.clone(), s.clone());
            async move { big_answer(answer, DropCounter(closed), sent) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            requests,
            closed,
            sent,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until every answer's stream was dropped, i.e. the client hung up.
    async fn wait_until_every_connection_closed(&self) {
        let all_closed = async {
            while self.closed.load(Ordering::SeqCst) < self.requests() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all_closed)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the client kept {} of {} connections open",
                    self.requests() - self.closed.load(Ordering::SeqCst),
                    self.requests()
                )
            });
    }

    fn sent_bytes(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

fn big_answer(
    answer: Answer,
    dropped: DropCounter,
    sent: Arc<AtomicU64>,
) -> axum::response::Response {
    let (status, declared) = match answer {
        Answer::Endless(status) => (status, None),
        Answer::Declared(status, length) => (status, Some(length)),
    };
    // A JSON list that looks like a real export and never closes.
    let item = Bytes::from(
        r#"{"id":"x","updated_at":"2026-01-01T00:00:00Z","pad":"0123456789abcdef"},"#.repeat(1000),
    );
    let start = Bytes::from_static(br#"{"items":["#);
    let stream = futures_util::stream::unfold((dropped, false), move |(dropped, started)| {
        let chunk = if started { item.clone() } else { start.clone() };
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        async move {
            // About 75 MB/s: a cap is reached in well under a second, and a client that reads
            // on regardless takes no more than that from the machine.
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((Ok::<_, Infallible>(chunk), (dropped, true)))
        }
    });
    let mut response = axum::response::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json");
    if let Some(length) = declared {
        response = response.header(CONTENT_LENGTH, length);
    }
    response.body(Body::from_stream(stream)).unwrap()
}

/// Runs `future`, failing the test if it is still reading after [`QUICK`].
async fn quickly<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(QUICK, future)
        .await
        .expect("the capped read ended quickly instead of reading the whole body")
}

fn failure(outcome: Outcome) -> sailor::event::ErrorReport {
    match outcome {
        Outcome::Failed { report, .. } => report,
        Outcome::Completed => panic!("the call should fail"),
    }
}

#[tokio::test]
async fn request_refuses_an_endless_chunked_answer_at_the_default_cap_and_hangs_up() {
    let sandbox = sandbox().await;
    let server = BigBodyServer::start(Answer::Endless(200)).await;
    let step = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"api_base_url": server.url, "method": "GET", "path": "/export"}),
    );

    let (outcome, events) = quickly(run(&step, json!({}), &json!({}))).await;

    let report = failure(outcome);
    assert_eq!(report.name, "ResponseTooLarge");
    assert_eq!(
        report.message,
        "the API answered HTTP 200 with a body too large to read: the body is larger than \
         10485760 bytes (10 MiB), the cap set by the step config field `max_response_bytes`"
    );
    assert_eq!(
        events.iter().map(Event::kind).collect::<Vec<_>>(),
        vec![EventKind::Error]
    );
    assert_eq!(server.requests(), 1, "an oversized answer is not retried");
    server.wait_until_every_connection_closed().await;
    // What the server pushed before it saw the hang-up: the cap plus what the socket buffers
    // held, nowhere near "everything".
    assert!(server.sent_bytes() < 64 << 20, "{}", server.sent_bytes());
}

#[tokio::test]
async fn request_refuses_a_declared_length_over_max_response_bytes_before_reading() {
    let sandbox = sandbox().await;
    let server = BigBodyServer::start(Answer::Declared(200, 300_000_000)).await;
    let step = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"api_base_url": server.url, "method": "POST", "path": "/export",
               "max_response_bytes": "1048576"}),
    );

    let (outcome, events) = quickly(run(&step, json!({"q": 1}), &json!({}))).await;

    let report = failure(outcome);
    assert_eq!(report.name, "ResponseTooLarge");
    assert_eq!(
        report.message,
        "the API answered HTTP 200 with a body too large to read: the body is larger than \
         1048576 bytes (1 MiB), the cap set by the step config field `max_response_bytes` \
         (its Content-Length is 300000000)"
    );
    assert_eq!(count(&events, EventKind::Data), 0);
    server.wait_until_every_connection_closed().await;
}

#[tokio::test]
async fn request_reads_a_body_of_exactly_max_response_bytes_and_refuses_one_byte_less() {
    let sandbox = sandbox().await;
    // The sandbox's report is `id,name\n1,first\n`: 16 bytes.
    let at_cap = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"method": "GET", "path": "/report.csv", "max_response_bytes": 16}),
    );
    let (outcome, events) = run(&at_cap, json!({}), &json!({})).await;
    assert_eq!(outcome, Outcome::Completed, "{events:?}");
    assert_eq!(data(&events)[0]["body"], json!("id,name\n1,first\n"));

    let below = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"method": "GET", "path": "/report.csv", "max_response_bytes": 15}),
    );
    let (outcome, _) = run(&below, json!({}), &json!({})).await;
    assert_eq!(
        failure(outcome).message,
        "the API answered HTTP 200 with a body too large to read: the body is larger than \
         15 bytes, the cap set by the step config field `max_response_bytes` (its \
         Content-Length is 16)"
    );
}

#[tokio::test]
async fn request_names_a_wrong_max_response_bytes_before_any_call() {
    let sandbox = sandbox().await;
    let step = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"method": "GET", "path": "/report.csv", "max_response_bytes": "10 MB"}),
    );
    let (outcome, _) = run(&step, json!({}), &json!({})).await;
    let report = failure(outcome);
    assert_eq!(report.name, "ConfigurationError");
    assert_eq!(
        report.message,
        "the step config is invalid: `max_response_bytes` must be a whole number of bytes, at \
         least 1; got \"10 MB\""
    );
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn a_503_with_an_endless_body_is_still_a_rebound_and_its_body_is_not_read() {
    let sandbox = sandbox().await;
    let server = BigBodyServer::start(Answer::Endless(503)).await;
    let step = step(
        &sandbox,
        "request",
        GrantState::Valid,
        json!({"api_base_url": server.url, "method": "GET", "path": "/export"}),
    );

    let (outcome, events) = quickly(run(&step, json!({}), &json!({}))).await;

    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        events,
        vec![Event::Rebound(Rebound {
            reason: "the API answered HTTP 503 Service Unavailable".into(),
            retry_after_ms: None,
        })]
    );
    server.wait_until_every_connection_closed().await;
}

#[tokio::test]
async fn poll_items_refuses_an_endless_page_and_emits_no_snapshot() {
    let sandbox = sandbox().await;
    let server = BigBodyServer::start(Answer::Endless(200)).await;
    let step = step(
        &sandbox,
        "pollItems",
        GrantState::Valid,
        json!({"api_base_url": server.url, "path": "/items", "items_pointer": "/items",
               "max_response_bytes": 1048576}),
    );

    let (outcome, events) = quickly(run(&step, Value::Null, &json!({}))).await;

    let report = failure(outcome);
    assert_eq!(report.name, "ResponseTooLarge");
    assert_eq!(
        report.message,
        "the API answered HTTP 200 with a body too large to read: the body is larger than \
         1048576 bytes (1 MiB), the cap set by the step config field `max_response_bytes`"
    );
    assert_eq!(
        events.iter().map(Event::kind).collect::<Vec<_>>(),
        vec![EventKind::Error]
    );
    assert_eq!(server.requests(), 1);
    server.wait_until_every_connection_closed().await;
}

fn token_endpoint(server: &BigBodyServer) -> TokenEndpoint {
    let config = StepConfig::from_value(json!({
        "token_uri": format!("{}/oauth/token", server.url),
        "client_id": "cid",
        "client_secret": "csecret",
    }))
    .unwrap();
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    TokenEndpoint::from_config(&config, retry).unwrap()
}

#[tokio::test]
async fn an_endless_token_response_is_an_invalid_response_naming_the_cap_and_not_retried() {
    let server = BigBodyServer::start(Answer::Endless(200)).await;

    let error = quickly(token_endpoint(&server).request_once(&RefreshToken::new("rt")))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        RefreshError::InvalidResponse(
            "the body is larger than 1048576 bytes (1 MiB), the cap for token endpoint \
             responses (fixed)"
                .into()
        )
    );
    assert_eq!(
        error.to_string(),
        "the token endpoint's response is not a usable token set: the body is larger than \
         1048576 bytes (1 MiB), the cap for token endpoint responses (fixed)"
    );
    assert_eq!(server.requests(), 1, "a success too large is not retried");
    server.wait_until_every_connection_closed().await;
}

#[tokio::test]
async fn a_token_endpoint_error_too_large_to_read_is_judged_by_its_status() {
    let server = BigBodyServer::start(Answer::Declared(503, 500_000_000)).await;

    let error = quickly(token_endpoint(&server).request_once(&RefreshToken::new("rt")))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        RefreshError::Unavailable {
            attempts: 1,
            last: "HTTP 503".into(),
            retry_after: None,
        },
        "a transient failure, which the token cache retries on its schedule"
    );
    assert_eq!(server.requests(), 1);
    server.wait_until_every_connection_closed().await;
}

#[tokio::test]
async fn verify_quotes_no_endless_error_body_and_answers_with_the_status() {
    let server = BigBodyServer::start(Answer::Endless(500)).await;
    let config = StepConfig::from_value(json!({
        "oauth": {"access_token": "at"},
        "api_base_url": format!("{}/api", server.url),
    }))
    .unwrap();
    let options = VerifyOptions::default().with_timeout(Duration::from_secs(60));

    let verification = quickly(verify_credentials(&config, &options)).await;

    assert!(!verification.is_verified());
    assert_eq!(
        verification.reason(),
        Some(
            format!(
                "The API answered HTTP 500 Internal Server Error to GET {}/api/me. The credential \
                 could not be checked; try again later. Response: (not quoted: the body is \
                 larger than 65536 bytes (64 KiB), the cap for an error body quoted in a \
                 verification reason (fixed))",
                server.url
            )
            .as_str()
        )
    );
    assert_eq!(server.requests(), 1);
    server.wait_until_every_connection_closed().await;
}
