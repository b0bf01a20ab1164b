//! `bench-loop`: the bare hand-written loop the worker is measured against. The same wire work
//! as `component worker` running `request`, and nothing else: consume (prefetch
//! `ELASTICIO_RABBITMQ_PREFETCH_SAILOR`), base64 + AES-256-CBC decrypt, parse, POST the body to
//! `BENCH_API_URL` with the bearer token `BENCH_ACCESS_TOKEN`, build `{status, headers, body}`,
//! encrypt, publish on a confirm channel, wait for the confirm, ack. One current-thread tokio
//! runtime; no settings, logging, token cache, dedup or emitter.
//!
//! `--connections 2` publishes on a second connection, as both sailors and the worker do; the
//! default is one connection for both.
//!
//! Its outputs carry the headers every sailor's output carries (sailor-protocol.md 2.4: the
//! step's identity, the message's lineage, `start`, `end`), as the driver checks: the broker
//! parses and stores them, so a loop without them would not do the same wire work. The
//! identity part is built once and cloned per message, the cheapest way to send it.
//!
//! SIGTERM (the driver's stop) exits the process normally, so that what a wrapping profiler
//! or an instrumented build writes at exit (PGO counts, BENCHMARKS.md) gets written.

use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Map, Value, json};

struct Loop {
    cipher: bench::Cipher,
    /// The step's identity headers, from the same variables the worker reads.
    identity: FieldTable,
    http: reqwest::Client,
    url: String,
    bearer: String,
    publish: Channel,
    exchange: String,
    routing_key: String,
    persistent: bool,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The identity headers of the step, named as sailor-protocol.md 2.4 names them.
fn identity() -> FieldTable {
    let mut table = FieldTable::default();
    for (header, variable) in [
        ("execId", "ELASTICIO_EXEC_ID"),
        ("taskId", "ELASTICIO_FLOW_ID"),
        ("workspaceId", "ELASTICIO_WORKSPACE_ID"),
        ("containerId", "ELASTICIO_CONTAINER_ID"),
        ("userId", "ELASTICIO_USER_ID"),
        ("stepId", "ELASTICIO_STEP_ID"),
        ("compId", "ELASTICIO_COMP_ID"),
        ("function", "ELASTICIO_FUNCTION"),
    ] {
        let value = std::env::var(variable).unwrap_or_default();
        table.insert(header.into(), AMQPValue::LongString(value.into()));
    }
    table
}

impl Loop {
    async fn handle(&self, delivery: lapin::message::Delivery) -> anyhow::Result<()> {
        let start = now_ms();
        let plain = self
            .cipher
            .decode(&delivery.data)
            .context("the input does not decrypt")?;
        let input: Value = serde_json::from_slice(&plain)?;
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.bearer)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&input["body"])?)
            .send()
            .await?;
        let status = response.status().as_u16();
        let headers: Map<String, Value> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let bytes = response.bytes().await?;
        let body: Value = serde_json::from_slice(&bytes)?;
        let output = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "attachments": {},
            "body": {"status": status, "headers": headers, "body": body},
            "headers": {},
        });
        let data = self.cipher.encode(&serde_json::to_vec(&output)?);
        let mut headers = self.identity.clone();
        let incoming = delivery
            .properties
            .headers()
            .as_ref()
            .map(FieldTable::inner);
        let lineage = |name: &str| incoming.and_then(|h| h.get(name)).cloned();
        if let Some(parent) = lineage("messageId") {
            headers.insert("parentMessageId".into(), parent);
        }
        let thread = lineage("threadId")
            .unwrap_or_else(|| AMQPValue::LongString(uuid::Uuid::new_v4().to_string().into()));
        headers.insert("threadId".into(), thread);
        headers.insert("start".into(), AMQPValue::LongLongInt(start));
        headers.insert(
            "messageId".into(),
            AMQPValue::LongString(uuid::Uuid::new_v4().to_string().into()),
        );
        headers.insert("end".into(), AMQPValue::LongLongInt(now_ms()));
        headers.insert("protocolVersion".into(), AMQPValue::ShortShortInt(1));
        let properties = BasicProperties::default()
            .with_headers(headers)
            .with_content_type("application/json".into())
            .with_content_encoding("utf8".into())
            .with_delivery_mode(if self.persistent { 2 } else { 1 });
        let confirm = self
            .publish
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &data,
                properties,
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "the broker nacked the output");
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(())
    }
}

/// Exits through `exit`, which runs the process's exit handlers; a signal's default action
/// would skip them.
async fn exit_on_sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut term) = signal(SignalKind::terminate()) {
        term.recv().await;
        std::process::exit(0);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let uri = var("ELASTICIO_AMQP_URI")?;
    let prefetch: u16 = var("ELASTICIO_RABBITMQ_PREFETCH_SAILOR")
        .unwrap_or_else(|_| "1".into())
        .parse()?;
    let connections = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => 1,
        [flag, count] if flag == "--connections" && (count == "1" || count == "2") => {
            count.parse()?
        }
        other => anyhow::bail!("usage: bench-loop [--connections 1|2], not {other:?}"),
    };
    let connection = Connection::connect(&uri, ConnectionProperties::default()).await?;
    let consume = connection.create_channel().await?;
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let publishing = if connections == 2 {
        Some(Connection::connect(&uri, ConnectionProperties::default()).await?)
    } else {
        None
    };
    let publish = publishing
        .as_ref()
        .unwrap_or(&connection)
        .create_channel()
        .await?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let this = Arc::new(Loop {
        cipher: bench::Cipher::new(
            &var("ELASTICIO_MESSAGE_CRYPTO_PASSWORD")?,
            &var("ELASTICIO_MESSAGE_CRYPTO_IV")?,
        ),
        identity: identity(),
        http: reqwest::Client::new(),
        url: format!("{}{}", var("BENCH_API_URL")?, bench::ECHO_PATH),
        bearer: format!("Bearer {}", var("BENCH_ACCESS_TOKEN")?),
        publish,
        exchange: var("ELASTICIO_PUBLISH_MESSAGES_TO")?,
        routing_key: var("ELASTICIO_DATA_ROUTING_KEY")?,
        persistent: std::env::var("ELASTICIO_AMQP_PERSISTENT_MESSAGES").as_deref() == Ok("true"),
    });
    let mut consumer = consume
        .basic_consume(
            var("ELASTICIO_LISTEN_MESSAGES_ON")?.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(exit_on_sigterm());
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let this = this.clone();
        tokio::spawn(async move {
            if let Err(error) = this.handle(delivery).await {
                eprintln!("bench-loop: {error:#}");
            }
        });
    }
    Ok(())
}
