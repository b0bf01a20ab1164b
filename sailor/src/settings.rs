//! The worker's settings, read from the `ELASTICIO_*` environment (DESIGN.md section 3).
//!
//! Names and defaults follow sailor-nodejs 2.7.8 (`lib/settings.js`). Every variable is checked
//! at start-up and every problem is reported in one [`SettingsError`], so a misconfigured
//! deployment is fixed in one round. The AMQP URI and the crypto password are secrets: their
//! `Debug` shows host and vhost only, or nothing.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::{BadIv, Encoding, MessageCipher};
use crate::secret::Password;
use crate::telemetry::logs::LogFormat;

/// Default `ELASTICIO_UPDATE_KEYS_ROUTING_KEY`.
pub const DEFAULT_UPDATE_KEYS_ROUTING_KEY: &str = "updateKeys";
/// Default `ELASTICIO_RABBITMQ_PREFETCH_SAILOR`.
pub const DEFAULT_PREFETCH: u16 = 1;
/// Default `ELASTICIO_REBOUND_LIMIT`.
pub const DEFAULT_REBOUND_LIMIT: u32 = 20;
/// Default `ELASTICIO_REBOUND_INITIAL_EXPIRATION`, in milliseconds.
pub const DEFAULT_REBOUND_INITIAL_EXPIRATION_MS: u64 = 15_000;
/// Default `ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT`, in bytes (10 MiB).
pub const DEFAULT_OUTGOING_MESSAGE_SIZE_LIMIT: usize = 10 * 1024 * 1024;
/// Default `ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD`, in bytes (1 MiB, sailor-nodejs').
pub const DEFAULT_OBJECT_STORAGE_SIZE_THRESHOLD: usize = 1024 * 1024;
/// Default `COMPONENT_OBJECT_STORAGE_MAX_BYTES`: the most bytes of one stored body read back
/// from object storage, whose bodies are by definition over the message size threshold.
pub const DEFAULT_OBJECT_STORAGE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default `ELASTICIO_AMQP_PUBLISH_RETRY_DELAY`, in milliseconds.
pub const DEFAULT_PUBLISH_RETRY_DELAY_MS: u64 = 100;
/// Default `ELASTICIO_AMQP_PUBLISH_MAX_RETRY_DELAY`, in milliseconds (5 minutes).
pub const DEFAULT_PUBLISH_MAX_RETRY_DELAY_MS: u64 = 300_000;
/// Requests to the platform API, the first included, while it fails with 5xx or a network
/// error: what sailor-nodejs in effect does (its REST client's default, since it drops the
/// settings it is given).
pub const DEFAULT_API_REQUEST_RETRY_ATTEMPTS: u32 = 3;
/// Milliseconds between two requests to a failing platform API (sailor-nodejs' REST client).
pub const DEFAULT_API_REQUEST_RETRY_DELAY_MS: u64 = 1_000;
/// Seconds from SIGTERM to exit, whatever the broker and the API do (sailor-jvm's 30 s,
/// within Kubernetes' default grace period).
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 30;
/// Seconds one delivery may run before the worker counts as wedged and `/healthz` fails:
/// far above any sane call (the publisher alone gives up on an unreachable broker after a
/// minute), so that only a worker that is really stuck is restarted.
pub const DEFAULT_STUCK_DELIVERY_TIMEOUT_S: u64 = 900;

/// The AMQP URI, credentials included. `Debug` prints host, port and vhost only.
#[derive(Clone)]
pub struct AmqpUri {
    raw: String,
    parsed: lapin::uri::AMQPUri,
}

impl AmqpUri {
    /// Parses the URI; the error never repeats the URI (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let parsed: lapin::uri::AMQPUri = raw
            .parse()
            .map_err(|_| "is not an amqp:// or amqps:// URI".to_owned())?;
        Ok(Self {
            raw: raw.to_owned(),
            parsed,
        })
    }

    /// The URI with its password: for connecting only.
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    /// The URI as lapin parsed it, password included: for connecting only.
    pub fn expose_parsed(&self) -> &lapin::uri::AMQPUri {
        &self.parsed
    }

    /// `host:port`, safe to log.
    pub fn host(&self) -> String {
        let authority = &self.parsed.authority;
        format!("{}:{}", authority.host, authority.port)
    }

    /// The vhost, safe to log.
    pub fn vhost(&self) -> &str {
        &self.parsed.vhost
    }
}

impl std::fmt::Debug for AmqpUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpUri")
            .field("host", &self.host())
            .field("vhost", &self.vhost())
            .finish_non_exhaustive()
    }
}

/// Identity of this step, copied into the headers of everything it publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// `ELASTICIO_FLOW_ID`, sent as `taskId`.
    pub flow_id: String,
    /// `ELASTICIO_EXEC_ID`.
    pub exec_id: String,
    /// `ELASTICIO_STEP_ID`.
    pub step_id: String,
    /// `ELASTICIO_USER_ID`.
    pub user_id: String,
    /// `ELASTICIO_COMP_ID`.
    pub comp_id: String,
    /// `ELASTICIO_CONTAINER_ID`.
    pub container_id: String,
    /// `ELASTICIO_WORKSPACE_ID`.
    pub workspace_id: String,
    /// `ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS`: extra headers, named as sailor-nodejs names
    /// them, with their values; the identity headers above win over a namesake.
    pub additional: Vec<(String, String)>,
}

/// Where the step config comes from.
#[derive(Clone)]
pub enum StepSource {
    /// `ELASTICIO_CFG`: the config JSON itself. It holds credentials, so `Debug` hides it.
    Inline(String),
    /// `ELASTICIO_CFG_FILE`: a file holding the config JSON.
    File(PathBuf),
    /// The platform API's step endpoint.
    Api(PlatformApi),
}

/// The platform API: where the step definition, the startup hook's data and (with the keys
/// destination) rotated keys live. Its key is a secret: `Debug` hides it.
#[derive(Clone)]
pub struct PlatformApi {
    /// `ELASTICIO_API_URI`.
    pub base_uri: String,
    /// `ELASTICIO_API_USERNAME`.
    pub username: String,
    /// `ELASTICIO_API_KEY`.
    pub key: Password,
    /// `ELASTICIO_API_REQUEST_RETRY_ATTEMPTS` and `_DELAY`.
    pub retry: ApiRetry,
}

impl std::fmt::Debug for PlatformApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformApi")
            .field("base_uri", &self.base_uri)
            .field("username", &self.username)
            .field("key", &self.key)
            .field("retry", &self.retry)
            .finish()
    }
}

/// How patiently the platform API is asked: `attempts` requests at most, `delay` apart, while
/// it answers 5xx or cannot be reached; any other failure is final at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRetry {
    /// Requests in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait between two requests.
    pub delay: Duration,
}

impl std::fmt::Debug for StepSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Api(api) => f.debug_tuple("Api").field(api).finish(),
        }
    }
}

/// How failed publishes are retried: `min(delay * 2^n, max_delay)`, `attempts` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishRetry {
    /// Retries after the first attempt; `None` retries forever (sailor-nodejs' `Infinity`).
    pub attempts: Option<u32>,
    /// Base delay.
    pub delay: Duration,
    /// Cap on the delay.
    pub max_delay: Duration,
}

impl PublishRetry {
    /// The wait before retry number `retry` (1-based).
    pub fn delay_for(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where message bodies too large for the broker live: elastic.io's object storage
/// (maester), as sailor-nodejs reaches it. Either value may be missing; a worker that never
/// meets a lightweight message does not need them.
#[derive(Clone, Debug)]
pub struct ObjectStorageSettings {
    /// `ELASTICIO_OBJECT_STORAGE_URI`: the service's base URI (`{uri}/objects/{id}`).
    pub uri: Option<String>,
    /// `ELASTICIO_OBJECT_STORAGE_TOKEN`: the bearer token of every request. A secret.
    pub token: Option<Password>,
    /// `ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD`: outgoing bodies (passthrough bodies
    /// included) longer than this many bytes of JSON are stored, when lightweight output is on.
    pub size_threshold: usize,
    /// `ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE`: store outgoing bodies over the threshold and send
    /// only their id (false).
    pub emit_lightweight: bool,
    /// `COMPONENT_OBJECT_STORAGE_MAX_BYTES`: the most bytes of one stored body read back.
    pub max_bytes: u64,
}

/// `ELASTICIO_INPUT_FORMAT`: what the step's queue carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputFormat {
    /// `default`: encrypted messages from the previous step.
    #[default]
    Default,
    /// `error`: error events of other steps (an error-handling flow); the function gets
    /// `{"error": <report>, "errorInput": <the failed input>}` decrypted, as sailor-nodejs
    /// hands it over.
    Error,
}

/// `ELASTICIO_AMQP_RECONNECT_ATTEMPTS` and `_TIMEOUT`: how the consuming connection is
/// reopened after it failed or was lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconnect {
    /// Failed attempts in a row after which the worker gives up and exits 1; `None` (the
    /// variable unset) tries until shutdown.
    pub attempts: Option<u32>,
    /// The wait between two attempts; `None` (unset) waits 100 ms, doubling up to 5 s.
    pub delay: Option<Duration>,
}

/// Everything the worker reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ELASTICIO_AMQP_URI`.
    pub amqp_uri: AmqpUri,
    /// `ELASTICIO_LISTEN_MESSAGES_ON`: the queue to consume.
    pub listen_messages_on: String,
    /// `ELASTICIO_PUBLISH_MESSAGES_TO`: the exchange for everything published.
    pub publish_messages_to: String,
    /// `ELASTICIO_DATA_ROUTING_KEY`.
    pub data_routing_key: String,
    /// `ELASTICIO_ERROR_ROUTING_KEY`.
    pub error_routing_key: String,
    /// `ELASTICIO_SNAPSHOT_ROUTING_KEY`.
    pub snapshot_routing_key: String,
    /// `ELASTICIO_REBOUND_ROUTING_KEY`.
    pub rebound_routing_key: String,
    /// `ELASTICIO_UPDATE_KEYS_ROUTING_KEY`.
    pub update_keys_routing_key: String,
    /// `ELASTICIO_FUNCTION`: the trigger or action to run.
    pub function: String,
    /// `ELASTICIO_MESSAGE_CRYPTO_PASSWORD` and `_IV`, as the cipher they make.
    pub cipher: MessageCipher,
    /// The identity headers.
    pub identity: Identity,
    /// Where the step config comes from.
    pub step_source: StepSource,
    /// `ELASTICIO_RABBITMQ_PREFETCH_SAILOR`: messages processed at once.
    pub prefetch: u16,
    /// `ELASTICIO_PROTOCOL_VERSION`: encoding of outgoing data and updateKeys.
    pub protocol: Encoding,
    /// `ELASTICIO_AMQP_PERSISTENT_MESSAGES`: delivery mode 2 instead of 1.
    pub persistent_messages: bool,
    /// `ELASTICIO_REBOUND_LIMIT`.
    pub rebound_limit: u32,
    /// `ELASTICIO_REBOUND_INITIAL_EXPIRATION`.
    pub rebound_initial_expiration: Duration,
    /// `ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT`, in bytes of the encoded body.
    pub outgoing_message_size_limit: usize,
    /// `ELASTICIO_AMQP_PUBLISH_RETRY_*`.
    pub publish_retry: PublishRetry,
    /// `ELASTICIO_NO_SELF_PASSTRHOUGH` (sic, as the platform spells it).
    pub no_self_passthrough: bool,
    /// `ELASTICIO_NO_ERROR_REPLIES`: do not send an input's error to its `reply_to` queue.
    pub no_error_replies: bool,
    /// `ELASTICIO_OBJECT_STORAGE_*` and `ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE`.
    pub object_storage: ObjectStorageSettings,
    /// `COMPONENT_SHUTDOWN_TIMEOUT` (seconds): from the shutdown signal to exit, at most.
    pub shutdown_timeout: Duration,
    /// `COMPONENT_METRICS_ADDR` (host:port): where `/metrics`, `/healthz` and `/readyz` are
    /// served; `None` (unset) serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// `COMPONENT_STUCK_DELIVERY_TIMEOUT` (seconds): a delivery running longer makes
    /// `/healthz` fail, so that the orchestrator restarts a wedged worker.
    pub stuck_delivery_timeout: Duration,
    /// `COMPONENT_LOG_FORMAT`: the shape of the worker's JSON log lines. The binary reads it
    /// before the settings, to log from the start; it is here so that a typo is listed with
    /// the other problems.
    pub log_format: LogFormat,
    /// `ELASTICIO_STARTUP_REQUIRED`: run the function's `startup` hook before consuming and
    /// store its result through the platform API.
    pub startup_required: bool,
    /// `COMPONENT_KEYS_EXCHANGE`: where the account's keys travel between the processes that
    /// share it (see [`crate::amqp::account_keys`]).
    pub keys_exchange: String,
    /// The platform API, when `ELASTICIO_API_URI`, `_USERNAME` and `_KEY` are all set.
    pub platform_api: Option<PlatformApi>,
    /// `COMPONENT_KEYS_DESTINATION`: where rotated keys go (see
    /// [`crate::platform_keys::KeysDestination`]).
    pub keys_destination: crate::platform_keys::KeysDestination,
    /// `ELASTICIO_DATA_RATE_LIMIT`, `_ERROR_`, `_SNAPSHOT_` and `ELASTICIO_RATE_INTERVAL`.
    pub rate_limits: crate::throttle::RateLimits,
    /// `ELASTICIO_INPUT_FORMAT`.
    pub input_format: InputFormat,
    /// `ELASTICIO_AMQP_RECONNECT_*`.
    pub reconnect: Reconnect,
    /// Problems that do not stop start-up, to be logged.
    pub warnings: Vec<String>,
}

/// The environment cannot run a worker; lists every problem at once.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the ELASTICIO_* environment is invalid:\n  - {}", problems.join("\n  - "))]
pub struct SettingsError {
    /// One line per missing or malformed variable.
    pub problems: Vec<String>,
}

struct Reader {
    vars: BTreeMap<String, String>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

impl Reader {
    fn new(vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(value) => value.to_owned(),
            None => {
                self.problems.push(format!("{name} is missing"));
                String::new()
            }
        }
    }

    fn identity(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(value) => value.to_owned(),
            None => {
                self.warnings
                    .push(format!("{name} is missing; its header will be empty"));
                String::new()
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd>(&mut self, name: &str, default: T, min: T) -> T {
        match self.get(name) {
            None => default,
            Some(text) => match text.trim().parse::<T>() {
                Ok(value) if value >= min => value,
                _ => {
                    self.problems
                        .push(format!("{name} is not a valid number: {text:?}"));
                    default
                }
            },
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        // sailor-nodejs: unset or "false" is false. We also refuse typos instead of reading
        // them as true.
        match self.vars.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if ["", "false", "0", "no"].contains(&v.as_str()) => false,
            Some(v) if ["true", "1", "yes"].contains(&v.as_str()) => true,
            Some(v) => {
                self.problems
                    .push(format!("{name} is not a boolean: {v:?}"));
                false
            }
        }
    }
    /// `ELASTICIO_API_URI`, `_USERNAME`, `_KEY` and the retry settings, when all three are
    /// set; `Err` with the names of the missing ones otherwise.
    fn platform_api(&mut self) -> Result<PlatformApi, Vec<&'static str>> {
        let api = (
            self.get("ELASTICIO_API_URI").map(str::to_owned),
            self.get("ELASTICIO_API_USERNAME").map(str::to_owned),
            self.get("ELASTICIO_API_KEY").map(Password::new),
        );
        if let Some(uri) = &api.0
            && !matches!(url::Url::parse(uri), Ok(url) if ["http", "https"].contains(&url.scheme()))
        {
            self.problems.push(format!(
                "ELASTICIO_API_URI is not an http:// or https:// URL: {uri:?}"
            ));
        }
        match api {
            (Some(base_uri), Some(username), Some(key)) => Ok(PlatformApi {
                base_uri: base_uri.trim_end_matches('/').to_owned(),
                username,
                key,
                retry: ApiRetry {
                    attempts: self.number(
                        "ELASTICIO_API_REQUEST_RETRY_ATTEMPTS",
                        DEFAULT_API_REQUEST_RETRY_ATTEMPTS,
                        1,
                    ),
                    delay: Duration::from_millis(self.number(
                        "ELASTICIO_API_REQUEST_RETRY_DELAY",
                        DEFAULT_API_REQUEST_RETRY_DELAY_MS,
                        0,
                    )),
                },
            }),
            (uri, user, key) => Err([
                (uri.is_none(), "ELASTICIO_API_URI"),
                (user.is_none(), "ELASTICIO_API_USERNAME"),
                (key.is_none(), "ELASTICIO_API_KEY"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect()),
        }
    }

    /// `COMPONENT_KEYS_DESTINATION`: `amqp`, `api` or `both`; unset chooses by what is
    /// configured.
    fn keys_destination(&mut self) -> crate::platform_keys::KeysDestination {
        let text = self.get("COMPONENT_KEYS_DESTINATION").map(str::to_owned);
        crate::platform_keys::KeysDestination::parse(text.as_deref()).unwrap_or_else(|problem| {
            self.problems
                .push(format!("COMPONENT_KEYS_DESTINATION {problem}"));
            crate::platform_keys::KeysDestination::default()
        })
    }

    /// The rate limits, sailor-nodejs' defaults for those unset.
    fn rate_limits(&mut self) -> crate::throttle::RateLimits {
        use crate::throttle::RateLimits;
        let defaults = RateLimits::default();
        RateLimits {
            data: self.number("ELASTICIO_DATA_RATE_LIMIT", defaults.data, 1),
            error: self.number("ELASTICIO_ERROR_RATE_LIMIT", defaults.error, 1),
            snapshot: self.number("ELASTICIO_SNAPSHOT_RATE_LIMIT", defaults.snapshot, 1),
            interval: Duration::from_millis(self.number(
                "ELASTICIO_RATE_INTERVAL",
                defaults.interval.as_millis() as u64,
                1,
            )),
        }
    }

    /// `ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS`: a comma-separated list of variable names;
    /// each becomes a header named as sailor-nodejs names it (`ELASTICIO_` dropped, then
    /// camelCased: `ELASTICIO_TENANT_ID` is `tenantId`) holding the variable's value. A
    /// variable that is not set gives no header (amqplib leaves `undefined` out).
    fn additional_headers(&self) -> Vec<(String, String)> {
        let Some(list) = self.get("ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS") else {
            return Vec::new();
        };
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .filter_map(|name| {
                let value = self.vars.get(name)?;
                let key = name.strip_prefix("ELASTICIO_").unwrap_or(name);
                Some((crate::amqp::headers::camel_case(key), value.clone()))
            })
            .collect()
    }

    /// `ELASTICIO_INPUT_FORMAT`: `default` (also when unset) or `error`.
    fn input_format(&mut self) -> InputFormat {
        match self.get("ELASTICIO_INPUT_FORMAT").map(str::trim) {
            None | Some("default") => InputFormat::Default,
            Some("error") => InputFormat::Error,
            Some(other) => {
                self.problems.push(format!(
                    "ELASTICIO_INPUT_FORMAT must be default or error, not {other:?}"
                ));
                InputFormat::Default
            }
        }
    }

    /// `ELASTICIO_AMQP_RECONNECT_ATTEMPTS` and `_TIMEOUT` (milliseconds).
    fn reconnect(&mut self) -> Reconnect {
        let attempts = self
            .get("ELASTICIO_AMQP_RECONNECT_ATTEMPTS")
            .is_some()
            .then(|| self.number("ELASTICIO_AMQP_RECONNECT_ATTEMPTS", 0u32, 0));
        let delay = self
            .get("ELASTICIO_AMQP_RECONNECT_TIMEOUT")
            .is_some()
            .then(|| {
                Duration::from_millis(self.number("ELASTICIO_AMQP_RECONNECT_TIMEOUT", 0u64, 0))
            });
        Reconnect { attempts, delay }
    }

    /// `COMPONENT_KEYS_EXCHANGE`, or its default.
    fn keys_exchange(&self) -> String {
        self.get("COMPONENT_KEYS_EXCHANGE")
            .unwrap_or(crate::amqp::account_keys::DEFAULT_KEYS_EXCHANGE)
            .to_owned()
    }

    /// `COMPONENT_METRICS_ADDR`: an IP and port, or a name that resolves (`localhost:9090`).
    fn metrics_addr(&mut self) -> Option<SocketAddr> {
        let text = self.get("COMPONENT_METRICS_ADDR")?.trim().to_owned();
        let resolved = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| text.to_socket_addrs().ok()?.next());
        if resolved.is_none() {
            self.problems.push(format!(
                "COMPONENT_METRICS_ADDR is not a host:port address: {text:?}"
            ));
        }
        resolved
    }

    fn log_format(&mut self) -> LogFormat {
        let value = self.get("COMPONENT_LOG_FORMAT");
        LogFormat::parse(value).unwrap_or_else(|problem| {
            self.problems
                .push(format!("COMPONENT_LOG_FORMAT {problem}"));
            LogFormat::default()
        })
    }

    fn amqp_uri(&mut self) -> Option<AmqpUri> {
        let raw = self.required("ELASTICIO_AMQP_URI");
        match AmqpUri::parse(&raw) {
            Ok(uri) => Some(uri),
            Err(problem) if !raw.is_empty() => {
                self.problems.push(format!("ELASTICIO_AMQP_URI {problem}"));
                None
            }
            Err(_) => None,
        }
    }

    fn cipher(&mut self) -> Option<MessageCipher> {
        let password = Password::new(self.required("ELASTICIO_MESSAGE_CRYPTO_PASSWORD"));
        let iv = self.required("ELASTICIO_MESSAGE_CRYPTO_IV");
        match MessageCipher::new(&password, &iv) {
            Ok(cipher) => Some(cipher),
            Err(BadIv(len)) => {
                if !iv.is_empty() {
                    self.problems.push(format!(
                        "ELASTICIO_MESSAGE_CRYPTO_IV must be exactly 16 bytes, not {len}"
                    ));
                }
                None
            }
        }
    }

    /// The identity of a process outside any flow (a credential check): every value may be
    /// missing, which leaves its header empty.
    fn identities(&mut self) -> Identity {
        self.identities_with(Self::identity)
    }

    /// The identity of a step: sailor-nodejs' `requiredAlways`, every one required.
    fn required_identities(&mut self) -> Identity {
        self.identities_with(Self::required)
    }

    fn identities_with(&mut self, mut read: impl FnMut(&mut Self, &str) -> String) -> Identity {
        // In sailor-nodejs' order, so that the problems list reads like its errors.
        Identity {
            flow_id: read(self, "ELASTICIO_FLOW_ID"),
            exec_id: read(self, "ELASTICIO_EXEC_ID"),
            step_id: read(self, "ELASTICIO_STEP_ID"),
            container_id: read(self, "ELASTICIO_CONTAINER_ID"),
            workspace_id: read(self, "ELASTICIO_WORKSPACE_ID"),
            user_id: read(self, "ELASTICIO_USER_ID"),
            comp_id: read(self, "ELASTICIO_COMP_ID"),
            additional: self.additional_headers(),
        }
    }

    fn protocol(&mut self) -> Encoding {
        match self.number("ELASTICIO_PROTOCOL_VERSION", 1u8, 1) {
            1 => Encoding::Base64,
            2 => Encoding::Raw,
            other => {
                self.problems.push(format!(
                    "ELASTICIO_PROTOCOL_VERSION must be 1 or 2, not {other}"
                ));
                Encoding::Base64
            }
        }
    }

    /// The object storage variables. Lightweight output without a place to store bodies is a
    /// problem at start-up, not a failure of every large message later.
    fn object_storage(&mut self) -> ObjectStorageSettings {
        let settings = ObjectStorageSettings {
            uri: self.get("ELASTICIO_OBJECT_STORAGE_URI").map(str::to_owned),
            token: self
                .get("ELASTICIO_OBJECT_STORAGE_TOKEN")
                .map(Password::new),
            size_threshold: self.number(
                "ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD",
                DEFAULT_OBJECT_STORAGE_SIZE_THRESHOLD,
                0,
            ),
            emit_lightweight: self.flag("ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE"),
            max_bytes: self.number(
                "COMPONENT_OBJECT_STORAGE_MAX_BYTES",
                DEFAULT_OBJECT_STORAGE_MAX_BYTES,
                1,
            ),
        };
        if settings.emit_lightweight {
            for (missing, name) in [
                (settings.uri.is_none(), "ELASTICIO_OBJECT_STORAGE_URI"),
                (settings.token.is_none(), "ELASTICIO_OBJECT_STORAGE_TOKEN"),
            ] {
                if missing {
                    self.problems.push(format!(
                        "ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE is on but {name} is missing"
                    ));
                }
            }
        }
        settings
    }

    fn update_keys_routing_key(&self) -> String {
        self.get("ELASTICIO_UPDATE_KEYS_ROUTING_KEY")
            .unwrap_or(DEFAULT_UPDATE_KEYS_ROUTING_KEY)
            .to_owned()
    }

    /// `ELASTICIO_AMQP_PUBLISH_RETRY_*`; unset attempts mean `default_attempts`.
    fn publish_retry(&mut self, default_attempts: Option<u32>) -> PublishRetry {
        let attempts = match self.get("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS") {
            None => default_attempts,
            Some("Infinity") => None,
            Some(_) => Some(self.number("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", 0u32, 0)),
        };
        PublishRetry {
            attempts,
            delay: Duration::from_millis(self.number(
                "ELASTICIO_AMQP_PUBLISH_RETRY_DELAY",
                DEFAULT_PUBLISH_RETRY_DELAY_MS,
                0,
            )),
            max_delay: Duration::from_millis(self.number(
                "ELASTICIO_AMQP_PUBLISH_MAX_RETRY_DELAY",
                DEFAULT_PUBLISH_MAX_RETRY_DELAY_MS,
                0,
            )),
        }
    }
}

/// What publishing `updateKeys` alone takes: the AMQP side of `verify_credentials`, which
/// runs outside any flow and so has no queue, function or routing keys of its own.
#[derive(Clone, Debug)]
pub struct KeysSettings {
    /// `ELASTICIO_AMQP_URI`.
    pub amqp_uri: AmqpUri,
    /// `ELASTICIO_PUBLISH_MESSAGES_TO`.
    pub publish_messages_to: String,
    /// `ELASTICIO_UPDATE_KEYS_ROUTING_KEY`.
    pub update_keys_routing_key: String,
    /// `ELASTICIO_MESSAGE_CRYPTO_PASSWORD` and `_IV`.
    pub cipher: MessageCipher,
    /// `ELASTICIO_PROTOCOL_VERSION`.
    pub protocol: Encoding,
    /// The identity headers.
    pub identity: Identity,
    /// `ELASTICIO_AMQP_PUBLISH_RETRY_*`; three retries unless set, so that a check ends.
    pub publish_retry: PublishRetry,
    /// `ELASTICIO_AMQP_PERSISTENT_MESSAGES`.
    pub persistent_messages: bool,
    /// `COMPONENT_KEYS_EXCHANGE`, as for the worker.
    pub keys_exchange: String,
}

/// Publish retries of `verify_credentials` when `ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS` is
/// unset: a check must end, unlike a worker that may wait for a full queue to drain.
pub const DEFAULT_KEYS_PUBLISH_RETRY_ATTEMPTS: u32 = 3;

impl KeysSettings {
    /// Reads the process environment; `None` when `ELASTICIO_AMQP_URI` is not set.
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables; `None` when `ELASTICIO_AMQP_URI` is not among them.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Result<Option<Self>, SettingsError> {
        let mut r = Reader::new(vars);
        if r.get("ELASTICIO_AMQP_URI").is_none() {
            return Ok(None);
        }
        let amqp_uri = r.amqp_uri();
        let publish_messages_to = r.required("ELASTICIO_PUBLISH_MESSAGES_TO");
        let update_keys_routing_key = r.update_keys_routing_key();
        let cipher = r.cipher();
        let protocol = r.protocol();
        let identity = r.identities();
        let publish_retry = r.publish_retry(Some(DEFAULT_KEYS_PUBLISH_RETRY_ATTEMPTS));
        let persistent_messages = r.flag("ELASTICIO_AMQP_PERSISTENT_MESSAGES");
        let keys_exchange = r.keys_exchange();
        match (amqp_uri, cipher) {
            (Some(amqp_uri), Some(cipher)) if r.problems.is_empty() => Ok(Some(Self {
                amqp_uri,
                publish_messages_to,
                update_keys_routing_key,
                cipher,
                protocol,
                identity,
                publish_retry,
                persistent_messages,
                keys_exchange,
            })),
            _ => Err(SettingsError {
                problems: r.problems,
            }),
        }
    }
}

impl Settings {
    /// What a publisher of `updateKeys` outside a delivery needs (the hooks' keys), from the
    /// worker's settings.
    pub fn keys_settings(&self) -> KeysSettings {
        KeysSettings {
            amqp_uri: self.amqp_uri.clone(),
            publish_messages_to: self.publish_messages_to.clone(),
            update_keys_routing_key: self.update_keys_routing_key.clone(),
            cipher: self.cipher.clone(),
            protocol: self.protocol,
            identity: self.identity.clone(),
            publish_retry: self.publish_retry,
            persistent_messages: self.persistent_messages,
            keys_exchange: self.keys_exchange.clone(),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables, as if they were the environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Result<Self, SettingsError> {
        let mut r = Reader::new(vars);
        let amqp_uri = r.amqp_uri();
        let listen_messages_on = r.required("ELASTICIO_LISTEN_MESSAGES_ON");
        let publish_messages_to = r.required("ELASTICIO_PUBLISH_MESSAGES_TO");
        let data_routing_key = r.required("ELASTICIO_DATA_ROUTING_KEY");
        let error_routing_key = r.required("ELASTICIO_ERROR_ROUTING_KEY");
        let snapshot_routing_key = r.required("ELASTICIO_SNAPSHOT_ROUTING_KEY");
        let rebound_routing_key = r.required("ELASTICIO_REBOUND_ROUTING_KEY");
        let update_keys_routing_key = r.update_keys_routing_key();
        let function = r.required("ELASTICIO_FUNCTION");
        let cipher = r.cipher();
        let identity = r.required_identities();
        let platform_api = r.platform_api();
        let step_source = Self::step_source(&mut r, &platform_api);
        if let Err(missing) = &platform_api
            && missing.len() < 3
        {
            r.warnings.push(format!(
                "the platform API variables are incomplete (missing: {}): the API is not used",
                missing.join(", ")
            ));
        }
        let platform_api = platform_api.ok();
        let keys_destination = r.keys_destination();
        if let Err(problem) = keys_destination.check(platform_api.is_some(), true) {
            r.problems.push(problem);
        }
        let rate_limits = r.rate_limits();
        let input_format = r.input_format();
        let reconnect = r.reconnect();
        let prefetch = r.number("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", DEFAULT_PREFETCH, 1);
        let protocol = r.protocol();
        let persistent_messages = r.flag("ELASTICIO_AMQP_PERSISTENT_MESSAGES");
        let rebound_limit = r.number("ELASTICIO_REBOUND_LIMIT", DEFAULT_REBOUND_LIMIT, 0);
        let rebound_initial_expiration = Duration::from_millis(r.number(
            "ELASTICIO_REBOUND_INITIAL_EXPIRATION",
            DEFAULT_REBOUND_INITIAL_EXPIRATION_MS,
            1,
        ));
        let outgoing_message_size_limit = r.number(
            "ELASTICIO_OUTGOING_MESSAGE_SIZE_LIMIT",
            DEFAULT_OUTGOING_MESSAGE_SIZE_LIMIT,
            1,
        );
        let publish_retry = r.publish_retry(None);
        let no_self_passthrough = r.flag("ELASTICIO_NO_SELF_PASSTRHOUGH");
        let no_error_replies = r.flag("ELASTICIO_NO_ERROR_REPLIES");
        let object_storage = r.object_storage();
        let shutdown_timeout = Duration::from_secs(r.number(
            "COMPONENT_SHUTDOWN_TIMEOUT",
            DEFAULT_SHUTDOWN_TIMEOUT_S,
            1,
        ));
        let metrics_addr = r.metrics_addr();
        let stuck_delivery_timeout = Duration::from_secs(r.number(
            "COMPONENT_STUCK_DELIVERY_TIMEOUT",
            DEFAULT_STUCK_DELIVERY_TIMEOUT_S,
            1,
        ));
        let log_format = r.log_format();
        let keys_exchange = r.keys_exchange();
        let startup_required = r.flag("ELASTICIO_STARTUP_REQUIRED");
        if startup_required && platform_api.is_none() {
            r.problems.push(
                "ELASTICIO_STARTUP_REQUIRED is set, but the startup hook's data is stored through \
                 the platform API: set ELASTICIO_API_URI, ELASTICIO_API_USERNAME and ELASTICIO_API_KEY"
                    .to_owned(),
            );
        }
        match (amqp_uri, cipher, step_source) {
            (Some(amqp_uri), Some(cipher), Some(step_source)) if r.problems.is_empty() => {
                Ok(Self {
                    amqp_uri,
                    listen_messages_on,
                    publish_messages_to,
                    data_routing_key,
                    error_routing_key,
                    snapshot_routing_key,
                    rebound_routing_key,
                    update_keys_routing_key,
                    function,
                    cipher,
                    identity,
                    step_source,
                    prefetch,
                    protocol,
                    persistent_messages,
                    rebound_limit,
                    rebound_initial_expiration,
                    outgoing_message_size_limit,
                    publish_retry,
                    no_self_passthrough,
                    no_error_replies,
                    object_storage,
                    shutdown_timeout,
                    metrics_addr,
                    stuck_delivery_timeout,
                    log_format,
                    startup_required,
                    keys_exchange,
                    platform_api,
                    keys_destination,
                    rate_limits,
                    input_format,
                    reconnect,
                    warnings: r.warnings,
                })
            }
            _ => Err(SettingsError {
                problems: r.problems,
            }),
        }
    }

    fn step_source(
        r: &mut Reader,
        api: &Result<PlatformApi, Vec<&'static str>>,
    ) -> Option<StepSource> {
        if let Some(json) = r.get("ELASTICIO_CFG") {
            return Some(StepSource::Inline(json.to_owned()));
        }
        if let Some(path) = r.get("ELASTICIO_CFG_FILE") {
            return Some(StepSource::File(PathBuf::from(path)));
        }
        match api {
            Ok(api) => Some(StepSource::Api(api.clone())),
            Err(missing) => {
                r.problems.push(format!(
                    "no step config: set ELASTICIO_CFG or ELASTICIO_CFG_FILE, or the platform API \
                     variables (missing: {})",
                    missing.join(", ")
                ));
                None
            }
        }
    }
}

/// What `worker` reads when `ELASTICIO_HOOK_SHUTDOWN` is set: the platform stops a flow by
/// starting the step once more, to run its `shutdown` hook, without the message-processing
/// variables (sailor-nodejs asks for the identity, the function and the platform API only).
#[derive(Clone, Debug)]
pub struct HookSettings {
    /// `ELASTICIO_FUNCTION`.
    pub function: String,
    /// The identity variables.
    pub identity: Identity,
    /// Where the step config comes from.
    pub step_source: StepSource,
    /// The platform API, where the startup hook's data is.
    pub platform_api: PlatformApi,
}

impl HookSettings {
    /// True when the environment asks for the shutdown hook (`ELASTICIO_HOOK_SHUTDOWN` set
    /// to anything but `false` or `0`).
    pub fn requested() -> bool {
        std::env::var("ELASTICIO_HOOK_SHUTDOWN").is_ok_and(|value| {
            let value = value.trim().to_ascii_lowercase();
            !value.is_empty() && value != "false" && value != "0"
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the given variables, as if they were the environment.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Result<Self, SettingsError> {
        let mut r = Reader::new(vars);
        let function = r.required("ELASTICIO_FUNCTION");
        let identity = r.required_identities();
        let api = r.platform_api();
        let step_source = Settings::step_source(&mut r, &api);
        let platform_api = api.ok();
        if platform_api.is_none() {
            r.problems.push(
                "the shutdown hook reads its startup data through the platform API: set \
                 ELASTICIO_API_URI, ELASTICIO_API_USERNAME and ELASTICIO_API_KEY"
                    .to_owned(),
            );
        }
        match (platform_api, step_source) {
            (Some(platform_api), Some(step_source)) if r.problems.is_empty() => Ok(Self {
                function,
                identity,
                step_source,
                platform_api,
            }),
            _ => Err(SettingsError {
                problems: r.problems,
            }),
        }
    }
}

/// Where a credential check (`verify_credentials`) sends the keys it rotates, besides its
/// answer: the platform API when its variables are set, as sailor-nodejs' service methods
/// do, and the broker per [`KeysSettings`].
#[derive(Clone, Debug)]
pub struct KeysApiSettings {
    /// The platform API, when `ELASTICIO_API_URI`, `_USERNAME` and `_KEY` are all set.
    pub platform_api: Option<PlatformApi>,
    /// `COMPONENT_KEYS_DESTINATION`.
    pub keys_destination: crate::platform_keys::KeysDestination,
}

impl KeysApiSettings {
    /// Reads the process environment; `has_broker` says whether the AMQP variables are set.
    pub fn from_env(has_broker: bool) -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars(), has_broker)
    }

    /// Reads the given variables; `has_broker` says whether the AMQP variables are set.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
        has_broker: bool,
    ) -> Result<Self, SettingsError> {
        let mut r = Reader::new(vars);
        let platform_api = r.platform_api().ok();
        let keys_destination = r.keys_destination();
        if let Err(problem) = keys_destination.check(platform_api.is_some(), has_broker) {
            r.problems.push(problem);
        }
        if r.problems.is_empty() {
            Ok(Self {
                platform_api,
                keys_destination,
            })
        } else {
            Err(SettingsError {
                problems: r.problems,
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete worker environment with every value set, for tests anywhere in the crate.
    pub(crate) fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "ELASTICIO_AMQP_URI",
                "amqp://guest:hunter2@127.0.0.1:5672/vh",
            ),
            ("ELASTICIO_LISTEN_MESSAGES_ON", "q"),
            ("ELASTICIO_PUBLISH_MESSAGES_TO", "x"),
            ("ELASTICIO_DATA_ROUTING_KEY", "d"),
            ("ELASTICIO_ERROR_ROUTING_KEY", "e"),
            ("ELASTICIO_SNAPSHOT_ROUTING_KEY", "s"),
            ("ELASTICIO_REBOUND_ROUTING_KEY", "r"),
            ("ELASTICIO_FUNCTION", "send"),
            ("ELASTICIO_MESSAGE_CRYPTO_PASSWORD", "cryptoSekrit"),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", "iv=any16_symbols"),
            ("ELASTICIO_CFG", r#"{"api_key":"cfgSekrit"}"#),
            ("ELASTICIO_FLOW_ID", "flow-1"),
            ("ELASTICIO_EXEC_ID", "exec-1"),
            ("ELASTICIO_STEP_ID", "step_1"),
            ("ELASTICIO_CONTAINER_ID", "container-1"),
            ("ELASTICIO_WORKSPACE_ID", "workspace-1"),
            ("ELASTICIO_USER_ID", "user-1"),
            ("ELASTICIO_COMP_ID", "comp-1"),
        ]
    }

    #[test]
    fn defaults_follow_sailor_nodejs() {
        let settings = Settings::from_vars(minimal()).unwrap();
        assert_eq!(settings.update_keys_routing_key, "updateKeys");
        assert_eq!(settings.prefetch, 1);
        assert_eq!(settings.protocol, Encoding::Base64);
        assert!(!settings.persistent_messages);
        assert_eq!(settings.rebound_limit, 20);
        assert_eq!(settings.rebound_initial_expiration, Duration::from_secs(15));
        assert_eq!(settings.outgoing_message_size_limit, 10_485_760);
        assert_eq!(settings.publish_retry.attempts, None);
        assert_eq!(settings.publish_retry.delay, Duration::from_millis(100));
        assert_eq!(settings.publish_retry.max_delay, Duration::from_secs(300));
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(settings.metrics_addr, None);
        assert_eq!(settings.stuck_delivery_timeout, Duration::from_secs(900));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert!(!settings.no_error_replies);
        let storage = &settings.object_storage;
        assert_eq!(
            (storage.uri.is_none(), storage.token.is_none()),
            (true, true)
        );
        assert_eq!(storage.size_threshold, 1_048_576);
        assert!(!storage.emit_lightweight);
        assert_eq!(storage.max_bytes, 64 * 1024 * 1024);
        assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
        assert_eq!(settings.rate_limits, crate::throttle::RateLimits::default());
        assert_eq!(settings.input_format, InputFormat::Default);
        assert_eq!(settings.reconnect, Reconnect::default(), "unbounded");
        assert!(settings.identity.additional.is_empty());
        assert!(settings.platform_api.is_none());
        assert_eq!(
            settings.keys_destination,
            crate::platform_keys::KeysDestination::Auto
        );
        assert_eq!(settings.amqp_uri.vhost(), "vh");
    }

    #[test]
    fn lightweight_output_without_object_storage_is_refused_naming_what_is_missing() {
        let mut vars = minimal();
        vars.extend([
            ("ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE", "true"),
            ("ELASTICIO_OBJECT_STORAGE_URI", "http://127.0.0.1:1"),
        ]);
        let error = Settings::from_vars(vars.clone()).unwrap_err();
        assert_eq!(
            error.problems,
            [
                "ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE is on but ELASTICIO_OBJECT_STORAGE_TOKEN is missing"
            ]
        );
        vars.extend([
            ("ELASTICIO_OBJECT_STORAGE_TOKEN", "storageSekrit"),
            ("ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD", "10"),
            ("ELASTICIO_NO_ERROR_REPLIES", "true"),
        ]);
        let settings = Settings::from_vars(vars).unwrap();
        assert!(settings.object_storage.emit_lightweight && settings.no_error_replies);
        assert_eq!(settings.object_storage.size_threshold, 10);
        assert!(!format!("{settings:?}").contains("storageSekrit"));
    }

    #[test]
    fn optional_values_are_read() {
        let mut vars = minimal();
        vars.extend([
            ("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "5"),
            ("ELASTICIO_PROTOCOL_VERSION", "2"),
            ("ELASTICIO_AMQP_PERSISTENT_MESSAGES", "true"),
            ("ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS", "3"),
            ("ELASTICIO_UPDATE_KEYS_ROUTING_KEY", "keys"),
            ("ELASTICIO_STEP_ID", "step_2"),
            ("COMPONENT_SHUTDOWN_TIMEOUT", "9"),
            ("COMPONENT_METRICS_ADDR", "0.0.0.0:9464"),
            ("COMPONENT_STUCK_DELIVERY_TIMEOUT", "120"),
            ("COMPONENT_LOG_FORMAT", "bunyan"),
        ]);
        let settings = Settings::from_vars(vars).unwrap();
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(9));
        assert_eq!(
            settings.metrics_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 9464)))
        );
        assert_eq!(settings.stuck_delivery_timeout, Duration::from_secs(120));
        assert_eq!(settings.log_format, LogFormat::Bunyan);
        assert_eq!(settings.prefetch, 5);
        assert_eq!(settings.protocol, Encoding::Raw);
        assert!(settings.persistent_messages);
        assert_eq!(settings.publish_retry.attempts, Some(3));
        assert_eq!(settings.update_keys_routing_key, "keys");
        assert_eq!(settings.identity.step_id, "step_2");
    }

    #[test]
    fn one_error_lists_every_missing_and_malformed_variable() {
        let vars = [
            ("ELASTICIO_AMQP_URI", "not a uri"),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", "short"),
            ("ELASTICIO_RABBITMQ_PREFETCH_SAILOR", "many"),
            ("ELASTICIO_PROTOCOL_VERSION", "7"),
            ("COMPONENT_METRICS_ADDR", "9090"),
            ("COMPONENT_STUCK_DELIVERY_TIMEOUT", "0"),
            ("COMPONENT_LOG_FORMAT", "xml"),
        ];
        let error = Settings::from_vars(vars).unwrap_err();
        let text = error.to_string();
        for expected in [
            "ELASTICIO_AMQP_URI is not an amqp",
            "ELASTICIO_LISTEN_MESSAGES_ON is missing",
            "ELASTICIO_PUBLISH_MESSAGES_TO is missing",
            "ELASTICIO_DATA_ROUTING_KEY is missing",
            "ELASTICIO_ERROR_ROUTING_KEY is missing",
            "ELASTICIO_SNAPSHOT_ROUTING_KEY is missing",
            "ELASTICIO_REBOUND_ROUTING_KEY is missing",
            "ELASTICIO_FUNCTION is missing",
            "ELASTICIO_MESSAGE_CRYPTO_PASSWORD is missing",
            "ELASTICIO_MESSAGE_CRYPTO_IV must be exactly 16 bytes, not 5",
            "ELASTICIO_RABBITMQ_PREFETCH_SAILOR is not a valid number",
            "ELASTICIO_PROTOCOL_VERSION must be 1 or 2",
            "no step config",
            "COMPONENT_METRICS_ADDR is not a host:port address: \"9090\"",
            "COMPONENT_STUCK_DELIVERY_TIMEOUT is not a valid number",
            "COMPONENT_LOG_FORMAT must be json or bunyan, not \"xml\"",
            "ELASTICIO_FLOW_ID is missing",
            "ELASTICIO_EXEC_ID is missing",
            "ELASTICIO_STEP_ID is missing",
            "ELASTICIO_CONTAINER_ID is missing",
            "ELASTICIO_WORKSPACE_ID is missing",
            "ELASTICIO_USER_ID is missing",
            "ELASTICIO_COMP_ID is missing",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
        assert_eq!(error.problems.len(), 23, "{text}");
    }

    #[test]
    fn each_missing_identity_variable_is_named() {
        let mut vars = minimal();
        vars.retain(|(k, _)| !["ELASTICIO_USER_ID", "ELASTICIO_COMP_ID"].contains(k));
        vars.push(("ELASTICIO_EXEC_ID", ""));
        let error = Settings::from_vars(vars).unwrap_err();
        assert_eq!(
            error.problems,
            [
                "ELASTICIO_EXEC_ID is missing",
                "ELASTICIO_USER_ID is missing",
                "ELASTICIO_COMP_ID is missing"
            ]
        );
    }

    #[test]
    fn the_rest_of_sailor_nodejs_environment_is_read() {
        let mut vars = minimal();
        vars.extend([
            ("ELASTICIO_DATA_RATE_LIMIT", "3"),
            ("ELASTICIO_ERROR_RATE_LIMIT", "4"),
            ("ELASTICIO_SNAPSHOT_RATE_LIMIT", "5"),
            ("ELASTICIO_RATE_INTERVAL", "250"),
            ("ELASTICIO_INPUT_FORMAT", "error"),
            ("ELASTICIO_AMQP_RECONNECT_ATTEMPTS", "3"),
            ("ELASTICIO_AMQP_RECONNECT_TIMEOUT", "100"),
            (
                "ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS",
                " ELASTICIO_TENANT_ID, REGION_NAME,UNSET_VAR ",
            ),
            ("ELASTICIO_TENANT_ID", "t-1"),
            ("REGION_NAME", "eu"),
            ("ELASTICIO_API_URI", "http://127.0.0.1:1//"),
            ("ELASTICIO_API_USERNAME", "u"),
            ("ELASTICIO_API_KEY", "apiSekrit"),
            ("COMPONENT_KEYS_DESTINATION", "api"),
        ]);
        let settings = Settings::from_vars(vars.clone()).unwrap();
        assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
        assert_eq!(
            settings.rate_limits,
            crate::throttle::RateLimits {
                data: 3,
                error: 4,
                snapshot: 5,
                interval: Duration::from_millis(250)
            }
        );
        assert_eq!(settings.input_format, InputFormat::Error);
        assert_eq!(
            settings.reconnect,
            Reconnect {
                attempts: Some(3),
                delay: Some(Duration::from_millis(100))
            }
        );
        assert_eq!(
            settings.identity.additional,
            [
                ("tenantId".to_owned(), "t-1".to_owned()),
                ("regionName".to_owned(), "eu".to_owned())
            ]
        );
        let api = settings.platform_api.expect("the API is configured");
        assert_eq!(api.base_uri, "http://127.0.0.1:1");
        assert!(
            matches!(settings.step_source, StepSource::Inline(_)),
            "ELASTICIO_CFG still wins for the step"
        );
        assert_eq!(
            settings.keys_destination,
            crate::platform_keys::KeysDestination::Api
        );
        vars.retain(|(k, _)| !["ELASTICIO_API_KEY", "COMPONENT_KEYS_DESTINATION"].contains(k));
        let settings = Settings::from_vars(vars).unwrap();
        assert!(settings.platform_api.is_none());
        assert_eq!(
            settings.warnings,
            [
                "the platform API variables are incomplete (missing: ELASTICIO_API_KEY): the API is not used"
            ]
        );
    }

    #[test]
    fn bad_values_of_the_rest_of_the_environment_are_named() {
        let mut vars = minimal();
        vars.extend([
            ("ELASTICIO_INPUT_FORMAT", "xml"),
            ("ELASTICIO_RATE_INTERVAL", "0"),
            ("ELASTICIO_AMQP_RECONNECT_ATTEMPTS", "many"),
            ("COMPONENT_KEYS_DESTINATION", "both"),
        ]);
        let error = Settings::from_vars(vars.clone()).unwrap_err();
        assert_eq!(
            error.problems,
            [
                "COMPONENT_KEYS_DESTINATION=both needs ELASTICIO_API_URI, ELASTICIO_API_USERNAME \
                 and ELASTICIO_API_KEY",
                "ELASTICIO_RATE_INTERVAL is not a valid number: \"0\"",
                "ELASTICIO_INPUT_FORMAT must be default or error, not \"xml\"",
                "ELASTICIO_AMQP_RECONNECT_ATTEMPTS is not a valid number: \"many\"",
            ]
        );
        vars.retain(|(k, _)| k.starts_with("ELASTICIO_") && *k != "ELASTICIO_INPUT_FORMAT");
        vars.retain(|(k, _)| !k.contains("RATE") && !k.contains("RECONNECT"));
        vars.push(("ELASTICIO_API_URI", "api.example.com"));
        let error = Settings::from_vars(vars).unwrap_err();
        assert_eq!(
            error.problems,
            ["ELASTICIO_API_URI is not an http:// or https:// URL: \"api.example.com\""]
        );
    }

    #[test]
    fn config_sources_are_chosen_in_order() {
        let mut vars = minimal();
        vars.retain(|(k, _)| *k != "ELASTICIO_CFG");
        vars.push(("ELASTICIO_CFG_FILE", "/tmp/cfg.json"));
        let settings = Settings::from_vars(vars.clone()).unwrap();
        assert!(matches!(settings.step_source, StepSource::File(_)));
        vars.retain(|(k, _)| *k != "ELASTICIO_CFG_FILE");
        vars.extend([
            ("ELASTICIO_API_URI", "http://127.0.0.1:1"),
            ("ELASTICIO_API_USERNAME", "u"),
            ("ELASTICIO_API_KEY", "apiSekrit"),
        ]);
        let settings = Settings::from_vars(vars.clone()).unwrap();
        let StepSource::Api(PlatformApi { retry, .. }) = settings.step_source else {
            panic!("the platform API is the source");
        };
        assert_eq!(
            retry,
            ApiRetry {
                attempts: 3,
                delay: Duration::from_secs(1)
            },
            "sailor-nodejs' REST client's defaults"
        );
        vars.extend([
            ("ELASTICIO_API_REQUEST_RETRY_ATTEMPTS", "5"),
            ("ELASTICIO_API_REQUEST_RETRY_DELAY", "250"),
        ]);
        let StepSource::Api(PlatformApi { retry, .. }) =
            Settings::from_vars(vars.clone()).unwrap().step_source
        else {
            panic!("the platform API is the source");
        };
        assert_eq!(retry.attempts, 5);
        assert_eq!(retry.delay, Duration::from_millis(250));
        vars.push(("ELASTICIO_API_REQUEST_RETRY_ATTEMPTS", "0"));
        let error = Settings::from_vars(vars).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("ELASTICIO_API_REQUEST_RETRY_ATTEMPTS is not a valid number"),
            "{error}"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut vars = minimal();
        vars.retain(|(k, _)| *k != "ELASTICIO_CFG");
        vars.extend([
            ("ELASTICIO_API_URI", "http://127.0.0.1:1"),
            ("ELASTICIO_API_USERNAME", "u"),
            ("ELASTICIO_API_KEY", "apiSekrit"),
        ]);
        let printed = format!("{:?}", Settings::from_vars(vars).unwrap());
        for secret in ["hunter2", "cryptoSekrit", "apiSekrit", "iv=any16"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("5672"), "{printed}");
        let printed = format!("{:?}", Settings::from_vars(minimal()).unwrap());
        assert!(!printed.contains("cfgSekrit"), "{printed}");
    }

    #[test]
    fn keys_settings_are_absent_without_an_amqp_uri_and_complete_with_one() {
        assert!(
            KeysSettings::from_vars([("ELASTICIO_CFG", "{}")])
                .unwrap()
                .is_none()
        );
        let error =
            KeysSettings::from_vars([("ELASTICIO_AMQP_URI", "amqp://u:p@h/v")]).unwrap_err();
        assert_eq!(
            error.problems,
            [
                "ELASTICIO_PUBLISH_MESSAGES_TO is missing",
                "ELASTICIO_MESSAGE_CRYPTO_PASSWORD is missing",
                "ELASTICIO_MESSAGE_CRYPTO_IV is missing",
            ]
        );
        let keys = KeysSettings::from_vars([
            ("ELASTICIO_AMQP_URI", "amqp://u:p@h/v"),
            ("ELASTICIO_PUBLISH_MESSAGES_TO", "exchange"),
            ("ELASTICIO_MESSAGE_CRYPTO_PASSWORD", "pw"),
            ("ELASTICIO_MESSAGE_CRYPTO_IV", "0123456789abcdef"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            keys.update_keys_routing_key,
            DEFAULT_UPDATE_KEYS_ROUTING_KEY
        );
        assert_eq!(
            keys.publish_retry.attempts,
            Some(DEFAULT_KEYS_PUBLISH_RETRY_ATTEMPTS)
        );
    }

    #[test]
    fn publish_retry_delays_double_up_to_the_cap() {
        let retry = PublishRetry {
            attempts: None,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let delays: Vec<u128> = (1..=4).map(|n| retry.delay_for(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
    }
}
