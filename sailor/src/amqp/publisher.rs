//! Publishing on a confirm channel: every publish returns only once the broker confirmed it.
//!
//! What can happen to a publish, and what it means for the message:
//! - **ack**: delivered.
//! - **nack** (e.g. a full next-step queue with `overflow: reject-publish`): retried with
//!   exponential backoff and a `retry` header, as sailor-nodejs does, up to
//!   `ELASTICIO_AMQP_PUBLISH_RETRY_ATTEMPTS`.
//! - **returned** (`mandatory`, and no queue is bound for the routing key): not delivered.
//!   The broker acks a returned message, but it went nowhere, so it fails at once.
//! - **refused** (the broker closes the channel with a soft error: 403, 404, 406, ... e.g. an
//!   exchange that does not exist or an `expiration` it will not take): the message itself
//!   is at fault. Other publishes sharing the channel see the same close, so a refused
//!   publish is tried once more alone, on a channel of its own; refused again, it fails
//!   for good, and the shared channel is reopened for the others.
//! - **unreachable** (the connection or channel broke): the link is reopened by the next
//!   attempt, so a restart of RabbitMQ delays publishes instead of losing them; after
//!   [`UNREACHABLE_WINDOW`] of failures the publish gives up, so that no delivery holds
//!   its prefetch slot forever (its input goes back to the broker, which redelivers it).

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use super::connection::{self, CLOSE_TIMEOUT, MAX_RECONNECT_DELAY, Role};
use super::headers::{PublishHeaders, RETRY, int_value};
use crate::settings::{AmqpUri, PublishRetry};
use crate::telemetry::metrics;

/// Delivery mode of transient messages.
pub const TRANSIENT: u8 = 1;
/// Delivery mode of persistent messages.
pub const PERSISTENT: u8 = 2;

/// How long a publish keeps trying while the broker cannot be reached: long enough to ride
/// out a broker restart, short enough that a delivery never holds its slot for good.
pub const UNREACHABLE_WINDOW: Duration = Duration::from_secs(60);

/// Why a publish failed for good.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker refused the message on every attempt.
    #[error("the broker refused the message {attempts} time(s)")]
    Nacked {
        /// How many times it was tried.
        attempts: u32,
    },
    /// No queue is bound for the routing key: the broker returned the message.
    #[error("no queue is bound for routing key `{routing_key}`; the broker returned the message")]
    Unroutable {
        /// The routing key nothing is bound to.
        routing_key: String,
    },
    /// The broker closed the channel over this message, twice.
    #[error("the broker refused the message: {reply}")]
    Refused {
        /// The broker's reply code and text.
        reply: String,
    },
    /// The channel or connection kept failing.
    #[error("publishing failed after {attempts} attempt(s)")]
    Unreachable {
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        #[source]
        source: lapin::Error,
    },
}

impl PublishError {
    /// Whether the message itself cannot be published as it is (returned or refused), as
    /// opposed to a broker that could not take it now.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Unroutable { .. } | Self::Refused { .. })
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The routing key.
    pub routing_key: String,
    /// The body as it goes on the wire.
    pub body: Vec<u8>,
    /// The properties but the headers (any in here are replaced by `headers`); the delivery
    /// mode is set by the publisher.
    pub properties: BasicProperties,
    /// The headers.
    pub headers: PublishHeaders,
}

/// What the broker said to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmed {
    Ack,
    Nack,
    Returned,
}

/// The write side: one connection, one shared confirm channel, reopened when broken.
pub struct Publisher {
    uri: AmqpUri,
    exchange: String,
    retry: PublishRetry,
    persistent: bool,
    link: Mutex<Link>,
}

/// The open connection and its shared confirm channel, if any, and how many channels were
/// opened: a failure names the channel it was seen on by that count, because channel ids
/// repeat across connections and a late failure on a replaced channel must not discard its
/// successor.
#[derive(Default)]
struct Link {
    opened: u64,
    connection: Option<Connection>,
    channel: Option<Channel>,
}

impl Link {
    /// The open connection, connecting when there is none or it broke.
    async fn connection(&mut self, uri: &AmqpUri) -> Result<&Connection, lapin::Error> {
        if !self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.status().connected())
        {
            self.channel = None;
            self.connection = Some(connection::connect(uri, Role::Write).await?);
        }
        Ok(self.connection.as_ref().expect("connected just above"))
    }

    /// A new shared confirm channel, on a new connection if the old one broke.
    async fn reopen(&mut self, uri: &AmqpUri) -> Result<(u64, Channel), lapin::Error> {
        let channel = confirm_channel(self.connection(uri).await?).await?;
        self.opened += 1;
        self.channel = Some(channel.clone());
        Ok((self.opened, channel))
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("uri", &self.uri)
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

/// A new channel in confirm mode on `connection`.
async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

impl Publisher {
    /// A publisher to `exchange`; it connects on first use.
    pub fn new(uri: AmqpUri, exchange: String, retry: PublishRetry, persistent: bool) -> Self {
        Self {
            uri,
            exchange,
            retry,
            persistent,
            link: Mutex::new(Link::default()),
        }
    }

    /// The shared confirm channel, opened when there is none or it broke, with its number.
    async fn channel(&self) -> Result<(u64, Channel), lapin::Error> {
        let mut link = self.link.lock().await;
        if let Some(channel) = &link.channel
            && channel.status().connected()
            && link
                .connection
                .as_ref()
                .is_some_and(|connection| connection.status().connected())
        {
            return Ok((link.opened, channel.clone()));
        }
        // Boxed, like every rare path of a publish: a future carries the size of everything
        // it may await, and each publish's would otherwise carry a connection handshake.
        Box::pin(link.reopen(&self.uri)).await
    }

    /// Opens the connection and its confirm channel ahead of the first publish, which then
    /// does not wait for a handshake. A failure is left to that publish, which connects again.
    pub async fn open(&self) {
        if let Err(error) = self.channel().await {
            tracing::debug!(message = "Opening the publishing connection ahead failed.", %error);
        }
    }

    /// A channel for one publish alone, on the shared connection.
    async fn private_channel(&self) -> Result<Channel, lapin::Error> {
        let mut link = self.link.lock().await;
        confirm_channel(link.connection(&self.uri).await?).await
    }

    /// Drops shared channel number `broken`, unless it was already replaced.
    async fn forget(&self, broken: u64) {
        let mut link = self.link.lock().await;
        if link.opened == broken {
            link.channel = None;
        }
    }

    /// The properties of one attempt: the message's, its headers written out (the `retry`
    /// counter added from the second attempt on), the delivery mode the publisher's.
    fn properties(&self, message: &Outgoing, retry: u32) -> BasicProperties {
        let mut headers = message.headers.to_table();
        if retry > 0 {
            headers.insert(RETRY.into(), int_value(i64::from(retry)));
        }
        message
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(if self.persistent {
                PERSISTENT
            } else {
                TRANSIENT
            })
    }

    /// One publish on `channel`, with the broker's answer.
    async fn publish_on(
        &self,
        channel: &Channel,
        message: &Outgoing,
        retry: u32,
    ) -> Result<Confirmed, lapin::Error> {
        let confirm = channel
            .basic_publish(
                self.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.body,
                self.properties(message, retry),
            )
            .await?
            .await?;
        let acked = confirm.is_ack();
        Ok(if confirm.take_message().is_some() {
            Confirmed::Returned
        } else if acked {
            Confirmed::Ack
        } else {
            Confirmed::Nack
        })
    }

    /// One attempt on the shared channel; a failure discards that channel.
    async fn attempt(&self, message: &Outgoing, retry: u32) -> Result<Confirmed, lapin::Error> {
        let (link, channel) = self.channel().await?;
        let outcome = self.publish_on(&channel, message, retry).await;
        if outcome.is_err() {
            Box::pin(self.forget(link)).await;
        }
        outcome
    }

    /// One attempt alone on a channel of its own, closed afterwards: a refusal seen here is
    /// this message's.
    async fn attempt_alone(
        &self,
        message: &Outgoing,
        retry: u32,
    ) -> Result<Confirmed, lapin::Error> {
        let channel = self.private_channel().await?;
        let outcome = self.publish_on(&channel, message, retry).await;
        if channel.status().connected() {
            let _ = channel.close(200, "publish done".into()).await;
        }
        outcome
    }

    /// Publishes and waits for the broker's confirm; see the module docs for what is retried.
    pub async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let result = self.publish_until_settled(message).await;
        metrics::get().publish_finished(message, &result);
        result
    }

    async fn publish_until_settled(&self, message: &Outgoing) -> Result<(), PublishError> {
        let mut retry = 0u32;
        let mut refused_once = false;
        let mut unreachable_since: Option<Instant> = None;
        loop {
            let outcome = if refused_once {
                Box::pin(self.attempt_alone(message, retry)).await
            } else {
                self.attempt(message, retry).await
            };
            let failure = match outcome {
                Ok(Confirmed::Ack) => return Ok(()),
                Ok(Confirmed::Returned) => {
                    return Err(PublishError::Unroutable {
                        routing_key: message.routing_key.clone(),
                    });
                }
                Ok(Confirmed::Nack) => {
                    if self.retry.attempts.is_some_and(|max| retry >= max) {
                        return Err(PublishError::Nacked {
                            attempts: retry + 1,
                        });
                    }
                    None
                }
                Err(error) if error.is_amqp_soft_error() => {
                    if refused_once {
                        return Err(PublishError::Refused {
                            reply: error.to_string(),
                        });
                    }
                    refused_once = true;
                    Some(error)
                }
                Err(error) => {
                    refused_once = false;
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= UNREACHABLE_WINDOW
                        || self.retry.attempts.is_some_and(|max| retry >= max)
                    {
                        return Err(PublishError::Unreachable {
                            attempts: retry + 1,
                            source: error,
                        });
                    }
                    Some(error)
                }
            };
            retry += 1;
            // A refused message is tried alone at once; a broken link is retried at least
            // every few seconds, so publishing resumes soon after the broker is back.
            let delay = match (refused_once, unreachable_since) {
                (true, _) => Duration::ZERO,
                (false, Some(_)) => self.retry.delay_for(retry).min(MAX_RECONNECT_DELAY),
                (false, None) => self.retry.delay_for(retry),
            };
            tracing::warn!(
                message = "Publish not confirmed; retrying.",
                routing_key = %message.routing_key,
                retry,
                error = failure.as_ref().map(ToString::to_string),
                retry_in_ms = delay.as_millis() as u64
            );
            metrics::get().publish_retried(message);
            Box::pin(tokio::time::sleep(delay)).await;
        }
    }

    /// Closes the connection, if open, within [`CLOSE_TIMEOUT`], even while a publish is
    /// still connecting.
    pub async fn close(&self) {
        let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let (channel, connection) = {
                let mut link = self.link.lock().await;
                (link.channel.take(), link.connection.take())
            };
            // The channel is closed first, and waited for: a channel dropped open is closed
            // by lapin in the background, and a connection closed meanwhile finds it half
            // closed, which lapin logs as a connection error.
            if let Some(channel) = channel.filter(|channel| channel.status().connected()) {
                let _ = channel.close(200, "worker stopping".into()).await;
            }
            if let Some(connection) = connection {
                let _ = connection.close(200, "worker stopping".into()).await;
            }
        })
        .await;
        if closed.is_err() {
            tracing::warn!(message = "Closing the publishing connection timed out.");
        }
    }
}

/// Properties every publish starts from: JSON in UTF-8.
pub fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf8".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use lapin::options::{
        BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{ConnectionProperties, ExchangeKind};

    use super::*;

    /// The broker the test command guarantees.
    const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    fn retry(attempts: u32) -> PublishRetry {
        PublishRetry {
            attempts: Some(attempts),
            delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        }
    }

    fn message(routing_key: &str, expiration: Option<&str>) -> Outgoing {
        numbered(routing_key, expiration, 0)
    }

    fn numbered(routing_key: &str, expiration: Option<&str>, i: usize) -> Outgoing {
        let properties = json_properties();
        Outgoing {
            routing_key: routing_key.to_owned(),
            body: format!("{{\"i\":{i}}}").into_bytes(),
            properties: match expiration {
                Some(ms) => properties.with_expiration(ms.into()),
                None => properties,
            },
            headers: PublishHeaders::default(),
        }
    }

    /// A unique auto-deleting exchange with one queue bound to `key`; returns the exchange
    /// name, the queue name and the connection that owns them (dropped, they go away).
    async fn exchange_with_queue(key: &str) -> (String, String, Connection) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (exchange, queue) = (format!("test-pub-{id}"), format!("test-pub-{id}:q"));
        let connection = Connection::connect(AMQP_URI, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        (exchange, queue, connection)
    }

    async fn ready(connection: &Connection, queue: &str) -> u32 {
        let channel = connection.create_channel().await.unwrap();
        super::super::consumer::ready_count(&channel, queue)
            .await
            .unwrap()
    }

    /// Takes every message off `queue`: the distinct bodies, and how many arrived in all.
    async fn drain(connection: &Connection, queue: &str) -> (BTreeSet<Vec<u8>>, usize) {
        let channel = connection.create_channel().await.unwrap();
        let (mut distinct, mut all) = (BTreeSet::new(), 0);
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            distinct.insert(message.delivery.data);
            all += 1;
        }
        (distinct, all)
    }

    #[tokio::test]
    async fn a_late_failure_on_a_replaced_channel_keeps_the_new_one() {
        let publisher = Publisher::new(
            AmqpUri::parse(AMQP_URI).unwrap(),
            String::new(),
            retry(0),
            false,
        );
        let (old, _) = publisher.channel().await.unwrap();
        publisher.forget(old).await;
        let (new, _) = publisher.channel().await.unwrap();
        assert_ne!(old, new, "a new channel was opened");
        // A publish that was still running on the old channel fails late.
        publisher.forget(old).await;
        let (kept, _) = publisher.channel().await.unwrap();
        assert_eq!(
            kept, new,
            "the new channel survives a failure seen on the old one"
        );
        publisher.close().await;
    }

    #[tokio::test]
    async fn a_returned_message_counts_as_not_delivered() {
        let (exchange, queue, owner) = exchange_with_queue("bound").await;
        let publisher =
            Publisher::new(AmqpUri::parse(AMQP_URI).unwrap(), exchange, retry(5), false);
        let error = publisher
            .publish(&message("nothing-bound-here", None))
            .await
            .expect_err("a message no queue takes is not delivered");
        assert!(
            matches!(&error, PublishError::Unroutable { routing_key } if routing_key == "nothing-bound-here"),
            "{error:?}"
        );
        assert!(error.is_permanent());
        publisher.publish(&message("bound", None)).await.unwrap();
        assert_eq!(
            ready(&owner, &queue).await,
            1,
            "only the routable one arrived"
        );
        publisher.close().await;
    }

    #[tokio::test]
    async fn a_refused_message_fails_alone_and_the_others_are_delivered() {
        let (exchange, queue, owner) = exchange_with_queue("k").await;
        let publisher = Arc::new(Publisher::new(
            AmqpUri::parse(AMQP_URI).unwrap(),
            exchange,
            // Nacks and broken links would be retried; a refusal must not be.
            PublishRetry {
                attempts: None,
                ..retry(0)
            },
            false,
        ));
        let mut publishes = tokio::task::JoinSet::new();
        for i in 0..20 {
            let publisher = publisher.clone();
            publishes.spawn(async move {
                // RabbitMQ closes the channel over an expiration that is not a number.
                let expiration = (i == 7).then_some("not-a-number");
                (i, publisher.publish(&numbered("k", expiration, i)).await)
            });
        }
        let outcomes = tokio::time::timeout(Duration::from_secs(30), publishes.join_all())
            .await
            .expect("a refused publish is not retried forever");
        for (i, outcome) in outcomes {
            if i == 7 {
                let error = outcome.expect_err("the refused message fails");
                assert!(matches!(error, PublishError::Refused { .. }), "{error:?}");
                assert!(
                    error
                        .to_string()
                        .contains("PRECONDITION_FAILED - invalid expiration"),
                    "{error}"
                );
            } else {
                outcome.unwrap_or_else(|error| panic!("message {i} was refused: {error:?}"));
            }
        }
        // A publish whose confirm was lost with the closed channel is sent again, so some
        // may arrive twice (at least once, as with any retried publish); none is missing.
        let (arrived, all) = drain(&owner, &queue).await;
        let expected: BTreeSet<Vec<u8>> = (0..20)
            .filter(|i| *i != 7)
            .map(|i| format!("{{\"i\":{i}}}").into_bytes())
            .collect();
        assert_eq!(
            arrived, expected,
            "every valid message arrived, the refused one did not"
        );
        assert!(all >= 19);
        publisher.publish(&message("k", None)).await.unwrap();
        assert_eq!(ready(&owner, &queue).await, 1, "the channel was reopened");
        publisher.close().await;
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_given_up_on_after_the_bound() {
        let publisher = Publisher::new(
            AmqpUri::parse("amqp://guest:guest@127.0.0.1:1/%2f").unwrap(),
            "x".to_owned(),
            retry(3),
            false,
        );
        let error = tokio::time::timeout(
            Duration::from_secs(30),
            publisher.publish(&message("k", None)),
        )
        .await
        .expect("the retries are bounded")
        .expect_err("nothing listens there");
        assert!(
            matches!(error, PublishError::Unreachable { attempts: 4, .. }),
            "{error:?}"
        );
        assert!(!error.is_permanent());
        publisher.close().await;
    }
}
