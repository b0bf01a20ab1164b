//! RabbitMQ chores that both test beds share, the worker tests' `bed` and the interop
//! harness: reading how many messages wait in a queue, and deleting what a test declared.

use lapin::Channel;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

/// Messages ready in `queue`, not counting unacked ones.
pub async fn ready_count(channel: &Channel, queue: &str) -> u32 {
    sailor::amqp::consumer::ready_count(channel, queue)
        .await
        .unwrap()
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
