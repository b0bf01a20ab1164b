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
        self.settle(self.channel.basic_ack(self.tag, options)).await
    }

    /// Rejects the delivery; `Ok(false)` when its channel is closed and nothing was sent.
    pub async fn reject(&self, options: BasicRejectOptions) -> Result<bool, lapin::Error> {
        self.settle(self.channel.basic_reject(self.tag, options))
            .await
    }

    /// Nacks the delivery; `Ok(false)` when its channel is closed and nothing was sent.
    pub async fn nack(&self, options: BasicNackOptions) -> Result<bool, lapin::Error> {
        self.settle(self.channel.basic_nack(self.tag, options))
            .await
    }

    /// Sends `settlement` (not started before it is awaited) unless the channel has closed.
    async fn settle(
        &self,
        settlement: impl Future<Output = Result<(), lapin::Error>>,
    ) -> Result<bool, lapin::Error> {
        if !self.channel.status().connected() {
            return Ok(false);
        }
        settlement.await.map(|()| true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use lapin::options::{BasicGetOptions, BasicPublishOptions};
    use lapin::{BasicProperties, ConnectionProperties};

    use super::*;

    /// The broker the test command guarantees.
    const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    /// A server-named queue that lives as long as `channel`'s connection and only it can use.
    pub(crate) async fn exclusive_queue(channel: &Channel) -> String {
        let declared = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        declared.name().as_str().to_owned()
    }

    /// Takes the next message off `queue` within 5 s, unacked unless `no_ack`.
    pub(crate) async fn next_delivery(
        channel: &Channel,
        queue: &str,
        no_ack: bool,
    ) -> lapin::message::Delivery {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(message) = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack })
                .await
                .unwrap()
            {
                return message.delivery;
            }
            assert!(tokio::time::Instant::now() < deadline, "no message came");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_channel_acker_settles_its_own_delivery_and_nothing_once_the_channel_is_closed() {
        let connection = Connection::connect(AMQP_URI, ConnectionProperties::default())
            .await
            .expect("RabbitMQ runs on 127.0.0.1:5672");
        let channel = Arc::new(connection.create_channel().await.unwrap());
        let queue = exclusive_queue(&channel).await;
        for body in [&b"acked"[..], b"rejected", b"requeued", b"left"] {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default(),
                )
                .await
                .unwrap();
        }
        let mut ackers = Vec::new();
        for _ in 0..4 {
            let delivery = next_delivery(&channel, &queue, false).await;
            ackers.push(ChannelAcker::new(channel.clone(), delivery.delivery_tag));
        }

        // Settled newest first: each acker names its own delivery, not the latest.
        let requeue = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        assert!(ackers[2].nack(requeue).await.unwrap());
        assert!(
            ackers[1]
                .reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap()
        );
        assert!(ackers[0].ack(BasicAckOptions::default()).await.unwrap());
        let back = next_delivery(&channel, &queue, true).await;
        assert_eq!(back.data, b"requeued");
        assert!(back.redelivered);

        // Once its channel is closed an acker sends nothing, and the broker puts the delivery
        // back; the three settled above stay settled.
        channel.close(200, "done".into()).await.unwrap();
        assert!(!ackers[3].ack(BasicAckOptions::default()).await.unwrap());
        let other = connection.create_channel().await.unwrap();
        assert_eq!(next_delivery(&other, &queue, true).await.data, b"left");
        assert_eq!(ready_count(&other, &queue).await.unwrap(), 0);
        connection.close(200, "done".into()).await.unwrap();
    }
}
