//! The worker against the real RabbitMQ, in process, with test functions.

mod bed;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bed::{
    Bed, Running, decrypt, decrypt_field, error_report, header, header_int, header_text,
    routing_keys, start, text,
};
use lapin::options::{BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use sailor::crypto::Encoding;
use sailor::event::Rebound;
use sailor::{Action, Context, Message, ProcessError, Registry, StepConfig, Trigger};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Echoes the body as `{"echo": body}`; `sleep_ms`, `fail`, `rebound` (with
/// `retry_after_ms`) and `route` in the body change what it does.
#[derive(Clone, Default)]
struct Echo {
    started: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
}

#[async_trait]
impl Action for Echo {
    async fn process(
        &self,
        message: &Message,
        _config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let outcome = self.act(message, ctx).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

impl Echo {
    async fn act(&self, message: &Message, ctx: &Context) -> Result<(), ProcessError> {
        let body = &message.body;
        if let Some(ms) = body.get("sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if body.get("panic").is_some() {
            panic!("asked to panic");
        }
        if body.get("fail").is_some() {
            return Err(ProcessError::Input("asked to fail".into()));
        }
        if body.get("rebound").is_some() {
            ctx.emitter()
                .rebound(Rebound {
                    reason: "busy".into(),
                    retry_after_ms: body.get("retry_after_ms").and_then(Value::as_u64),
                })
                .await?;
            return Ok(());
        }
        let mut out = Message::with_body(json!({ "echo": body }));
        if let Some(route) = body.get("route") {
            out.headers
                .insert("X-EIO-Routing-Key".into(), route.clone());
        }
        ctx.emitter().data(out).await?;
        Ok(())
    }
}

/// Emits the snapshot's `n` as data, then the snapshot `{n: n + 1}`.
struct Counter;

#[async_trait]
impl Trigger for Counter {
    async fn process(
        &self,
        _message: &Message,
        _config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let n = snapshot.get("n").and_then(Value::as_u64).unwrap_or(0);
        ctx.emitter()
            .data(Message::with_body(json!({ "n": n })))
            .await?;
        ctx.emitter().snapshot(json!({ "n": n + 1 })).await?;
        Ok(())
    }
}

/// A registry with `echo` as the action `echo` and [`Counter`] as the trigger `counter`.
fn echo_registry(echo: &Echo) -> Registry {
    let mut registry = Registry::new();
    registry.action("echo", echo.clone());
    registry.trigger("counter", Counter);
    registry
}

/// Starts the worker on [`echo_registry`] with the bed's environment for `echo` and `extra` set
/// over it: the echo tests differ only in what they send and in a setting or two.
fn start_echo(bed: &Bed, echo: &Echo, extra: &[(&str, &str)]) -> Running {
    start(
        with(bed.vars("echo", &json!({})), extra),
        echo_registry(echo),
    )
}

/// `vars` with each `(name, value)` of `extra` set, replacing any earlier value of `name`.
fn with(mut vars: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_gives_a_data_message_out_with_identity_headers_and_a_body_that_decrypts() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let body = bed::cipher().encode(
        json!({"id": "in-1", "body": {"hello": "world"}})
            .to_string()
            .as_bytes(),
        Encoding::Base64,
    );
    let mut headers = FieldTable::default();
    headers.insert("messageId".into(), text("in-1"));
    headers.insert("threadId".into(), text("thread-1"));
    headers.insert("X-EIO-META-Tenant".into(), text("acme"));
    headers.insert("protocolVersion".into(), AMQPValue::ShortShortInt(1));
    bed.send_raw(&body, headers).await;
    let worker = start_echo(&bed, &echo, &[]);

    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    let data = &events[0];
    let message = decrypt(data);
    assert_eq!(message["body"], json!({"echo": {"hello": "world"}}));
    assert_eq!(
        header_text(data, "messageId"),
        message["id"].as_str().map(str::to_owned)
    );
    for (name, value) in [
        ("parentMessageId", "in-1"),
        ("threadId", "thread-1"),
        ("x-eio-meta-tenant", "acme"),
        ("execId", "exec-1"),
        ("taskId", "flow-1"),
        ("workspaceId", "workspace-1"),
        ("containerId", "container-1"),
        ("userId", "user-1"),
        ("stepId", "step_2"),
        ("compId", "comp-1"),
        ("function", "echo"),
    ] {
        assert_eq!(header_text(data, name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(
        header(data, "protocolVersion"),
        Some(&AMQPValue::ShortShortInt(1))
    );
    let (start, end) = (
        header_int(data, "start").unwrap(),
        header_int(data, "end").unwrap(),
    );
    assert!(start > 1_600_000_000_000 && end >= start, "{start} {end}");
    assert_eq!(
        data.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        data.properties
            .content_encoding()
            .as_ref()
            .map(|s| s.as_str()),
        Some("utf8")
    );
    assert_eq!(*data.properties.delivery_mode(), Some(1));
    assert_eq!(
        data.properties.headers().as_ref().unwrap().inner().len(),
        15
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "the input was acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_v2_input_is_read_and_v2_output_is_raw_and_persistent() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(&json!({"body": {"v": 2}}), Encoding::Raw, "m-v2")
        .await;
    bed.send(
        &json!({"body": {"v": 1, "route": format!("{}.rebound", bed.id)}}),
        Encoding::Base64,
        "m-v1",
    )
    .await;
    let worker = start_echo(
        &bed,
        &echo,
        &[
            ("ELASTICIO_PROTOCOL_VERSION", "2"),
            ("ELASTICIO_AMQP_PERSISTENT_MESSAGES", "true"),
        ],
    );
    let events = bed.collect(2, WAIT).await;
    // The second message names its own routing key through x-eio-routing-key.
    assert_eq!(routing_keys(&events), ["data", "rebound"]);
    for (event, v) in events.iter().zip([2, 1]) {
        assert_eq!(header_int(event, "protocolVersion"), Some(2));
        assert_eq!(*event.properties.delivery_mode(), Some(2));
        let raw = bed::cipher().decrypt(&event.data).unwrap();
        let message: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(message["body"]["echo"]["v"], json!(v));
        assert!(
            message["headers"].as_object().unwrap().is_empty(),
            "{message}"
        );
    }
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_publishes_one_error_with_error_input_and_the_input_is_rejected() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let input = json!({"id": "in-f", "body": {"fail": true}});
    let body = bed::cipher().encode(input.to_string().as_bytes(), Encoding::Base64);
    let mut headers = FieldTable::default();
    headers.insert("messageId".into(), text("in-f"));
    bed.send_raw(&body, headers).await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(2, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["error", "dead"],
        "error, then the rejection"
    );
    assert_eq!(events[1].data, body);
    let error: Value = serde_json::from_slice(&events[0].data).unwrap();
    assert_eq!(
        error["errorInput"].as_str().unwrap().as_bytes(),
        &body[..],
        "errorInput is the v1 body as received"
    );
    assert_eq!(decrypt_field(error["errorInput"].as_str().unwrap()), input);
    let report = error_report(&events[0]);
    assert_eq!(report["name"], "InvalidInput");
    assert_eq!(
        report["message"],
        "the input message is invalid: asked to fail"
    );
    assert_eq!(
        header_text(&events[0], "parentMessageId").as_deref(),
        Some("in-f")
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "rejected without requeue");
    assert_eq!(echo.started.load(Ordering::SeqCst), 1, "processed once");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_start_publishes_why_on_the_error_key() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let worker = start_echo(&bed, &echo, &[("ELASTICIO_FUNCTION", "nope")]);
    let error = worker.finished().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown function `nope`; this component has: counter, echo"
    );
    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["error"]);
    let body: Value = serde_json::from_slice(&events[0].data).unwrap();
    assert!(
        body.get("errorInput").is_none(),
        "there was no input: {body}"
    );
    let report = error_report(&events[0]);
    assert_eq!(report["name"], "StartupError");
    assert_eq!(report["message"], error.to_string());
    assert_eq!(header_text(&events[0], "function").as_deref(), Some("nope"));
    assert_eq!(header_text(&events[0], "stepId").as_deref(), Some("step_2"));
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_error_cannot_be_published_goes_back_to_the_queue() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(&json!({"body": {"n": 1}}), Encoding::Base64, "in-lost")
        .await;
    let missing = format!("test-{}:no-such-exchange", bed.id);
    let worker = start_echo(
        &bed,
        &echo,
        &[
            ("ELASTICIO_PUBLISH_MESSAGES_TO", &missing),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "1"),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_DELAY", "10"),
        ],
    );
    let deadline = std::time::Instant::now() + WAIT;
    while echo.started.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    assert!(
        bed.collect(0, Duration::from_millis(300)).await.is_empty(),
        "neither dead-lettered nor published anywhere"
    );
    assert_eq!(bed.input_ready().await, 1, "the message waits in its queue");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_reported_and_rejected_and_the_worker_keeps_going() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let garbage = b"this is not ciphertext \x00\xff";
    bed.send_raw(garbage, FieldTable::default()).await;
    let mut v2 = FieldTable::default();
    v2.insert("protocolVersion".into(), AMQPValue::ShortInt(2));
    bed.send_raw(&bed::cipher().encrypt(b"not json"), v2).await;
    bed.send(
        &json!({"body": {"after": "poison"}}),
        Encoding::Base64,
        "good",
    )
    .await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(5, WAIT).await;
    // Dead-lettering is asynchronous in the broker: compare as a set, then by kind.
    let mut keys = routing_keys(&events);
    keys.sort();
    assert_eq!(keys, ["data", "dead", "dead", "error", "error"]);
    let of = |kind: &str| -> Vec<&lapin::message::Delivery> {
        events
            .iter()
            .filter(|e| e.routing_key.as_str().ends_with(&format!(".{kind}")))
            .collect()
    };
    let (errors, dead, data) = (of("error"), of("dead"), of("data"));
    assert_eq!(dead[0].data, garbage, "the poison itself was rejected");
    let first: Value = serde_json::from_slice(&errors[0].data).unwrap();
    assert_eq!(
        first["errorInput"],
        json!(base64::engine::general_purpose::STANDARD.encode(garbage))
    );
    let report = error_report(errors[0]);
    assert_eq!(report["name"], "InvalidMessage");
    let report = error_report(errors[1]);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("not a message"),
        "{report}"
    );
    assert_eq!(
        decrypt(data[0])["body"],
        json!({"echo": {"after": "poison"}})
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0);
    assert_eq!(
        echo.started.load(Ordering::SeqCst),
        1,
        "only the good one ran"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_messages_with_prefetch_five_are_all_processed_five_at_a_time() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send_numbered(0..20, |i| json!({"i": i, "sleep_ms": 150}))
        .await;
    let worker = start_echo(&bed, &echo, &[("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "5")]);
    let events = bed.collect(20, WAIT).await;
    assert_eq!(events.len(), 20);
    let mut seen: Vec<u64> = events
        .iter()
        .map(|e| decrypt(e)["body"]["echo"]["i"].as_u64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    assert_eq!(echo.max_running.load(Ordering::SeqCst), 5);
    assert_eq!(echo.started.load(Ordering::SeqCst), 20);
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_messages_and_loses_nothing() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send_numbered(0..12, |i| json!({"i": i, "sleep_ms": 700}))
        .await;
    let worker = start_echo(&bed, &echo, &[("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "4")]);
    while echo.started.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        echo.running.load(Ordering::SeqCst),
        4,
        "four in flight at shutdown"
    );
    worker.stop().await;
    let started = echo.started.load(Ordering::SeqCst);
    assert_eq!(
        echo.running.load(Ordering::SeqCst),
        0,
        "every started message finished"
    );
    let events = bed.collect(started, WAIT).await;
    assert_eq!(
        events.len(),
        started,
        "one data message per processed message"
    );
    let remaining = bed.input_ready().await as usize;
    assert_eq!(
        started + remaining,
        12,
        "nothing lost: {started} done, {remaining} left"
    );
    assert!(
        remaining >= 4,
        "consumption stopped at shutdown ({remaining} left)"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_of_a_message_still_in_flight_is_settled_with_it_not_processed_twice() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let message = json!({"body": {"sleep_ms": 1_000}});
    // The test takes one copy itself and will give it back: the broker then redelivers it,
    // flagged `redelivered`, while the worker is still processing the other copy.
    bed.send(&message, Encoding::Base64, "same").await;
    let held = bed
        .channel
        .basic_get(bed.input.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("the copy the test holds");
    bed.send(&message, Encoding::Base64, "same").await;
    let worker = start_echo(&bed, &echo, &[("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "2")]);
    while echo.started.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.delivery
        .acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let events = bed.collect(1, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["data"],
        "one data message for the delivery and its redelivery"
    );
    worker.stop().await;
    assert_eq!(echo.started.load(Ordering::SeqCst), 1);
    assert_eq!(bed.input_ready().await, 0, "both deliveries settled");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_messages_that_share_a_message_id_are_each_processed() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    // An upstream component that reuses `id`, e.g. `{...msg, body: part}`.
    for part in 0..5 {
        bed.send(
            &json!({"body": {"part": part, "sleep_ms": 300}}),
            Encoding::Base64,
            "shared-id",
        )
        .await;
    }
    let worker = start_echo(&bed, &echo, &[("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "4")]);
    let events = bed.collect(5, WAIT).await;
    let mut parts: Vec<u64> = events
        .iter()
        .map(|e| decrypt(e)["body"]["echo"]["part"].as_u64().unwrap())
        .collect();
    parts.sort_unstable();
    assert_eq!(parts, [0, 1, 2, 3, 4], "every part is processed once");
    worker.stop().await;
    assert_eq!(echo.started.load(Ordering::SeqCst), 5);
    assert_eq!(bed.input_ready().await, 0);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_message_no_queue_takes_is_not_acked_but_reported_with_its_input() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(
        &json!({"body": {"route": "nothing-is-bound-to-this"}}),
        Encoding::Base64,
        "unroutable",
    )
    .await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(2, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["error", "dead"],
        "the broker returned the data, so the input is reported and rejected, not acked"
    );
    let report = error_report(&events[0]);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("could not publish the data event"),
        "{report}"
    );
    assert!(
        events[0].data.windows(10).any(|w| w == b"errorInput"),
        "the error carries the input"
    );
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_with_a_retry_after_of_years_is_capped_and_the_worker_goes_on() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(
        &json!({"body": {"rebound": true, "retry_after_ms": 999_999_999_000u64}}),
        Encoding::Base64,
        "far-future",
    )
    .await;
    bed.send(&json!({"body": {"n": 2}}), Encoding::Base64, "next")
        .await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(2, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["rebound", "data"],
        "the rebound went out and the next input was processed"
    );
    assert_eq!(
        events[0]
            .properties
            .expiration()
            .as_ref()
            .map(|e| e.as_str()),
        Some("4294967295"),
        "capped at what AMQP carries"
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_within_its_bound_even_when_a_delivery_never_finishes() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(
        &json!({"body": {"sleep_ms": 600_000}}),
        Encoding::Base64,
        "stuck",
    )
    .await;
    let worker = start_echo(&bed, &echo, &[("COMPONENT_SHUTDOWN_TIMEOUT", "2")]);
    while echo.started.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = std::time::Instant::now();
    worker.stop().await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "COMPONENT_SHUTDOWN_TIMEOUT=2 but shutdown took {took:?}"
    );
    assert!(
        bed.collect(0, Duration::from_millis(300)).await.is_empty(),
        "nothing was published for the unfinished delivery"
    );
    assert_eq!(
        bed.input_ready().await,
        1,
        "the unfinished delivery is back in its queue"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_a_trigger_emits_is_the_snapshot_of_the_next_message() {
    let bed = Bed::new().await;
    for i in 0..3 {
        bed.send(&json!({"body": {}}), Encoding::Base64, &format!("tick-{i}"))
            .await;
    }
    let worker = start(
        bed.vars("counter", &json!({})),
        echo_registry(&Echo::default()),
    );
    let events = bed.collect(6, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["data", "snapshot", "data", "snapshot", "data", "snapshot"]
    );
    for (i, pair) in events.chunks(2).enumerate() {
        assert_eq!(decrypt(&pair[0])["body"], json!({ "n": i }));
        let snapshot: Value = serde_json::from_slice(&pair[1].data).unwrap();
        assert_eq!(snapshot, json!({ "n": i + 1 }), "snapshots are plain JSON");
        assert_eq!(
            header_text(&pair[1], "snapshotEvent").as_deref(),
            Some("snapshot")
        );
    }
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_resends_the_original_bytes_with_doubling_expiration_until_the_limit() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let body = bed::cipher().encode(br#"{"body":{"rebound":true}}"#, Encoding::Base64);
    let mut second = FieldTable::default();
    second.insert("messageId".into(), text("r-2"));
    second.insert("reboundIteration".into(), AMQPValue::ShortInt(2));
    bed.send_raw(&body, second).await;
    let mut last = FieldTable::default();
    last.insert("messageId".into(), text("r-20"));
    last.insert("reboundIteration".into(), AMQPValue::LongInt(20));
    bed.send_raw(&body, last).await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(3, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["rebound", "error", "dead"],
        "a rebound is acked; past the limit it is an error and a rejection"
    );
    let rebound = &events[0];
    assert_eq!(rebound.data, body, "the original bytes");
    assert_eq!(header_int(rebound, "reboundIteration"), Some(3));
    assert_eq!(
        header_text(rebound, "reboundReason").as_deref(),
        Some("busy")
    );
    assert_eq!(header_text(rebound, "messageId").as_deref(), Some("r-2"));
    assert_eq!(
        rebound.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("60000")
    );
    let report = error_report(&events[1]);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("Rebound limit exceeded"),
        "{report}"
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_without_message_id_is_processed_and_acked() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    let body = bed::cipher().encode(br#"{"body":{"anonymous":true}}"#, Encoding::Base64);
    bed.send_raw(&body, FieldTable::default()).await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(1, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["data"],
        "processed, and not rejected"
    );
    assert_eq!(
        decrypt(&events[0])["body"],
        json!({"echo": {"anonymous": true}})
    );
    assert_eq!(header(&events[0], "parentMessageId"), None);
    assert!(header_text(&events[0], "threadId").is_some_and(|t| t.len() == 36));
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_message_over_the_size_limit_becomes_an_error_and_a_rejection() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(
        &json!({"body": {"big": "x".repeat(500)}}),
        Encoding::Base64,
        "big",
    )
    .await;
    let worker = start_echo(
        &bed,
        &echo,
        &[("ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT", "300")],
    );
    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    let report = error_report(&events[0]);
    assert_eq!(report["name"], "EmitError");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("over the limit of 300 bytes"),
        "{report}"
    );
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_publish_is_retried_with_a_retry_header_and_the_input_waits_for_it() {
    use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
    let bed = Bed::new().await;
    let echo = Echo::default();
    // A next-step queue that is full and refuses publishes, as platform task queues do.
    let limited = format!("test-{}:limited", bed.id);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert("x-overflow".into(), text("reject-publish"));
    args.insert("x-expires".into(), AMQPValue::LongInt(60_000));
    bed.channel
        .queue_declare(
            limited.as_str().into(),
            QueueDeclareOptions::default(),
            args,
        )
        .await
        .unwrap();
    bed.channel
        .queue_bind(
            limited.as_str().into(),
            bed.exchange.as_str().into(),
            bed.key("limited").into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    bed.channel
        .basic_publish(
            "".into(),
            limited.as_str().into(),
            Default::default(),
            b"filler",
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    bed.send(
        &json!({"body": {"route": bed.key("limited")}}),
        Encoding::Base64,
        "flow",
    )
    .await;
    let worker = start_echo(
        &bed,
        &echo,
        &[
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "Infinity"),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_DELAY", "50"),
            ("ELASTICIO_AMQP_PUBLISH_MAX_RETRY_DELAY", "200"),
        ],
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(echo.started.load(Ordering::SeqCst), 1);
    assert_eq!(
        echo.running.load(Ordering::SeqCst),
        1,
        "still waiting for the confirm"
    );
    let take = |queue: String| {
        let channel = bed.channel.clone();
        async move {
            channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
        }
    };
    assert_eq!(
        take(limited.clone()).await.unwrap().delivery.data,
        b"filler"
    );
    let mut published = None;
    for _ in 0..100 {
        published = take(limited.clone()).await;
        if published.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = published
        .expect("the retry went through once there was room")
        .delivery;
    assert!(
        header_int(&published, "retry").is_some_and(|n| n >= 2),
        "retried"
    );
    assert_eq!(
        decrypt(&published)["body"]["echo"]["route"],
        json!(bed.key("limited"))
    );
    worker.stop().await;
    assert_eq!(echo.running.load(Ordering::SeqCst), 0);
    assert!(
        bed.collect(0, Duration::from_millis(10)).await.is_empty(),
        "acked, not rejected"
    );
    assert_eq!(bed.input_ready().await, 0);
    let _ = bed
        .channel
        .queue_delete(limited.as_str().into(), Default::default())
        .await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_function_is_reported_and_rejected_and_the_worker_keeps_going() {
    let bed = Bed::new().await;
    let echo = Echo::default();
    bed.send(&json!({"body": {"panic": true}}), Encoding::Base64, "p-1")
        .await;
    bed.send(
        &json!({"body": {"after": "panic"}}),
        Encoding::Base64,
        "p-2",
    )
    .await;
    let worker = start_echo(&bed, &echo, &[]);
    let events = bed.collect(3, WAIT).await;
    let mut keys = routing_keys(&events);
    keys.sort();
    assert_eq!(keys, ["data", "dead", "error"]);
    let error = events
        .iter()
        .find(|e| e.routing_key.as_str().ends_with(".error"))
        .unwrap();
    let report = error_report(error);
    assert_eq!(report["name"], "Panic");
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0);
    bed.cleanup().await;
}

/// An action whose `init` hook fails, with a secret in its message.
struct FailingInit;

#[async_trait]
impl Action for FailingInit {
    async fn process(
        &self,
        _: &Message,
        _: &StepConfig,
        _: &Value,
        _: &Context,
    ) -> Result<(), ProcessError> {
        panic!("never called: init failed")
    }

    async fn init(&self, _: &StepConfig, _: &Context) -> Result<(), ProcessError> {
        Err(ProcessError::named(
            "NoQueue",
            "the queue is gone (api key s3cr3t-api-key-42)",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_hook_stops_the_worker_before_it_consumes_and_says_why() {
    let bed = Bed::new().await;
    bed.send_numbered([1], |n| json!({ "n": n })).await;
    let mut registry = Registry::new();
    registry.action("failing", FailingInit);
    let cfg = json!({"client_secret": "s3cr3t-api-key-42"});
    let worker = bed::start(bed.vars("failing", &cfg), registry);
    let error = worker.finished().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the init hook failed: the queue is gone (api key [redacted]) (NoQueue)"
    );
    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["error"]);
    assert_eq!(error_report(&events[0])["name"], "StartupError");
    assert_eq!(bed.input_ready().await, 1, "nothing was consumed");
    bed.cleanup().await;
}
