//! The rest of sailor-nodejs' environment contract, through the worker on the real RabbitMQ:
//! `updateSnapshot`, the publish rate limits, `ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS`,
//! `ELASTICIO_INPUT_FORMAT=error`, `ELASTICIO_AMQP_RECONNECT_*` and the identity variables
//! required at start-up.

mod bed;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bed::{Bed, decrypt, header_text, routing_keys, start};
use lapin::types::FieldTable;
use sailor::amqp::sink::error_message;
use sailor::event::ErrorReport;
use sailor::worker::WorkerError;
use sailor::{Action, Context, Message, ProcessError, Registry, StepConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Does what the message body says: `snapshot` and `updateSnapshot` emit those, `data: n`
/// emits n data messages; then one data message `{"saw": <snapshot>, "body": <body>}`.
/// Records how long the `data: n` emits took.
#[derive(Clone, Default)]
struct Scripted {
    emitting: Arc<Mutex<Vec<Duration>>>,
}

#[async_trait]
impl Action for Scripted {
    async fn process(
        &self,
        message: &Message,
        _config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let body = &message.body;
        if let Some(snapshot) = body.get("snapshot") {
            ctx.emitter().snapshot(snapshot.clone()).await?;
        }
        if let Some(update) = body.get("updateSnapshot") {
            ctx.emitter().update_snapshot(update.clone()).await?;
        }
        if let Some(n) = body.get("data").and_then(Value::as_u64) {
            let started = Instant::now();
            for i in 0..n {
                ctx.emitter()
                    .data(Message::with_body(json!({ "i": i })))
                    .await?;
            }
            self.emitting.lock().unwrap().push(started.elapsed());
            return Ok(());
        }
        ctx.emitter()
            .data(Message::with_body(json!({ "saw": snapshot, "body": body })))
            .await?;
        Ok(())
    }
}

fn registry(action: &Scripted) -> Registry {
    let mut registry = Registry::new();
    registry.action("scripted", action.clone());
    registry
}

fn vars(bed: &Bed, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = bed.vars("scripted", &json!({}));
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_snapshot_is_a_snapshot_message_with_its_header_and_merges_into_the_next_ones() {
    let bed = Bed::new().await;
    bed.send(
        &json!({"body": {"snapshot": {"a": 1, "b": {"x": 1}}}}),
        sailor::crypto::Encoding::Base64,
        "m-1",
    )
    .await;
    bed.send(
        &json!({"body": {"updateSnapshot": {"b": {"y": 2}, "c": 3}}}),
        sailor::crypto::Encoding::Base64,
        "m-2",
    )
    .await;
    bed.send(
        &json!({"body": {}}),
        sailor::crypto::Encoding::Base64,
        "m-3",
    )
    .await;
    let scripted = Scripted::default();
    let worker = start(vars(&bed, &[]), registry(&scripted));
    let events = bed.collect(5, WAIT).await;
    worker.stop().await;

    assert_eq!(
        routing_keys(&events),
        ["snapshot", "data", "snapshot", "data", "data"]
    );
    assert_eq!(
        header_text(&events[0], "snapshotEvent").as_deref(),
        Some("snapshot")
    );
    assert_eq!(
        header_text(&events[2], "snapshotEvent").as_deref(),
        Some("updateSnapshot")
    );
    let plain = |i: usize| serde_json::from_slice::<Value>(&events[i].data).unwrap();
    assert_eq!(plain(2), json!({"b": {"y": 2}, "c": 3}), "the update alone");
    assert_eq!(
        decrypt(&events[4])["body"]["saw"],
        json!({"a": 1, "b": {"y": 2}, "c": 3}),
        "top-level fields replaced, the others kept"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_snapshot_of_something_not_an_object_is_refused_and_not_sent() {
    let bed = Bed::new().await;
    bed.send(
        &json!({"body": {"updateSnapshot": [1, 2]}}),
        sailor::crypto::Encoding::Base64,
        "m-1",
    )
    .await;
    let scripted = Scripted::default();
    let worker = start(vars(&bed, &[]), registry(&scripted));
    let events = bed.collect(2, WAIT).await;
    worker.stop().await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    let report = bed::error_report(&events[0]);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("updateSnapshot takes a JSON object"),
        "{report}"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_publishes_are_spread_over_rate_intervals() {
    let bed = Bed::new().await;
    bed.send(
        &json!({"body": {"data": 6}}),
        sailor::crypto::Encoding::Base64,
        "m-1",
    )
    .await;
    let scripted = Scripted::default();
    let worker = start(
        vars(
            &bed,
            &[
                ("ELASTICIO_DATA_RATE_LIMIT", "2"),
                ("ELASTICIO_RATE_INTERVAL", "500"),
            ],
        ),
        registry(&scripted),
    );
    let events = bed.collect(6, WAIT).await;
    worker.stop().await;
    assert_eq!(routing_keys(&events), ["data"; 6]);
    let took = scripted.emitting.lock().unwrap().clone();
    assert_eq!(took.len(), 1);
    assert!(
        took[0] >= Duration::from_millis(1000),
        "2 per 500 ms: the 5th and 6th wait for the third interval, took {:?}",
        took[0]
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additional_variables_become_headers_named_as_sailor_nodejs_names_them() {
    let bed = Bed::new().await;
    bed.send(
        &json!({"body": {}}),
        sailor::crypto::Encoding::Base64,
        "m-1",
    )
    .await;
    let scripted = Scripted::default();
    let worker = start(
        vars(
            &bed,
            &[
                (
                    "ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS",
                    "ELASTICIO_TENANT_ID, REGION_NAME, ELASTICIO_STEP_ID, NOT_SET",
                ),
                ("ELASTICIO_TENANT_ID", "tenant-7"),
                ("REGION_NAME", "eu-1"),
            ],
        ),
        registry(&scripted),
    );
    let events = bed.collect(1, WAIT).await;
    worker.stop().await;
    assert_eq!(routing_keys(&events), ["data"]);
    assert_eq!(
        header_text(&events[0], "tenantId").as_deref(),
        Some("tenant-7")
    );
    assert_eq!(
        header_text(&events[0], "regionName").as_deref(),
        Some("eu-1")
    );
    assert_eq!(header_text(&events[0], "stepId").as_deref(), Some("step_2"));
    assert_eq!(bed::header(&events[0], "notSet"), None);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_error_input_format_the_function_gets_the_decrypted_error_and_input() {
    let bed = Bed::new().await;
    let cipher = bed::cipher();
    let failed = json!({"id": "m-0", "body": {"n": 1}});
    let report = ErrorReport {
        name: "Error".into(),
        message: "boom".into(),
        stack: "at step_1".into(),
    };
    let mut headers = FieldTable::default();
    headers.insert("messageId".into(), bed::text("e-1"));
    headers.insert("stepId".into(), bed::text("step_1"));
    let event = error_message(
        &report,
        Some(&cipher.encode_base64(failed.to_string().as_bytes())),
        &cipher,
        "error",
        headers.clone().into(),
    );
    bed.send_raw(&event.body, headers).await;
    let scripted = Scripted::default();
    let worker = start(
        vars(&bed, &[("ELASTICIO_INPUT_FORMAT", "error")]),
        registry(&scripted),
    );
    let events = bed.collect(1, WAIT).await;
    worker.stop().await;
    assert_eq!(routing_keys(&events), ["data"]);
    assert_eq!(
        decrypt(&events[0])["body"]["body"],
        json!({
            "error": {"name": "Error", "message": "boom", "stack": "at step_1"},
            "errorInput": failed
        })
    );
    assert_eq!(
        header_text(&events[0], "parentMessageId").as_deref(),
        Some("e-1")
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_unreachable_for_the_reconnect_attempts_stops_the_worker() {
    let bed = Bed::new().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let uri = format!("amqp://guest:guest@127.0.0.1:{closed}/%2f");
    let scripted = Scripted::default();
    let started = Instant::now();
    let worker = start(
        vars(
            &bed,
            &[
                ("ELASTICIO_AMQP_URI", &uri),
                ("ELASTICIO_AMQP_RECONNECT_ATTEMPTS", "3"),
                ("ELASTICIO_AMQP_RECONNECT_TIMEOUT", "100"),
                ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "0"),
            ],
        ),
        registry(&scripted),
    );
    let error = worker.finished().await.unwrap_err();
    assert!(
        matches!(error, WorkerError::BrokerUnreachable { attempts: 4, .. }),
        "the first attempt and 3 more: {error}"
    );
    assert!(!error.to_string().contains("guest:guest"), "{error}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "100 ms between attempts"
    );
    bed.cleanup().await;
}

#[tokio::test]
async fn a_worker_without_its_identity_exits_2_naming_each_missing_variable() {
    let bed = Bed::new().await;
    let vars: Vec<(String, String)> = vars(&bed, &[])
        .into_iter()
        .filter(|(name, _)| !["ELASTICIO_EXEC_ID", "ELASTICIO_COMP_ID"].contains(&name.as_str()))
        .collect();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("worker")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("ELASTICIO_EXEC_ID is missing"), "{stderr}");
    assert!(stderr.contains("ELASTICIO_COMP_ID is missing"), "{stderr}");
    assert!(!stderr.contains("ELASTICIO_STEP_ID is missing"), "{stderr}");
    bed.cleanup().await;
}
