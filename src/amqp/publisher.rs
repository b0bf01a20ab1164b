//! Publishing on a confirm channel: every publish returns only once the broker confirmed it.
//!
//! A nack (e.g. a full next-step queue with `overflow: reject-publish`) is retried with
//! exponential backoff and a `retry` header, as sailor-nodejs does; a broken channel or
//! connection is reopened lazily by the next attempt, so a restart of RabbitMQ delays
//! publishes instead of losing them.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use super::connection::{self, Role};
use super::headers::{RETRY, int_value};
use crate::settings::{AmqpUri, PublishRetry};

/// Delivery mode of transient messages.
pub const TRANSIENT: u8 = 1;
/// Delivery mode of persistent messages.
pub const PERSISTENT: u8 = 2;

/// Why a publish failed for good.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker refused the message on every attempt.
    #[error("the broker refused the message {attempts} time(s)")]
    Nacked {
        /// How many times it was tried.
        attempts: u32,
    },
    /// The channel or connection failed on the last attempt.
    #[error("publishing failed after {attempts} attempt(s)")]
    Channel {
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        #[source]
        source: lapin::Error,
    },
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The routing key.
    pub routing_key: String,
    /// The body as it goes on the wire.
    pub body: Vec<u8>,
    /// The properties (headers included); the delivery mode is set by the publisher.
    pub properties: BasicProperties,
}

/// The write side: one connection, one confirm channel, reopened when broken.
pub struct Publisher {
    uri: AmqpUri,
    exchange: String,
    retry: PublishRetry,
    persistent: bool,
    link: Mutex<Link>,
}

/// The open connection and its confirm channel, if any, and how many were opened: a failure
/// names the link it was seen on by that count, because channel ids repeat across
/// connections and a late failure on a replaced link must not discard its successor.
#[derive(Default)]
struct Link {
    opened: u64,
    open: Option<(Connection, Channel)>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("uri", &self.uri)
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
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

    /// The confirm channel, opened when there is none or it broke, with the number of its link.
    async fn channel(&self) -> Result<(u64, Channel), lapin::Error> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.open.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok((link.opened, channel.clone()));
        }
        link.open = None;
        let connection = connection::connect(&self.uri, Role::Write).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        link.opened += 1;
        link.open = Some((connection, channel.clone()));
        Ok((link.opened, channel))
    }

    /// Drops link number `broken`, unless it was already replaced.
    async fn forget(&self, broken: u64) {
        let mut link = self.link.lock().await;
        if link.opened == broken {
            link.open = None;
        }
    }

    async fn attempt(&self, message: &Outgoing, retry: u32) -> Result<bool, lapin::Error> {
        let mut properties = message
            .properties
            .clone()
            .with_delivery_mode(if self.persistent {
                PERSISTENT
            } else {
                TRANSIENT
            });
        if retry > 0 {
            let mut headers = properties.headers().clone().unwrap_or_default();
            headers.insert(RETRY.into(), int_value(i64::from(retry)));
            properties = properties.with_headers(headers);
        }
        let (link, channel) = self.channel().await?;
        let outcome = async {
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    properties,
                )
                .await?
                .await?;
            let acked = confirm.is_ack();
            if confirm.take_message().is_some() {
                // As in sailor-nodejs: the platform owns the bindings; an unroutable message
                // is confirmed and dropped by the broker, so at least say so.
                tracing::warn!(message = "The broker found no queue for a published message.", routing_key = %message.routing_key);
            }
            Ok(acked)
        }
        .await;
        if outcome.is_err() {
            self.forget(link).await;
        }
        outcome
    }

    /// Publishes and waits for the broker's confirm, retrying nacks and broken channels.
    pub async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        let mut retry = 0u32;
        loop {
            let outcome = self.attempt(message, retry).await;
            let failure = match outcome {
                Ok(true) => return Ok(()),
                Ok(false) => None,
                Err(error) => Some(error),
            };
            if self.retry.attempts.is_some_and(|max| retry >= max) {
                return Err(match failure {
                    None => PublishError::Nacked {
                        attempts: retry + 1,
                    },
                    Some(source) => PublishError::Channel {
                        attempts: retry + 1,
                        source,
                    },
                });
            }
            retry += 1;
            let delay = self.retry.delay_for(retry);
            tracing::warn!(
                message = "Publish not confirmed; retrying.",
                routing_key = %message.routing_key,
                retry,
                error = failure.as_ref().map(ToString::to_string),
                retry_in_ms = delay.as_millis() as u64
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Closes the connection, if open.
    pub async fn close(&self) {
        let open = self.link.lock().await.open.take();
        if let Some((connection, _)) = open {
            let _ = connection.close(200, "worker stopping".into()).await;
        }
    }
}

/// Properties every publish starts from: JSON in UTF-8, with `headers`.
pub fn json_properties(headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf8".into())
        .with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker the test command guarantees.
    const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    #[tokio::test]
    async fn a_late_failure_on_a_replaced_link_keeps_the_new_link() {
        let retry = PublishRetry {
            attempts: Some(0),
            delay: std::time::Duration::ZERO,
            max_delay: std::time::Duration::ZERO,
        };
        let publisher = Publisher::new(
            AmqpUri::parse(AMQP_URI).unwrap(),
            String::new(),
            retry,
            false,
        );
        let (old, old_channel) = publisher.channel().await.unwrap();
        publisher.forget(old).await;
        let (new, new_channel) = publisher.channel().await.unwrap();
        assert_ne!(old, new, "a new link was opened");
        assert_eq!(
            old_channel.id(),
            new_channel.id(),
            "channel ids repeat across connections, so they cannot tell links apart"
        );
        // A publish that was still running on the old link fails late.
        publisher.forget(old).await;
        let (kept, _) = publisher.channel().await.unwrap();
        assert_eq!(
            kept, new,
            "the new link survives a failure seen on the old one"
        );
        publisher.close().await;
    }
}
