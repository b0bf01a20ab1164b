//! RabbitMQ chores that both test beds share, the worker tests' `bed` and the interop
//! harness: reading how many messages wait in a queue, and deleting what a test declared.

use lapin::Channel;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

/// Messages ready in `queue`, not counting unacked ones: a passive declare reads the count
/// without creating anything, so a test can ask after any step.
pub async fn ready_count(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

/// Deletes `queues` and `exchange`, ignoring failures: clean-up runs at the end of a test and
/// must not hide what the test itself found.
pub async fn delete(channel: &Channel, queues: &[String], exchange: &str) {
    for queue in queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}
