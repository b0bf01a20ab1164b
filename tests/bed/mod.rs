//! Shared test bed: a unique exchange and queues on the real RabbitMQ, declared the way the
//! platform would, plus a loopback OAuth2 token endpoint and API.

#![allow(dead_code, missing_docs)]

#[path = "../broker/mod.rs"]
mod broker;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sailor::crypto::{Encoding, MessageCipher};
use sailor::registry::Registry;
use sailor::secret::Password;
use sailor::settings::Settings;
use sailor::worker::{self, WorkerError};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const CRYPTO_PASSWORD: &str = "testCryptoPassword-s3cr3t";
pub const CRYPTO_IV: &str = "iv=any16_symbols";

pub fn cipher() -> MessageCipher {
    MessageCipher::new(&Password::new(CRYPTO_PASSWORD), CRYPTO_IV).unwrap()
}

/// One test's exchange, input queue and an `events` queue bound to every outgoing key and to
/// the input's dead letters (key `dead`).
pub struct Bed {
    pub id: String,
    /// The broker this bed lives on.
    pub uri: String,
    /// Exchange and queues durable and input messages persistent, so that they survive a
    /// broker restart.
    pub durable: bool,
    pub connection: Connection,
    pub channel: Channel,
    pub exchange: String,
    pub input: String,
    pub events: String,
}

impl Bed {
    pub async fn new() -> Self {
        Self::on(AMQP_URI, false).await
    }

    /// A bed on the broker at `uri`, `durable` or not.
    pub async fn on(uri: &str, durable: bool) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ answers at {}: {e}", redacted(uri)));
        let channel = connection.create_channel().await.unwrap();
        let bed = Self {
            exchange: format!("test-{id}:exchange"),
            input: format!("test-{id}:messages"),
            events: format!("test-{id}:events"),
            id,
            uri: uri.to_owned(),
            durable,
            connection,
            channel,
        };
        bed.channel
            .exchange_declare(
                bed.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        // Rejected input is dead-lettered to the events queue, so a test sees rejections.
        let mut dead_letter = FieldTable::default();
        dead_letter.insert("x-dead-letter-exchange".into(), text(&bed.exchange));
        dead_letter.insert("x-dead-letter-routing-key".into(), text(&bed.key("dead")));
        for (queue, args) in [
            (&bed.input, dead_letter),
            (&bed.events, FieldTable::default()),
        ] {
            bed.channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .unwrap();
        }
        for key in ["data", "error", "snapshot", "rebound", "keys", "dead"] {
            bed.channel
                .queue_bind(
                    bed.events.as_str().into(),
                    bed.exchange.as_str().into(),
                    bed.key(key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        bed
    }

    /// This bed's exchange for the account's keys, so that tests sharing an account id
    /// never adopt each other's keys.
    pub fn keys_exchange(&self) -> String {
        format!("test-{}:keys", self.id)
    }

    pub fn key(&self, kind: &str) -> String {
        format!("{}.{kind}", self.id)
    }

    /// The worker's environment for `function` with `cfg`.
    pub fn vars(&self, function: &str, cfg: &Value) -> Vec<(String, String)> {
        [
            ("ELASTICIO_AMQP_URI", self.uri.clone()),
            ("ELASTICIO_LISTEN_MESSAGES_ON", self.input.clone()),
            ("ELASTICIO_PUBLISH_MESSAGES_TO", self.exchange.clone()),
            ("ELASTICIO_DATA_ROUTING_KEY", self.key("data")),
            ("ELASTICIO_ERROR_ROUTING_KEY", self.key("error")),
            ("ELASTICIO_SNAPSHOT_ROUTING_KEY", self.key("snapshot")),
            ("ELASTICIO_REBOUND_ROUTING_KEY", self.key("rebound")),
            ("ELASTICIO_UPDATE_KEYS_ROUTING_KEY", self.key("keys")),
            ("ELASTICIO_FUNCTION", function.to_owned()),
            (
                "ELASTICIO_MESSAGE_CRYPTO_PASSWORD",
                CRYPTO_PASSWORD.to_owned(),
            ),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", CRYPTO_IV.to_owned()),
            ("ELASTICIO_FLOW_ID", "flow-1".to_owned()),
            ("ELASTICIO_EXEC_ID", "exec-1".to_owned()),
            ("ELASTICIO_STEP_ID", "step_2".to_owned()),
            ("ELASTICIO_USER_ID", "user-1".to_owned()),
            ("ELASTICIO_COMP_ID", "comp-1".to_owned()),
            ("ELASTICIO_CONTAINER_ID", "container-1".to_owned()),
            ("ELASTICIO_WORKSPACE_ID", "workspace-1".to_owned()),
            ("ELASTICIO_CFG", cfg.to_string()),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "5".to_owned()),
            ("COMPONENT_KEYS_EXCHANGE", self.keys_exchange()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Publishes raw bytes to the input queue, as the previous step would.
    pub async fn send_raw(&self, body: &[u8], headers: FieldTable) {
        let mut properties = BasicProperties::default().with_headers(headers);
        if self.durable {
            properties = properties.with_delivery_mode(2);
        }
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.input.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap();
        confirm.await.unwrap();
    }

    /// Publishes a message object encrypted in `encoding`, with a `messageId` header.
    pub async fn send(&self, message: &Value, encoding: Encoding, message_id: &str) {
        let body = cipher().encode(message.to_string().as_bytes(), encoding);
        let mut headers = FieldTable::default();
        headers.insert("messageId".into(), text(message_id));
        if encoding == Encoding::Raw {
            headers.insert("protocolVersion".into(), AMQPValue::LongLongInt(2));
        }
        self.send_raw(&body, headers).await;
    }

    /// Publishes `{"body": body(n)}` for each `n` of `ns`, with messageId `m-{n}`: the batches
    /// the worker tests queue before a run differ only in the bodies.
    pub async fn send_numbered(
        &self,
        ns: impl IntoIterator<Item = u64>,
        body: impl Fn(u64) -> Value,
    ) {
        for n in ns {
            self.send(
                &json!({ "body": body(n) }),
                Encoding::Base64,
                &format!("m-{n}"),
            )
            .await;
        }
    }

    /// Waits until `n` messages were published to the events queue, then a little longer to
    /// catch extras; returns them all, in order.
    pub async fn collect(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        self.drain_until(timeout, |got| got.len() >= n).await
    }

    /// Takes events off the events queue until `enough` holds for what was taken and nothing
    /// more came for 400 ms, or `timeout` passed; returns them all, in order.
    async fn drain_until(
        &self,
        timeout: Duration,
        mut enough: impl FnMut(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut quiet_until: Option<Instant> = None;
        loop {
            match self
                .channel
                .basic_get(
                    self.events.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                Some(message) => {
                    got.push(message.delivery);
                    quiet_until = None;
                }
                None => {
                    let now = Instant::now();
                    if enough(&got) {
                        let until = *quiet_until.get_or_insert(now + Duration::from_millis(400));
                        if now >= until {
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

    /// Waits until every key of `expected` was seen among the published events (`key_of`
    /// reads an event's key; events without one are kept but not counted), or `timeout`
    /// passed; then a little longer to catch late duplicates.
    ///
    /// After a fault (a connection loss, a killed worker, a broker restart) the broker
    /// redelivers what was not acked and the worker republishes what was not confirmed, so an
    /// output may arrive twice. Counting events would let a duplicate stand in for an output
    /// that has not arrived yet; this counts distinct keys, and reports the duplicates.
    pub async fn collect_distinct<K: Ord + Clone + std::fmt::Debug>(
        &self,
        expected: &BTreeSet<K>,
        timeout: Duration,
        key_of: impl Fn(&Delivery) -> Option<K>,
    ) -> Distinct<K> {
        let mut seen = BTreeSet::new();
        let mut counted = 0;
        let events = self
            .drain_until(timeout, |got| {
                seen.extend(got[counted..].iter().filter_map(&key_of));
                counted = got.len();
                expected.is_subset(&seen)
            })
            .await;
        let mut distinct = Distinct {
            counts: BTreeMap::new(),
            events,
        };
        for key in distinct.events.iter().filter_map(&key_of) {
            *distinct.counts.entry(key).or_default() += 1;
        }
        let duplicates = distinct.duplicates();
        if !duplicates.is_empty() {
            println!(
                "{} duplicate output(s) after redelivery or republish (key, times seen): {duplicates:?}",
                distinct.duplicate_count()
            );
        }
        distinct
    }

    /// Opens a new connection and channel after the broker dropped them (a restart),
    /// trying for up to a minute.
    pub async fn reconnect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Connection::connect(&self.uri, ConnectionProperties::default()).await {
                Ok(connection) => {
                    self.channel = connection.create_channel().await.unwrap();
                    self.connection = connection;
                    return;
                }
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "RabbitMQ at {} did not come back: {error}",
                        redacted(&self.uri)
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Messages ready in the events queue (not counting unacked ones).
    pub async fn events_ready(&self) -> u32 {
        broker::ready_count(&self.channel, &self.events).await
    }

    /// Messages ready in the input queue (not counting unacked ones).
    pub async fn input_ready(&self) -> u32 {
        broker::ready_count(&self.channel, &self.input).await
    }

    pub async fn cleanup(self) {
        broker::delete(
            &self.channel,
            &[self.input.clone(), self.events.clone()],
            &self.exchange,
        )
        .await;
        let keys = self.keys_exchange();
        let last = |account: &str| format!("{keys}.last.{account}");
        broker::delete(
            &self.channel,
            &[last("account-1"), last("sandbox-account")],
            &keys,
        )
        .await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// What [`Bed::collect_distinct`] gathered.
pub struct Distinct<K> {
    /// Every event, in the order published.
    pub events: Vec<Delivery>,
    /// How often each key was seen.
    pub counts: BTreeMap<K, usize>,
}

impl<K: Ord + Clone> Distinct<K> {
    /// The distinct keys seen, sorted.
    pub fn keys(&self) -> Vec<K> {
        self.counts.keys().cloned().collect()
    }

    /// The keys seen more than once, with how often.
    pub fn duplicates(&self) -> Vec<(K, usize)> {
        self.counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    /// Outputs beyond the first of each key.
    pub fn duplicate_count(&self) -> usize {
        self.counts.values().map(|n| n - 1).sum()
    }

    /// The keys of `expected` never seen.
    pub fn missing(&self, expected: &BTreeSet<K>) -> Vec<K> {
        expected
            .iter()
            .filter(|k| !self.counts.contains_key(k))
            .cloned()
            .collect()
    }
}

/// The `messageId`s that a worker's JSON log shows it received as redeliveries (the
/// `delivery` span's `redelivered` and `messageId` fields, flattened into each line): the only
/// inputs whose outputs may be duplicated by a second processing.
pub fn redelivered_ids(logs: &str) -> BTreeSet<String> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["redelivered"] == Value::Bool(true))
        .filter_map(|line| line["messageId"].as_str().map(str::to_owned))
        .collect()
}

/// A worker running in process on its own task, stopped through [`Running::stop`].
pub struct Running {
    handle: JoinHandle<Result<(), WorkerError>>,
    stop: oneshot::Sender<()>,
}

impl Running {
    /// Waits for a worker that stops by itself (a start-up failure) and returns its result.
    pub async fn finished(self) -> Result<(), WorkerError> {
        tokio::time::timeout(Duration::from_secs(40), self.handle)
            .await
            .expect("the worker stops by itself")
            .unwrap()
    }

    /// Asks the worker to stop and waits for a clean exit: every in-process test ends a run
    /// this way, so the grace-period bound is kept in one place.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(40), self.handle)
            .await
            .expect("the worker stops within the grace period")
            .unwrap()
            .unwrap();
    }
}

/// Starts the worker in process with the environment `vars` and the functions of `registry`,
/// as `component worker` would but on this test's runtime.
pub fn start(vars: Vec<(String, String)>, registry: Registry) -> Running {
    let settings = Settings::from_vars(vars).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker::run(settings, &registry, async {
            let _ = stopped.await;
        })
        .await
    });
    Running { handle, stop }
}

/// An AMQP URI without its password, for messages.
pub fn redacted(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "(unparsable URI)".to_owned(),
    }
}

/// Starts `component worker` with exactly `vars` (and `LOG_LEVEL=info`), its log lines going
/// to the file `log` rather than a pipe, which a long run would fill.
pub fn spawn_worker_logging_to(vars: &[(String, String)], log: &std::path::Path) -> Child {
    // Compiled into other packages' tests too (the example's), which start their own binary.
    let Some(binary) = option_env!("CARGO_BIN_EXE_component") else {
        panic!("only the tests of the package with the `component` binary start it")
    };
    spawn_binary_worker_logging_to(std::path::Path::new(binary), vars, log)
}

/// Starts `<binary> worker`, any component built on the runtime, as
/// [`spawn_worker_logging_to`] does.
pub fn spawn_binary_worker_logging_to(
    binary: &std::path::Path,
    vars: &[(String, String)],
    log: &std::path::Path,
) -> Child {
    let file = std::fs::File::create(log).unwrap();
    Command::new(binary)
        .arg("worker")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .expect("the component binary starts")
}

/// Fails when `logs` hold any secret of a worker run on this bed with the [`Provider`]'s
/// tokens: the crypto password, the broker's credentials, the client secret, the tokens.
pub fn assert_no_secret_in(logs: &str) {
    for secret in [
        CRYPTO_PASSWORD,
        "guest:guest",
        "client-s3cr3t",
        "\"at-0",
        "\"at-1",
        "Bearer at",
        "rt-0",
        "rt-1",
    ] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs");
    }
}

pub fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

pub fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

pub fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    header(delivery, name).and_then(sailor::amqp::headers::text_of)
}

pub fn header_int(delivery: &Delivery, name: &str) -> Option<i64> {
    header(delivery, name).and_then(sailor::amqp::headers::int_of)
}

/// Decrypts a data or updateKeys body according to its protocolVersion header.
pub fn decrypt(delivery: &Delivery) -> Value {
    let encoding = Encoding::from_protocol_version(header_int(delivery, "protocolVersion"));
    let plain = cipher().decode(&delivery.data, encoding).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// Decrypts one base64 field of an error body.
pub fn decrypt_field(text: &str) -> Value {
    let plain = cipher().decode(text.as_bytes(), Encoding::Base64).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// The decrypted report of an error event: the event's body is plain JSON, its `error` field
/// encrypted on its own, and the tests read the report far more often than the rest.
pub fn error_report(delivery: &Delivery) -> Value {
    let error: Value = serde_json::from_slice(&delivery.data).unwrap();
    decrypt_field(error["error"].as_str().unwrap())
}

pub fn routing_keys(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| {
            d.routing_key
                .as_str()
                .rsplit('.')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A loopback OAuth2 provider: `/token` rotates `at-N`/`rt-N`, `/items/{n}` wants the current
/// access token and answers `{"n": n}` after `delay_ms`.
#[derive(Clone, Default)]
pub struct Provider {
    pub inner: Arc<Mutex<ProviderState>>,
}

#[derive(Default)]
pub struct ProviderState {
    pub generation: u32,
    pub refreshes: u32,
    pub delay_ms: u64,
    /// How long `/token` takes to answer.
    pub token_delay_ms: u64,
    /// Token requests received, counted before the delay: a test can tell a refresh is under
    /// way.
    pub token_requests_received: u32,
    pub calls: Vec<(u64, String)>,
    /// Until then, `/token` answers 500: an outage of the token endpoint.
    pub token_down_until: Option<Instant>,
    /// Token requests answered 500 by the outage.
    pub token_failures: u32,
    /// The current access token is refused (it expired) until the next refresh.
    pub access_expired: bool,
}

impl Provider {
    pub fn state(&self) -> std::sync::MutexGuard<'_, ProviderState> {
        self.inner.lock().unwrap()
    }

    /// Serves on a loopback port; returns the base URL.
    pub async fn serve(&self) -> String {
        let app = axum::Router::new()
            .route("/token", post(token))
            .route("/items/{n}", get(item))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

async fn token(
    State(provider): State<Provider>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> impl IntoResponse {
    let delay = {
        let mut state = provider.state();
        state.token_requests_received += 1;
        state.token_delay_ms
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let mut state = provider.state();
    if state
        .token_down_until
        .is_some_and(|until| Instant::now() < until)
    {
        state.token_failures += 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "server_error"})),
        );
    }
    let expected = format!("rt-{}", state.generation);
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || form.get("refresh_token") != Some(&expected)
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        );
    }
    state.generation += 1;
    state.refreshes += 1;
    state.access_expired = false;
    let n = state.generation;
    (
        StatusCode::OK,
        axum::Json(json!({
            "access_token": format!("at-{n}"),
            "refresh_token": format!("rt-{n}"),
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": "items.read",
            "instance_url": "https://eu.example"
        })),
    )
}

async fn item(
    State(provider): State<Provider>,
    Path(n): Path<u64>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let (current, delay, expired) = {
        let state = provider.state();
        (
            format!("Bearer at-{}", state.generation),
            state.delay_ms,
            state.access_expired,
        )
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if auth != current || expired {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        );
    }
    tokio::time::sleep(Duration::from_millis(delay)).await;
    provider.state().calls.push((n, auth));
    (StatusCode::OK, axum::Json(json!({ "n": n })))
}

/// A `request` step config against `base`, with a token set that expired an hour ago when
/// `expired`, else one good for an hour.
pub fn request_config(base: &str, expired: bool) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires_at = if expired { now - 3600 } else { now + 3600 };
    json!({
        "oauth": {"access_token": "at-0", "refresh_token": "rt-0", "expires_in": 3600,
                  "token_type": "Bearer", "expires_at": expires_at},
        "client_id": "client-1",
        "client_secret": "client-s3cr3t",
        "token_uri": format!("{base}/token"),
        "api_base_url": base,
        "method": "GET",
        "path": "/items/{n}",
        "_account": "account-1"
    })
}
