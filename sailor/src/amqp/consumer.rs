//! Consuming the step's queue: manual acks, prefetch = the number of messages processed at
//! once, on the read connection.

use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
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
    channel: Channel,
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
            channel,
            consumer,
        })
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
