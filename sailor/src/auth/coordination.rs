//! Refreshes coordinated across processes that share one account.
//!
//! Within one process the [`super::TokenCache`] makes one refresh serve every caller; across
//! processes (replicas of a step, the steps of other flows, `verify_credentials`) a
//! [`RefreshCoordinator`] does the same: before its token request, a refresh asks for the
//! account's lease. The holder refreshes, hands the new keys to the lease to publish, then
//! releases it; a process that finds the lease taken waits for the holder's keys instead of
//! sending the refresh token that the holder is rotating away. The broker-side implementation
//! is [`crate::amqp::account_keys`]; a cache without a coordinator refreshes on its own.

use async_trait::async_trait;

use super::token::TokenSet;

/// What a refresh does after asking for the account's lease.
pub enum Coordination {
    /// This process holds the lease and no newer keys are known: refresh with the current
    /// token set, publish through the lease, release it.
    Lease(Box<dyn RefreshLease>),
    /// Newer keys than the ones held were found (while taking the lease); adopt them and
    /// replay with them instead of refreshing. The lease is already released.
    Newer(TokenSet),
    /// Another process refreshed while this one waited, and its keys were adopted: use the
    /// cache's current token set.
    Superseded,
}

impl std::fmt::Debug for Coordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lease(_) => "Lease",
            Self::Newer(_) => "Newer",
            Self::Superseded => "Superseded",
        })
    }
}

/// The account-wide single flight of refreshes, across processes.
#[async_trait]
pub trait RefreshCoordinator: Send + Sync + std::fmt::Debug {
    /// Takes the account's lease, waiting (bounded) while another process holds it. An `Err`
    /// (the broker is unreachable, the lease stayed taken too long) is transient: the cache
    /// treats it like a failing token endpoint and tries again on its backoff schedule.
    async fn acquire(&self) -> Result<Coordination, String>;
}

/// The account's lease, held while this process refreshes.
#[async_trait]
pub trait RefreshLease: Send + Sync {
    /// Publishes the refreshed keys to every process of the account, with the next version.
    /// A failure is logged, not returned: the platform still gets `updateKeys`.
    async fn publish(&self, tokens: &TokenSet);
    /// Gives the lease up, so that the next refresh of any process may take it.
    async fn release(self: Box<Self>);
}
