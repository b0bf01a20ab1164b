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
    Connection::connect(uri.expose_secret(), properties).await
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
