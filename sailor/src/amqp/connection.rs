//! Opening connections to RabbitMQ: one for reading and one for writing, like sailor-nodejs,
//! so that a blocked publisher never stalls the consumer's acks. Attempts repeat with backoff
//! until they succeed or the caller gives up (by dropping the future).

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::settings::AmqpUri;

/// First wait after a failed connection attempt.
pub const INITIAL_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between connection attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// How long closing a connection (or cancelling a consumer) may take: a broker that does not
/// answer is not waited for, so that shutdown keeps its bound.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest AMQP frame a connection asks for when the URI sets no `frame_max`.
///
/// lapin keeps a send and a receive ring buffer of 32 frames per connection and touches every
/// byte of them: at RabbitMQ's default of 128 KiB that is 8 MiB of resident memory per
/// connection, most of a worker's footprint. At 32 KiB it is 2 MiB; a message larger than a
/// frame is sent in several, which costs a few bytes of header each.
pub const DEFAULT_FRAME_MAX: u32 = 32 * 1024;

/// Which of the two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The consumer's connection.
    Read,
    /// The publisher's connection.
    Write,
    /// The connection of the account's keys: lease, adoption, last keys.
    Keys,
}

impl Role {
    fn suffix(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Keys => "keys",
        }
    }
}

/// One connection attempt.
pub async fn connect(uri: &AmqpUri, role: Role) -> Result<Connection, lapin::Error> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "component".to_owned());
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{host}-{}", role.suffix()).into());
    let mut parsed = uri.expose_parsed().clone();
    parsed.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    Connection::connect_uri(parsed, properties).await
}

/// Connects, retrying with exponential backoff until it succeeds.
pub async fn connect_with_backoff(uri: &AmqpUri, role: Role) -> Connection {
    let mut delay = INITIAL_RECONNECT_DELAY;
    loop {
        match connect(uri, role).await {
            Ok(connection) => {
                tracing::info!(
                    message = "Connected to RabbitMQ.",
                    host = %uri.host(),
                    vhost = uri.vhost(),
                    role = role.suffix()
                );
                return connection;
            }
            Err(error) => {
                tracing::warn!(
                    message = "RabbitMQ connection failed; retrying.",
                    host = %uri.host(),
                    vhost = uri.vhost(),
                    role = role.suffix(),
                    %error,
                    retry_in_ms = delay.as_millis() as u64
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn negotiated_frame_max(uri: &str) -> u32 {
        let uri = AmqpUri::parse(uri).unwrap();
        let connection = connect(&uri, Role::Read).await.expect("RabbitMQ answers");
        let frame_max = connection.configuration().frame_max();
        let _ = connection.close(200, "done".into()).await;
        frame_max
    }

    #[tokio::test]
    async fn connections_ask_for_small_frames_unless_the_uri_says_otherwise() {
        let uri = "amqp://guest:guest@127.0.0.1:5672/%2f";
        assert_eq!(negotiated_frame_max(uri).await, DEFAULT_FRAME_MAX);
        assert_eq!(
            negotiated_frame_max(&format!("{uri}?frame_max=65536")).await,
            65_536
        );
    }
}
