//! Builds a flow the way the platform does, to run steps of elastic.io's Node.js runtime and
//! of ours side by side: one direct exchange, a queue per step bound by routing key, a
//! stand-in for the platform API that hands each step its JSON, and the step processes.
//!
//! The crypto here is written independently of the runtime's own, on purpose: a message that
//! the Node.js sailor decrypts was encrypted by this code or by our runtime, never checked
//! against itself.

#![allow(dead_code)]

#[path = "../broker/mod.rs"]
mod broker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use sha2::Digest as _;

pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const CRYPTO_PASSWORD: &str = "interop-crypto-password";
pub const CRYPTO_IV: &str = "interop16bytesIV";
const API_USER: &str = "task-user";
const API_KEY: &str = "task-api-key";

/// AES-256-CBC with elastic.io's key derivation, written independently of `src/crypto.rs`.
pub fn encrypt(plain: &[u8]) -> Vec<u8> {
    let key: [u8; 32] = sha2::Sha256::digest(CRYPTO_PASSWORD.as_bytes()).into();
    let iv: [u8; 16] = CRYPTO_IV.as_bytes().try_into().unwrap();
    cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain)
}

/// The inverse of [`encrypt`].
pub fn decrypt(cipher: &[u8]) -> Vec<u8> {
    let key: [u8; 32] = sha2::Sha256::digest(CRYPTO_PASSWORD.as_bytes()).into();
    let iv: [u8; 16] = CRYPTO_IV.as_bytes().try_into().unwrap();
    cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(cipher)
        .expect("the ciphertext decrypts with the flow's crypto settings")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}

/// Decodes a message body of the given protocol version into its JSON.
pub fn decode(body: &[u8], protocol_version: i64) -> Value {
    let cipher = if protocol_version >= 2 {
        body.to_vec()
    } else {
        unb64(body)
    };
    serde_json::from_slice(&decrypt(&cipher)).expect("decrypted JSON")
}

/// A received AMQP message.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub headers: HashMap<String, AMQPValue>,
    pub body: Vec<u8>,
    pub delivery_mode: Option<u8>,
    pub content_type: Option<String>,
}

impl Received {
    pub fn header_str(&self, name: &str) -> Option<String> {
        match self.headers.get(name)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        }
    }

    pub fn header_int(&self, name: &str) -> Option<i64> {
        Some(match self.headers.get(name)? {
            AMQPValue::ShortShortInt(v) => *v as i64,
            AMQPValue::ShortShortUInt(v) => *v as i64,
            AMQPValue::ShortInt(v) => *v as i64,
            AMQPValue::ShortUInt(v) => *v as i64,
            AMQPValue::LongInt(v) => *v as i64,
            AMQPValue::LongUInt(v) => *v as i64,
            AMQPValue::LongLongInt(v) => *v,
            _ => return None,
        })
    }

    /// The decrypted JSON of a data or updateKeys message.
    pub fn decrypted(&self) -> Value {
        decode(&self.body, self.header_int("protocolVersion").unwrap_or(1))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("plain JSON body")
    }
}

/// One flow: its exchange, queues and routing keys, all named with a unique prefix.
pub struct Flow {
    pub prefix: String,
    pub exchange: String,
    pub flow_id: String,
    connection: Connection,
    channel: Channel,
    queues: Mutex<Vec<String>>,
}

impl Flow {
    pub async fn new() -> Self {
        let prefix = format!("interop-{}", uuid::Uuid::new_v4().simple());
        let connection = Connection::connect(AMQP_URI, ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let exchange = format!("{prefix}:exchange");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            flow_id: format!("flow-{}", &prefix[8..16]),
            prefix,
            exchange,
            connection,
            channel,
            queues: Mutex::new(Vec::new()),
        }
    }

    /// The routing key of `step`'s `kind` events.
    pub fn key(&self, step: &str, kind: &str) -> String {
        format!("{}.{step}.{kind}", self.prefix)
    }

    /// Declares the queue `name` (prefixed) bound to `keys`.
    pub async fn queue(&self, name: &str, keys: &[String]) -> String {
        let queue = format!("{}:{name}", self.prefix);
        self.channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for key in keys {
            self.channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        self.queues.lock().unwrap().push(queue.clone());
        queue
    }

    /// Publishes an encrypted message straight into `queue`, as a previous step would.
    pub async fn send(
        &self,
        queue: &str,
        message: &Value,
        protocol_version: i64,
        headers: &[(&str, &str)],
    ) {
        let cipher = encrypt(message.to_string().as_bytes());
        let body = if protocol_version >= 2 {
            cipher
        } else {
            b64(&cipher).into_bytes()
        };
        let mut table = FieldTable::default();
        table.insert(
            "protocolVersion".into(),
            AMQPValue::ShortShortInt(protocol_version as i8),
        );
        for (name, value) in headers {
            table.insert(
                (*name).into(),
                AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
            );
        }
        self.publish(queue, &body, table).await;
    }

    /// Publishes a received message again, bytes and headers unchanged, into `queue`.
    pub async fn send_raw(&self, queue: &str, message: &Received) {
        let mut table = FieldTable::default();
        for (name, value) in &message.headers {
            table.insert(name.as_str().into(), value.clone());
        }
        self.publish(queue, &message.body, table).await;
    }

    /// Publishes `body` with `headers` straight into `queue` and waits for the broker's ack:
    /// both ways of sending end here, so neither goes on before the message is safe.
    async fn publish(&self, queue: &str, body: &[u8], headers: FieldTable) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Takes the next message from `queue`, waiting up to `timeout`.
    pub async fn next(&self, queue: &str, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self
                .channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                let delivery = message.delivery;
                let headers = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .map(|t| {
                        t.inner()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                return Some(Received {
                    routing_key: delivery.routing_key.as_str().to_owned(),
                    headers,
                    body: delivery.data,
                    delivery_mode: *delivery.properties.delivery_mode(),
                    content_type: delivery
                        .properties
                        .content_type()
                        .as_ref()
                        .map(|s| s.as_str().to_owned()),
                });
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes exactly `n` messages from `queue`, failing the test if they do not arrive.
    pub async fn take(&self, queue: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(queue, left).await {
                Some(message) => out.push(message),
                None => panic!("only {} of {n} messages arrived on {queue}", out.len()),
            }
        }
        out
    }

    /// Messages waiting in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        broker::ready_count(&self.channel, queue).await
    }

    /// Deletes every queue and the exchange.
    pub async fn cleanup(self) {
        let queues = std::mem::take(&mut *self.queues.lock().unwrap());
        broker::delete(&self.channel, &queues, &self.exchange).await;
        let _ = self.connection.close(0, "done".into()).await;
    }
}

/// A stand-in for the platform API: `GET /v1/tasks/{flow}/steps/{step}` and
/// `PUT /v1/accounts/{id}` (rotated keys), with basic auth.
pub struct PlatformApi {
    pub url: String,
    steps: Arc<Mutex<HashMap<String, Value>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The bodies of the `PUT /v1/accounts/{id}` it took, with the account id.
    pub accounts: Arc<Mutex<Vec<(String, Value)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PlatformApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PlatformApi {
    pub async fn start() -> Self {
        use axum::extract::{Path as UrlPath, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        type Shared = (Arc<Mutex<HashMap<String, Value>>>, Arc<Mutex<Vec<String>>>);
        async fn step(
            State((steps, requests)): State<Shared>,
            headers: HeaderMap,
            UrlPath((flow, step)): UrlPath<(String, String)>,
        ) -> axum::response::Response {
            requests.lock().unwrap().push(format!("GET {flow}/{step}"));
            let expected = format!("Basic {}", b64(format!("{API_USER}:{API_KEY}").as_bytes()));
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
            {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            match steps.lock().unwrap().get(&format!("{flow}/{step}")) {
                Some(json) => axum::Json(json.clone()).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        type Accounts = Arc<Mutex<Vec<(String, Value)>>>;
        async fn account(
            State(accounts): State<Accounts>,
            headers: HeaderMap,
            UrlPath(id): UrlPath<String>,
            axum::Json(body): axum::Json<Value>,
        ) -> StatusCode {
            let expected = format!("Basic {}", b64(format!("{API_USER}:{API_KEY}").as_bytes()));
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
            {
                return StatusCode::UNAUTHORIZED;
            }
            accounts.lock().unwrap().push((id, body));
            StatusCode::OK
        }
        let steps = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accounts: Accounts = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/tasks/{flow}/steps/{step}", axum::routing::get(step))
            .with_state((steps.clone(), requests.clone()))
            .merge(
                axum::Router::new()
                    .route("/v1/accounts/{id}", axum::routing::put(account))
                    .with_state(accounts.clone()),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            steps,
            requests,
            accounts,
            server,
        }
    }

    /// Registers the step JSON the platform would hand `step` of `flow`.
    pub fn set_step(&self, flow: &str, step: &str, config: Value, is_passthrough: bool) {
        let json = json!({"id": step, "config": config, "snapshot": {}, "is_passthrough": is_passthrough, "variables": {}});
        self.steps
            .lock()
            .unwrap()
            .insert(format!("{flow}/{step}"), json);
    }
}

/// What one step needs to know to run.
pub struct StepSpec<'a> {
    pub step_id: &'a str,
    pub function: &'a str,
    pub listen: &'a str,
    pub protocol_version: i64,
    pub extra_env: Vec<(String, String)>,
}

/// The elastic.io environment of a step, identical for both runtimes.
pub fn step_env(flow: &Flow, api: &PlatformApi, spec: &StepSpec<'_>) -> Vec<(String, String)> {
    let s = spec.step_id;
    let mut env: Vec<(String, String)> = [
        ("ELASTICIO_AMQP_URI", AMQP_URI.to_owned()),
        ("ELASTICIO_LISTEN_MESSAGES_ON", spec.listen.to_owned()),
        ("ELASTICIO_PUBLISH_MESSAGES_TO", flow.exchange.clone()),
        ("ELASTICIO_DATA_ROUTING_KEY", flow.key(s, "message")),
        ("ELASTICIO_ERROR_ROUTING_KEY", flow.key(s, "error")),
        ("ELASTICIO_REBOUND_ROUTING_KEY", flow.key(s, "rebound")),
        ("ELASTICIO_SNAPSHOT_ROUTING_KEY", flow.key(s, "snapshot")),
        (
            "ELASTICIO_UPDATE_KEYS_ROUTING_KEY",
            flow.key(s, "updateKeys"),
        ),
        (
            "ELASTICIO_MESSAGE_CRYPTO_PASSWORD",
            CRYPTO_PASSWORD.to_owned(),
        ),
        ("ELASTICIO_MESSAGE_CRYPTO_IV", CRYPTO_IV.to_owned()),
        // The flow's own keys exchange: flows of parallel tests share an account id.
        ("COMPONENT_KEYS_EXCHANGE", format!("{}.keys", flow.exchange)),
        ("ELASTICIO_FUNCTION", spec.function.to_owned()),
        ("ELASTICIO_FLOW_ID", flow.flow_id.clone()),
        ("ELASTICIO_EXEC_ID", "exec-1".to_owned()),
        ("ELASTICIO_STEP_ID", s.to_owned()),
        ("ELASTICIO_USER_ID", "user-1".to_owned()),
        ("ELASTICIO_COMP_ID", format!("comp-{s}")),
        ("ELASTICIO_CONTAINER_ID", format!("container-{s}")),
        ("ELASTICIO_WORKSPACE_ID", "workspace-1".to_owned()),
        ("ELASTICIO_API_URI", api.url.clone()),
        ("ELASTICIO_API_USERNAME", API_USER.to_owned()),
        ("ELASTICIO_API_KEY", API_KEY.to_owned()),
        (
            "ELASTICIO_PROTOCOL_VERSION",
            spec.protocol_version.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(spec.extra_env.iter().cloned());
    env
}

/// A running step process, killed when dropped. Its output goes to a log file.
pub struct StepProcess {
    pub name: String,
    child: tokio::process::Child,
    pub log: PathBuf,
}

impl StepProcess {
    fn spawn(name: &str, mut command: tokio::process::Command, env: Vec<(String, String)>) -> Self {
        let log =
            std::env::temp_dir().join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// A step on elastic.io's Node.js runtime, running the fixture component.
    pub fn node(name: &str, env: Vec<(String, String)>) -> Self {
        let dir = node_component_dir();
        assert!(
            dir.join("node_modules/elasticio-sailor-nodejs/run.js")
                .exists(),
            "run `npm ci` in {} (scripts/test does)",
            dir.display()
        );
        let mut command = tokio::process::Command::new("node");
        command
            .arg("node_modules/elasticio-sailor-nodejs/run.js")
            .current_dir(&dir);
        Self::spawn(name, command, env)
    }

    /// A step on our runtime: `component worker`.
    pub fn ours(name: &str, env: Vec<(String, String)>) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_component"));
        command.arg("worker");
        Self::spawn(name, command, env)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub fn node_component_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node-component")
}
