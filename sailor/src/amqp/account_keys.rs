//! An account's keys on the broker, shared by every process that holds them.
//!
//! Replicas of a step, the steps of other flows, `verify_credentials` and a process restarted
//! with an old config all hold one account's token set; a refresh token rotated by one of them
//! is dead for the others. Three broker-native pieces keep them on one token set, with no
//! server of ours (DESIGN.md section 6):
//!
//! - **Keys exchange** (`COMPONENT_KEYS_EXCHANGE`, default [`DEFAULT_KEYS_EXCHANGE`], direct,
//!   durable): every refresh publishes the whole token set there, routed by the account id,
//!   encrypted like data, with a [`KEYS_VERSION_HEADER`]. Each process binds an exclusive,
//!   auto-delete queue of its own to its account and adopts what arrives when its version is
//!   higher than the newest it knows; never an older one.
//! - **Last keys**: a durable queue per account (`<exchange>.last.<account>`, `x-max-length`
//!   1, so it holds the newest publish alone) bound the same way. A starting process reads it
//!   (get, then nack with requeue: the record stays) before its first call.
//! - **Lease**: an exclusive queue `<exchange>.lease.<account>`. Declaring it succeeds on one
//!   connection only (the others get `RESOURCE_LOCKED`), and the broker drops it when that
//!   connection dies. A refresh takes it first; the holder reads the last keys (newer keys
//!   than its own mean no refresh), refreshes, publishes, and deletes the queue. The others
//!   wait, bounded, for the holder's keys and replay with them. Reading the last keys also
//!   happens under the lease, so that no reader ever sees the record while another holds it
//!   unacked, and no publish can land meanwhile.
//!
//! The version is a counter that travels with the keys: the holder publishes the highest
//! version it knows plus one. Since every publish happens under the lease, and the holder
//! first reads the last keys (the highest version published so far), versions grow strictly
//! across processes. The fast path (a valid token) never touches the broker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::connection::{self, INITIAL_RECONNECT_DELAY, MAX_RECONNECT_DELAY, Role};
use super::headers::{PROTOCOL_VERSION, int_of, int_value, text_value};
use crate::auth::{Coordination, RefreshCoordinator, RefreshLease, TokenCache, TokenSet};
use crate::crypto::{Encoding, MessageCipher};
use crate::settings::AmqpUri;

/// The exchange the account's keys travel on when `COMPONENT_KEYS_EXCHANGE` is unset: one
/// for every flow on the broker, since an account is not one flow's.
pub const DEFAULT_KEYS_EXCHANGE: &str = "component.account-keys";
/// The header carrying the keys' version.
pub const KEYS_VERSION_HEADER: &str = "keysVersion";
/// How long a refresh waits for another process's lease before it gives up for this
/// attempt (a holder that dies frees it much sooner: the broker drops its queue).
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(30);
/// An account's last-keys queue unused this long (no process started or refreshed) is
/// deleted by the broker (`x-expires`), so that deleted accounts leave nothing behind.
pub const LAST_KEYS_EXPIRES: Duration = Duration::from_secs(90 * 24 * 3600);
/// How often a process waiting for the lease tries to take it (newer keys end the wait at
/// once). Each try that finds it taken costs the broker a channel closed with
/// `RESOURCE_LOCKED`, which lapin logs as an error.
const LEASE_RETRY: Duration = Duration::from_millis(200);
/// The AMQP reply code of a declare refused because another connection owns the queue.
const RESOURCE_LOCKED: u16 = 405;

/// Where the account's keys travel and how they are sealed.
#[derive(Clone, Debug)]
pub struct AccountKeysConfig {
    /// The broker.
    pub amqp_uri: AmqpUri,
    /// `COMPONENT_KEYS_EXCHANGE`.
    pub exchange: String,
    /// The config's `_account`: the routing key, and part of the queue names.
    pub account: String,
    /// Keys are encrypted like data.
    pub cipher: MessageCipher,
    /// How the encrypted body is encoded (`ELASTICIO_PROTOCOL_VERSION`).
    pub protocol: Encoding,
    /// How long a refresh waits for another process's lease.
    pub lease_wait: Duration,
}

impl AccountKeysConfig {
    /// The exclusive queue whose owner may refresh.
    pub fn lease_queue(&self) -> String {
        format!("{}.lease.{}", self.exchange, self.account)
    }

    /// The max-length-1 queue holding the newest keys.
    pub fn last_keys_queue(&self) -> String {
        format!("{}.last.{}", self.exchange, self.account)
    }
}

/// The account's keys could not be set up on the broker.
#[derive(Debug, thiserror::Error)]
pub enum AccountKeysError {
    /// The broker refused or dropped the set-up; try again later.
    #[error("the account's keys could not be set up on RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
}

impl AccountKeysError {
    /// True when trying again cannot help: the broker refused the exchange or a queue
    /// (no permission, or declared elsewhere with other arguments).
    pub fn is_permanent(&self) -> bool {
        let Self::Broker(error) = self;
        matches!(
            error.kind(),
            lapin::ErrorKind::ProtocolError(amqp) if [403, 406, 530].contains(&amqp.get_id())
        )
    }
}

/// This process's part in its account's shared keys: the listener that adopts newer keys,
/// and the coordinator the token cache takes the lease from. Dropping it stops listening.
#[derive(Debug)]
pub struct AccountKeys {
    shared: Arc<Shared>,
    listener: tokio::task::JoinHandle<()>,
}

struct Shared {
    config: AccountKeysConfig,
    connection: Mutex<Option<Arc<Connection>>>,
    /// The newest version this process knows (0: the config's own keys).
    known: watch::Sender<u64>,
    /// One lease holder per process: a second declare on the same connection would succeed.
    local: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("exchange", &self.config.exchange)
            .field("account", &self.config.account)
            .field("known", &*self.known.borrow())
            .finish_non_exhaustive()
    }
}

impl AccountKeys {
    /// Sets the account's keys up for `cache`: connects, declares the exchange and queues,
    /// adopts the newest published keys (read under the lease), then listens for newer ones
    /// and coordinates the cache's refreshes. Returns once the newest keys are in the cache,
    /// so that the first call uses them.
    pub async fn start(
        config: AccountKeysConfig,
        cache: TokenCache,
    ) -> Result<Self, AccountKeysError> {
        let shared = Arc::new(Shared {
            config,
            connection: Mutex::new(None),
            known: watch::Sender::new(0),
            local: Arc::new(tokio::sync::Mutex::new(())),
        });
        let consumer = shared.open(&cache).await?;
        if !cache.coordinate_with(Arc::new(Coordinator(shared.clone()))) {
            tracing::warn!(
                message =
                    "The token cache already coordinates its refreshes; this one is not used."
            );
        }
        let listener = tokio::spawn(listen(shared.clone(), cache, consumer));
        Ok(Self { shared, listener })
    }

    /// The newest version of the account's keys this process knows.
    pub fn known_version(&self) -> u64 {
        *self.shared.known.borrow()
    }

    /// Stops listening and closes the connection (which frees a lease still held).
    pub async fn close(self) {
        self.listener.abort();
        let connection = self.shared.connection.lock().expect("not poisoned").take();
        if let Some(connection) = connection {
            let _ = tokio::time::timeout(
                connection::CLOSE_TIMEOUT,
                connection.close(200, "stopping".into()),
            )
            .await;
        }
    }
}

impl Drop for AccountKeys {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Adopts newer keys as they arrive; reconnects (and reads the last keys again) when the
/// connection is lost.
async fn listen(shared: Arc<Shared>, cache: TokenCache, mut consumer: Consumer) {
    loop {
        while let Some(delivery) = consumer.next().await {
            match delivery {
                Ok(delivery) => {
                    if let Some((version, tokens)) =
                        shared.decode(&delivery.data, delivery.properties.headers().as_ref())
                        && shared.offer(version, tokens, &cache)
                    {
                        tracing::info!(
                            message = "Newer keys of the account adopted.",
                            keys_version = version
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(message = "The account's keys listener failed; reconnecting.", %error);
                    break;
                }
            }
        }
        shared.connection.lock().expect("not poisoned").take();
        let mut delay = INITIAL_RECONNECT_DELAY;
        consumer = loop {
            tokio::time::sleep(delay).await;
            match shared.open(&cache).await {
                Ok(consumer) => break consumer,
                Err(error) => {
                    tracing::warn!(message = "The account's keys could not be set up again; retrying.", %error);
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        };
    }
}

impl Shared {
    /// Connects, declares the topology, starts the listener, and adopts the last keys.
    async fn open(self: &Arc<Self>, cache: &TokenCache) -> Result<Consumer, AccountKeysError> {
        let config = &self.config;
        let connection = connection::connect(&config.amqp_uri, Role::Keys).await?;
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                config.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(1));
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(LAST_KEYS_EXPIRES.as_millis() as i64),
        );
        let last = config.last_keys_queue();
        channel
            .queue_declare(
                last.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        let bind = |queue: String| {
            let channel = channel.clone();
            async move {
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        config.exchange.as_str().into(),
                        config.account.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            }
        };
        bind(last).await?;
        let own = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        bind(own.name().to_string()).await?;
        let consumer = channel
            .basic_consume(
                own.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        *self.connection.lock().expect("not poisoned") = Some(Arc::new(connection));
        self.adopt_last(cache).await;
        Ok(consumer)
    }

    /// Reads the last keys under the lease and adopts them when they are newer than what
    /// this process holds. A config whose keys expire later than the last published ones
    /// was issued after them (the account was authorised again): it is kept.
    async fn adopt_last(self: &Arc<Self>, cache: &TokenCache) {
        match Coordinator(self.clone()).acquire().await {
            Ok(Coordination::Lease(lease)) => lease.release().await,
            Ok(Coordination::Superseded) => {}
            Ok(Coordination::Newer(tokens)) => {
                let held = cache.current().tokens;
                let version = *self.known.borrow();
                if held.expires_at().unwrap_or(0) > tokens.expires_at().unwrap_or(u64::MAX) {
                    tracing::warn!(
                        message = "The config's keys are newer than the account's last published keys; keeping them.",
                        keys_version = version
                    );
                } else {
                    cache.adopt(tokens);
                    tracing::info!(
                        message = "The account's last published keys adopted.",
                        keys_version = version
                    );
                }
            }
            Err(reason) => tracing::warn!(
                message = "The account's last published keys could not be read; starting with the config's.",
                %reason
            ),
        }
    }

    /// Raises the known version to `version` and adopts `tokens`, in one step, when
    /// `version` is newer; `false` (nothing done) otherwise.
    fn offer(&self, version: u64, tokens: TokenSet, cache: &TokenCache) -> bool {
        let mut tokens = Some(tokens);
        self.known.send_if_modified(|known| {
            if version <= *known {
                return false;
            }
            *known = version;
            if let Some(tokens) = tokens.take() {
                cache.adopt(tokens);
            }
            true
        })
    }

    /// Raises the known version to `version` when it is newer.
    fn raise(&self, version: u64) -> bool {
        self.known.send_if_modified(|known| {
            let newer = version > *known;
            if newer {
                *known = version;
            }
            newer
        })
    }

    fn connection(&self) -> Option<Arc<Connection>> {
        self.connection.lock().expect("not poisoned").clone()
    }

    /// The version and token set of a keys message; `None` (logged) when it is not one.
    fn decode(&self, body: &[u8], headers: Option<&FieldTable>) -> Option<(u64, TokenSet)> {
        let header = |name: &str| headers.and_then(|h| h.inner().get(name)).and_then(int_of);
        let decoded = (|| {
            let version = u64::try_from(header(KEYS_VERSION_HEADER)?).ok()?;
            let encoding = Encoding::from_protocol_version(header(PROTOCOL_VERSION));
            let plain = self.config.cipher.decode(body, encoding).ok()?;
            let keys: Value = serde_json::from_slice(&plain).ok()?;
            let tokens = TokenSet::from_stored(keys.get("oauth")?.clone()).ok()?;
            Some((version, tokens))
        })();
        if decoded.is_none() {
            tracing::warn!(
                message = "A message on the account's keys is not readable keys; ignored."
            );
        }
        decoded
    }

    /// The last keys, read without consuming them.
    async fn read_last(&self, channel: &Channel) -> Result<Option<(u64, TokenSet)>, lapin::Error> {
        let got = channel
            .basic_get(
                self.config.last_keys_queue().as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?;
        let Some(message) = got else {
            return Ok(None);
        };
        let delivery = message.delivery;
        let decoded = self.decode(&delivery.data, delivery.properties.headers().as_ref());
        channel
            .basic_nack(
                delivery.delivery_tag,
                BasicNackOptions {
                    requeue: true,
                    multiple: false,
                },
            )
            .await?;
        Ok(decoded)
    }
}

/// A keys message: the body (the whole token set, encrypted like data) and its headers.
fn encode(config: &AccountKeysConfig, version: u64, tokens: &TokenSet) -> (Vec<u8>, FieldTable) {
    // The account's keys on the wire: encrypted, as the updateKeys payload is.
    let plain = json!({ "oauth": tokens.expose_json() }).to_string();
    let body = config.cipher.encode(plain.as_bytes(), config.protocol);
    let mut headers = FieldTable::default();
    headers.insert(
        KEYS_VERSION_HEADER.into(),
        int_value(i64::try_from(version).unwrap_or(i64::MAX)),
    );
    headers.insert(
        PROTOCOL_VERSION.into(),
        int_value(config.protocol.protocol_version()),
    );
    headers.insert("accountId".into(), text_value(&config.account));
    (body, headers)
}

/// The token cache's view of the account's lease.
#[derive(Debug)]
struct Coordinator(Arc<Shared>);

#[async_trait]
impl RefreshCoordinator for Coordinator {
    async fn acquire(&self) -> Result<Coordination, String> {
        let shared = &self.0;
        let local = shared.local.clone().lock_owned().await;
        let mut changes = shared.known.subscribe();
        let start = *changes.borrow_and_update();
        let deadline = tokio::time::Instant::now() + shared.config.lease_wait;
        let lease_queue = shared.config.lease_queue();
        loop {
            if *shared.known.borrow() > start {
                return Ok(Coordination::Superseded);
            }
            let connection = shared
                .connection()
                .ok_or_else(|| "the broker connection is down".to_owned())?;
            match try_lease(&connection, &lease_queue).await {
                Ok(Some(channel)) => {
                    let lease = BrokerLease {
                        shared: shared.clone(),
                        channel,
                        _local: local,
                    };
                    return match shared.read_last(&lease.channel).await {
                        Ok(Some((version, tokens))) if shared.raise(version) => {
                            Box::new(lease).release().await;
                            Ok(Coordination::Newer(tokens))
                        }
                        Ok(_) => Ok(Coordination::Lease(Box::new(lease))),
                        Err(error) => {
                            Box::new(lease).release().await;
                            Err(format!("reading the last keys failed: {error}"))
                        }
                    };
                }
                Ok(None) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "another process held it for longer than {} s",
                        shared.config.lease_wait.as_secs()
                    ));
                }
                Ok(None) => {
                    tokio::select! {
                        _ = changes.changed() => {}
                        () = tokio::time::sleep(LEASE_RETRY) => {}
                    }
                }
                Err(error) => return Err(format!("taking it failed: {error}")),
            }
        }
    }
}

/// Declares the lease queue: `Some` channel (holding it) on success, `None` when another
/// connection holds it.
async fn try_lease(connection: &Connection, queue: &str) -> Result<Option<Channel>, lapin::Error> {
    let channel = connection.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(_) => Ok(Some(channel)),
        Err(error) if is_locked(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// True for the broker's `RESOURCE_LOCKED`: the queue is another connection's.
fn is_locked(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == RESOURCE_LOCKED)
}

/// The account's lease, held by this process: the exclusive queue's channel.
struct BrokerLease {
    shared: Arc<Shared>,
    channel: Channel,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

#[async_trait]
impl RefreshLease for BrokerLease {
    async fn publish(&self, tokens: &TokenSet) {
        let shared = &self.shared;
        let mut version = 0;
        shared.known.send_modify(|known| {
            *known += 1;
            version = *known;
        });
        let config = &shared.config;
        let (body, headers) = encode(config, version, tokens);
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let published = async {
            self.channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            self.channel
                .basic_publish(
                    config.exchange.as_str().into(),
                    config.account.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?
                .await
        }
        .await;
        match published {
            Ok(confirm) if confirm.is_ack() => tracing::info!(
                message = "Refreshed keys published to the account's processes.",
                keys_version = version
            ),
            Ok(_) => tracing::error!(
                message = "The broker refused the account's refreshed keys; other processes will not adopt them.",
                keys_version = version
            ),
            Err(error) => tracing::error!(
                message = "The account's refreshed keys could not be published; other processes will not adopt them.",
                keys_version = version,
                %error
            ),
        }
    }

    async fn release(self: Box<Self>) {
        let queue = self.shared.config.lease_queue();
        let deleted = self
            .channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        if let Err(error) = deleted {
            // The lease's channel broke; the queue is still this connection's, so delete
            // it through another channel, or it stays taken until the connection closes.
            tracing::warn!(message = "Releasing the account's lease failed; trying again.", %error);
            if let Some(connection) = self.shared.connection()
                && let Ok(channel) = connection.create_channel().await
            {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = channel.close(200, "lease released".into()).await;
            }
            return;
        }
        let _ = self.channel.close(200, "lease released".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AccountKeysConfig {
        AccountKeysConfig {
            amqp_uri: AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap(),
            exchange: "keys-x".to_owned(),
            account: "acc-1".to_owned(),
            cipher: MessageCipher::new(&crate::secret::Password::new("p"), "iv=any16_symbols")
                .unwrap(),
            protocol: Encoding::Raw,
            lease_wait: DEFAULT_LEASE_WAIT,
        }
    }

    fn shared() -> Shared {
        Shared {
            config: config(),
            connection: Mutex::new(None),
            known: watch::Sender::new(0),
            local: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn tokens(access_token: &str) -> TokenSet {
        TokenSet::from_stored(json!({"access_token": access_token, "refresh_token": "rt"})).unwrap()
    }

    fn cache() -> TokenCache {
        TokenCache::new(
            tokens("at-config"),
            Err(crate::auth::RefreshError::NotConfigured(
                "no endpoint in this test",
            )),
            crate::config::RefreshMode::On401,
            60,
            crate::clock::system(),
        )
    }

    #[test]
    fn queue_names_carry_the_exchange_and_the_account() {
        let config = config();
        assert_eq!(config.lease_queue(), "keys-x.lease.acc-1");
        assert_eq!(config.last_keys_queue(), "keys-x.last.acc-1");
    }

    #[test]
    fn keys_on_the_wire_are_encrypted_and_read_back_with_their_version() {
        let shared = shared();
        let (body, headers) = encode(&shared.config, 7, &tokens("at-s3cret"));
        assert!(!String::from_utf8_lossy(&body).contains("at-s3cret"));
        let (version, read) = shared.decode(&body, Some(&headers)).unwrap();
        assert_eq!(version, 7);
        assert_eq!(read.access_token().expose_secret(), "at-s3cret");
        assert!(shared.decode(b"not keys", Some(&headers)).is_none());
        assert!(shared.decode(&body, None).is_none(), "no version, no keys");
    }

    #[test]
    fn only_newer_keys_are_adopted_never_older_or_the_same_again() {
        let shared = shared();
        let cache = cache();
        assert!(shared.offer(2, tokens("at-2"), &cache));
        assert!(!shared.offer(1, tokens("at-1"), &cache));
        assert!(!shared.offer(2, tokens("at-2-again"), &cache));
        assert_eq!(
            cache.current().tokens.access_token().expose_secret(),
            "at-2"
        );
        assert_eq!(cache.current().generation, 1);
        assert!(shared.offer(3, tokens("at-3"), &cache));
        assert_eq!(
            cache.current().tokens.access_token().expose_secret(),
            "at-3"
        );
        assert_eq!(*shared.known.borrow(), 3);
        assert!(!shared.raise(3));
        assert!(shared.raise(4));
    }
}
