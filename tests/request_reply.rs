//! Request-reply through the worker on the real RabbitMQ: `httpReply` and error replies go to
//! the input's `reply_to`, in sailor-nodejs 2.7.8's wire form.

mod bed;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bed::{
    Bed, Running, decrypt_field, header, header_int, header_text, routing_keys, start, text,
};
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use sailor::crypto::Encoding;
use sailor::event::HttpReply;
use sailor::{Action, Context, Message, ProcessError, Registry, StepConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Answers `{"got": body}` with status 201 and a content type (plus an `x-eio-routing-key`
/// header, which is not for the caller), then emits the body as data; fails when the body
/// has `fail`.
struct Replier;

#[async_trait]
impl Action for Replier {
    async fn process(
        &self,
        message: &Message,
        _config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        if message.body.get("fail").is_some() {
            return Err(ProcessError::Input("asked to fail".into()));
        }
        let mut reply = HttpReply::new(201, json!({ "got": message.body }));
        reply
            .headers
            .insert("content-type".into(), json!("application/json"));
        reply
            .headers
            .insert("X-EIO-Routing-Key".into(), json!("elsewhere"));
        ctx.emitter().http_reply(reply).await?;
        ctx.emitter()
            .data(Message::with_body(message.body.clone()))
            .await?;
        Ok(())
    }
}

/// The bed's worker running [`Replier`] as `reply`, with `extra` variables.
fn start_replier(bed: &Bed, extra: &[(&str, &str)]) -> Running {
    let mut vars = bed.vars("reply", &json!({}));
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut registry = Registry::new();
    registry.action("reply", Replier);
    start(vars, registry)
}

/// A queue bound to the bed's exchange with the routing key `{id}.reply`, as the platform's
/// webhook binds the queue it waits on; returns the queue and the `reply_to` value.
async fn reply_queue(bed: &Bed) -> (String, String) {
    reply_queue_with(bed, FieldTable::default()).await
}

/// [`reply_queue`] with the queue arguments `args`.
async fn reply_queue_with(bed: &Bed, args: FieldTable) -> (String, String) {
    let (queue, key) = (format!("test-{}:reply", bed.id), bed.key("reply"));
    bed.channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .unwrap();
    bed.channel
        .queue_bind(
            queue.as_str().into(),
            bed.exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (queue, key)
}

/// Everything that arrived on `queue` until `n` came and 400 ms passed without more, or
/// `timeout`.
async fn take(bed: &Bed, queue: &str, n: usize, timeout: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut quiet_until = None;
    loop {
        match bed
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            Some(message) => {
                got.push(message.delivery);
                quiet_until = None;
            }
            None => {
                let now = Instant::now();
                if got.len() >= n {
                    if now >= *quiet_until.get_or_insert(now + Duration::from_millis(400)) {
                        return got;
                    }
                } else if now >= deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Sends `body` with `messageId` `id` and, when given, `reply_to`.
async fn send(bed: &Bed, body: Value, id: &str, reply_to: Option<&str>) {
    let encrypted = bed::cipher().encode(
        json!({ "id": id, "body": body }).to_string().as_bytes(),
        Encoding::Base64,
    );
    let mut headers = FieldTable::default();
    headers.insert("messageId".into(), text(id));
    headers.insert("threadId".into(), text("thread-r"));
    if let Some(reply_to) = reply_to {
        headers.insert("reply_to".into(), text(reply_to));
    }
    bed.send_raw(&encrypted, headers).await;
}

fn headers_of(delivery: &Delivery) -> FieldTable {
    delivery.properties.headers().clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_reply_goes_to_reply_to_in_protocol_1_with_the_step_headers() {
    let bed = Bed::new().await;
    let (queue, reply_to) = reply_queue(&bed).await;
    send(&bed, json!({"q": 1}), "in-r", Some(&reply_to)).await;
    // Data goes out raw (protocol 2); the reply stays base64 text, as sailor-nodejs sends it.
    let worker = start_replier(&bed, &[("ELASTICIO_PROTOCOL_VERSION", "2")]);

    let replies = take(&bed, &queue, 1, WAIT).await;
    assert_eq!(replies.len(), 1, "one reply");
    let reply = &replies[0];
    assert_eq!(reply.routing_key.as_str(), reply_to);
    let plain = bed::cipher().decode(&reply.data, Encoding::Base64).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&plain).unwrap(),
        json!({
            "statusCode": 201,
            "body": {"got": {"q": 1}},
            "headers": {"content-type": "application/json"}
        }),
        "the reply object, less x-eio-routing-key"
    );
    assert_eq!(header_int(reply, "protocolVersion"), Some(1));
    for (name, value) in [
        ("reply_to", reply_to.as_str()),
        ("parentMessageId", "in-r"),
        ("threadId", "thread-r"),
        ("stepId", "step_2"),
        ("function", "reply"),
        ("taskId", "flow-1"),
    ] {
        assert_eq!(header_text(reply, name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(header_text(reply, "messageId").map(|id| id.len()), Some(36));
    assert!(header(reply, "x-eio-error-response").is_none());
    assert_eq!(
        reply.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );

    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"], "the data event, no error");
    assert_eq!(header_int(&events[0], "protocolVersion"), Some(2));
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "the input was acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_sent_to_reply_to_as_the_encrypted_error_marked_as_an_error_response() {
    let bed = Bed::new().await;
    let (queue, reply_to) = reply_queue(&bed).await;
    send(&bed, json!({"fail": true}), "in-f", Some(&reply_to)).await;
    let worker = start_replier(&bed, &[]);

    let replies = take(&bed, &queue, 1, WAIT).await;
    let events = bed.collect(2, WAIT).await;
    assert_eq!(replies.len(), 1, "one error reply");
    assert_eq!(
        routing_keys(&events),
        ["error", "dead"],
        "error, then rejection"
    );
    let (reply, error) = (&replies[0], &events[0]);
    let error_body: Value = serde_json::from_slice(&error.data).unwrap();
    assert_eq!(
        reply.data,
        error_body["error"].as_str().unwrap().as_bytes(),
        "the reply is the error event's encrypted report, alone"
    );
    let report = decrypt_field(std::str::from_utf8(&reply.data).unwrap());
    assert_eq!(report["name"], "InvalidInput");
    assert_eq!(
        report["message"],
        "the input message is invalid: asked to fail"
    );
    assert_eq!(
        header(reply, "x-eio-error-response"),
        Some(&AMQPValue::Boolean(true))
    );
    let reply_headers: Vec<_> = headers_of(reply)
        .inner()
        .iter()
        .filter(|(name, _)| name.as_str() != "x-eio-error-response")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let error_headers: Vec<_> = headers_of(error)
        .inner()
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    assert_eq!(
        reply_headers, error_headers,
        "otherwise the error event's headers"
    );
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "rejected without requeue");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_error_replies_a_failure_goes_to_the_error_key_only() {
    let bed = Bed::new().await;
    let (queue, reply_to) = reply_queue(&bed).await;
    send(&bed, json!({"fail": true}), "in-n", Some(&reply_to)).await;
    let worker = start_replier(&bed, &[("ELASTICIO_NO_ERROR_REPLIES", "true")]);

    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    worker.stop().await;
    assert_eq!(
        take(&bed, &queue, 0, Duration::ZERO).await.len(),
        0,
        "no reply"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_nobody_waits_for_is_dropped_and_the_input_is_acked() {
    let bed = Bed::new().await;
    // No queue is bound for this reply_to: the requester gave up.
    send(&bed, json!({"q": 2}), "in-g", Some(&bed.key("gone"))).await;
    let worker = start_replier(&bed, &[]);

    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"], "data, no error");
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_reply_without_reply_to_is_an_error_in_sailor_nodejs_words() {
    let bed = Bed::new().await;
    send(&bed, json!({"q": 3}), "in-x", None).await;
    let worker = start_replier(&bed, &[]);

    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    let error: Value = serde_json::from_slice(&events[0].data).unwrap();
    let report = decrypt_field(error["error"].as_str().unwrap());
    assert!(
        report["message"].as_str().unwrap().contains(
            "Component emitted 'httpReply' event but 'reply_to' was not found in AMQP headers"
        ),
        "{report}"
    );
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_input_waits_until_its_reply_is_confirmed() {
    let bed = Bed::new().await;
    // A full reply queue that refuses more: the reply is nacked until the test makes room.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert("x-overflow".into(), text("reject-publish"));
    let (queue, reply_to) = reply_queue_with(&bed, args).await;
    bed.channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            b"filler",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    send(&bed, json!({"q": 4}), "in-w", Some(&reply_to)).await;
    let worker = start_replier(
        &bed,
        &[
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "Infinity"),
            ("ELASTICIO_AMQP_PUBLISH_MAX_RETRY_DELAY", "200"),
        ],
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        bed.events_ready().await,
        0,
        "no data before the reply is confirmed"
    );
    // Taking the filler makes room; the reply comes at the next retry.
    let replies = take(&bed, &queue, 2, WAIT).await;
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].data, b"filler");
    assert!(
        header_int(&replies[1], "retry").is_some_and(|retry| retry >= 1),
        "the reply was retried"
    );
    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "acked once all was confirmed");
    bed.cleanup().await;
}
