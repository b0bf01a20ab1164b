//! Consuming the step's queue: manual acks, prefetch = the number of messages processed at
//! once, on the read connection.

use std::sync::Arc;

use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{DeliveryTag, FieldTable};
use lapin::{Channel, Connection, Consumer};

use super::connection::{self, CLOSE_TIMEOUT, Role};
use crate::settings::AmqpUri;

/// Messages ready in `queue`, not counting delivered but unacked ones. A passive declare
/// reads the count without creating anything, so it can be asked of any queue at any time.
pub async fn ready_count(channel: &Channel, queue: &str) -> Result<u32, lapin::Error> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// A live consumer with the channel and connection it runs on.
pub struct Subscription {
    connection: Connection,
    channel: Arc<Channel>,
    /// The stream of deliveries.
    pub consumer: Consumer,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel.id())
            .field("tag", &self.consumer.tag())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Connects (with backoff) and starts consuming `queue` with `prefetch`.
    pub async fn open(uri: &AmqpUri, queue: &str, prefetch: u16) -> Result<Self, lapin::Error> {
        let connection = connection::connect_with_backoff(uri, Role::Read).await;
        Self::on(connection, queue, prefetch).await
    }

    /// Like [`Self::open`], with one connection attempt: for a caller that counts failed
    /// attempts itself (`ELASTICIO_AMQP_RECONNECT_ATTEMPTS`).
    pub async fn open_once(
        uri: &AmqpUri,
        queue: &str,
        prefetch: u16,
    ) -> Result<Self, lapin::Error> {
        let connection = connection::connect(uri, Role::Read).await?;
        tracing::info!(
            message = "Connected to RabbitMQ.",
            host = %uri.host(),
            vhost = uri.vhost(),
            role = "read"
        );
        Self::on(connection, queue, prefetch).await
    }

    async fn on(connection: Connection, queue: &str, prefetch: u16) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(message = "Consuming.", queue, prefetch);
        Ok(Self {
            connection,
            channel: Arc::new(channel),
            consumer,
        })
    }

    /// What settles the delivery numbered `tag` on this subscription's channel.
    pub fn acker(&self, tag: DeliveryTag) -> ChannelAcker {
        ChannelAcker::new(self.channel.clone(), tag)
    }

    /// Stops deliveries; those already received can still be acked. A broker that does not
    /// answer within [`CLOSE_TIMEOUT`] is not waited for.
    pub async fn cancel(&self) {
        let cancelled = tokio::time::timeout(
            CLOSE_TIMEOUT,
            self.channel
                .basic_cancel(self.consumer.tag(), BasicCancelOptions::default()),
        )
        .await;
        match cancelled {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(message = "Cancelling the consumer failed.", %error),
            Err(_) => tracing::warn!(message = "Cancelling the consumer timed out."),
        }
    }

    /// Closes channel and connection, within [`CLOSE_TIMEOUT`]; unacked deliveries go back to
    /// the queue (at the latest when the broker sees the connection die).
    pub async fn close(&self) {
        let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.channel.close(200, "worker stopping".into()).await;
            let _ = self.connection.close(200, "worker stopping".into()).await;
        })
        .await;
        if closed.is_err() {
            tracing::warn!(message = "Closing the consuming connection timed out.");
        }
    }
}

/// Acks, rejects or requeues one delivery straight on the channel it came on.
///
/// lapin's own [`lapin::Acker`] hands each settlement to the connection's internal task, which
/// spawns a task of several KiB to send it: on a busy worker that detour cost more than the
/// rest of the ack. Delivery tags are numbered per channel, and a channel here is never
/// reopened (lapin's automatic recovery is off), so the tag on its own channel names this
/// delivery and no other; once that channel is closed, nothing is settled and the broker
/// redelivers the message.
#[derive(Clone)]
pub struct ChannelAcker {
    channel: Arc<Channel>,
    tag: DeliveryTag,
}

impl std::fmt::Debug for ChannelAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelAcker")
            .field("channel", &self.channel.id())
            .field("tag", &self.tag)
            .finish()
    }
}

impl ChannelAcker {
    /// Settles the delivery numbered `tag` on `channel`.
    pub fn new(channel: Arc<Channel>, tag: DeliveryTag) -> Self {
        Self { channel, tag }
    }

    /// Acks the delivery; `Ok(false)` when its channel is closed and nothing was sent.
    pub async fn ack(&self, options: BasicAckOptions) -> Result<bool, lapin::Error> {
        if !self.is_open() {
            return Ok(false);
        }
        self.channel
            .basic_ack(self.tag, options)
            .await
            .map(|()| true)
    }

    /// Rejects the delivery; `Ok(false)` when its channel is closed and nothing was sent.
    pub async fn reject(&self, options: BasicRejectOptions) -> Result<bool, lapin::Error> {
        if !self.is_open() {
            return Ok(false);
        }
        self.channel
            .basic_reject(self.tag, options)
            .await
            .map(|()| true)
    }

    /// Nacks the delivery; `Ok(false)` when its channel is closed and nothing was sent.
    pub async fn nack(&self, options: BasicNackOptions) -> Result<bool, lapin::Error> {
        if !self.is_open() {
            return Ok(false);
        }
        self.channel
            .basic_nack(self.tag, options)
            .await
            .map(|()| true)
    }

    fn is_open(&self) -> bool {
        self.channel.status().connected()
    }
}
