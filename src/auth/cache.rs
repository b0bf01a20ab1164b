//! The token cache of one account: one refresh at a time, shared by every caller.
//!
//! Shaped like the AWS SDK's expiring identity cache: callers lease the current token set,
//! tagged with a generation number. A caller whose request was rejected asks for a refresh
//! *of the generation it used*; if that generation was already replaced, it simply gets the
//! newer one. Otherwise it joins the refresh in flight, or starts one. The refresh runs in a
//! task of its own, so a caller that is cancelled mid-refresh cannot lose a rotated refresh
//! token: the task finishes, keeps the new token set and emits `updateKeys` regardless.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::json;
use tracing::Instrument as _;

use super::error::RefreshError;
use super::refresh::{RetryPolicy, TokenEndpoint};
use super::token::TokenSet;
use crate::clock::Clock;
use crate::config::{RefreshMode, StepConfig};
use crate::emitter::Emitter;
use crate::event::Keys;

/// A token set as handed to one caller, with the generation it belongs to.
#[derive(Clone, Debug)]
pub struct Lease {
    /// Incremented by every refresh or adoption; a 401 only invalidates its own generation.
    pub generation: u64,
    /// The token set.
    pub tokens: Arc<TokenSet>,
}

type RefreshFuture = Shared<BoxFuture<'static, Result<Lease, RefreshError>>>;

struct State {
    current: Lease,
    in_flight: Option<RefreshFuture>,
    /// The refresh token of the current generation was refused for good; never send it again.
    dead: Option<RefreshError>,
    /// The current generation's `updateKeys` has not been confirmed yet.
    unpublished: bool,
}

struct Inner {
    state: Mutex<State>,
    endpoint: Result<TokenEndpoint, RefreshError>,
    clock: Arc<dyn Clock>,
    skew_s: u64,
    mode: RefreshMode,
    refreshes: AtomicU64,
}

/// One account's tokens and the machinery to renew them. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("generation", &self.current().generation)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache over `tokens`, refreshing at `endpoint` (or failing with its error when the
    /// config cannot refresh).
    pub fn new(
        tokens: TokenSet,
        endpoint: Result<TokenEndpoint, RefreshError>,
        mode: RefreshMode,
        skew_s: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    current: Lease {
                        generation: 0,
                        tokens: Arc::new(tokens),
                    },
                    in_flight: None,
                    dead: None,
                    unpublished: false,
                }),
                endpoint,
                clock,
                skew_s,
                mode,
                refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// The cache for a step config's `oauth` token set; `None` when the config has none.
    pub fn from_config(
        config: &StepConfig,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        let tokens = config.oauth.clone()?;
        let endpoint = TokenEndpoint::from_config(config, retry);
        Some(Self::new(
            tokens,
            endpoint,
            config.refresh,
            config.expiry_skew_s,
            clock,
        ))
    }

    /// The token set in use now.
    pub fn current(&self) -> Lease {
        self.lock().current.clone()
    }

    /// How many refreshes this cache has completed.
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::SeqCst)
    }

    /// The token set for the next API call: refreshed first when it is within the expiry
    /// skew, or always in `every_call` mode.
    pub async fn lease_for_call(&self, emitter: &Emitter) -> Result<Lease, RefreshError> {
        self.republish_if_needed(emitter).await?;
        let lease = self.current();
        let now = self.inner.clock.now_unix();
        let due = self.inner.mode == RefreshMode::EveryCall
            || lease.tokens.is_expired(now, self.inner.skew_s);
        if !due {
            return Ok(lease);
        }
        match self.refresh_generation(lease.generation, emitter).await {
            // A token that is due but not yet expired is still good while the endpoint is down.
            Err(error)
                if error.is_retryable()
                    && !lease.tokens.is_expired(now, 0)
                    && self.inner.mode == RefreshMode::On401 =>
            {
                tracing::warn!(message = "Proactive refresh failed; using the current token until it expires.", %error);
                Ok(lease)
            }
            outcome => outcome,
        }
    }

    /// After the API rejected `rejected`: refresh, unless that generation was already
    /// replaced, in which case the newer token set is returned without a token request.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &Lease,
        emitter: &Emitter,
    ) -> Result<Lease, RefreshError> {
        self.refresh_generation(rejected.generation, emitter).await
    }

    /// Waits until the refresh in flight, if any, has finished. For callers that stop waiting
    /// on their own request (a timeout) but must not exit before a rotated refresh token is
    /// safe.
    pub async fn wait_for_refresh(&self) {
        let in_flight = self.lock().in_flight.clone();
        if let Some(refresh) = in_flight {
            let _ = refresh.await;
        }
    }

    /// Adopts a token set refreshed elsewhere (another replica of the step).
    pub fn adopt(&self, tokens: TokenSet) {
        let mut state = self.lock();
        state.current = Lease {
            generation: state.current.generation + 1,
            tokens: Arc::new(tokens),
        };
        state.dead = None;
        state.unpublished = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .expect("no code panics while holding the token cache lock")
    }

    async fn refresh_generation(
        &self,
        generation: u64,
        emitter: &Emitter,
    ) -> Result<Lease, RefreshError> {
        let refresh = {
            let mut state = self.lock();
            if state.current.generation != generation {
                return Ok(state.current.clone());
            }
            if let Some(dead) = &state.dead {
                return Err(dead.clone());
            }
            match &state.in_flight {
                Some(refresh) => refresh.clone(),
                None => {
                    let refresh = self.start_refresh(state.current.clone(), emitter.clone())?;
                    state.in_flight = Some(refresh.clone());
                    refresh
                }
            }
        };
        refresh.await
    }

    /// Spawns the one refresh of `old`'s generation. The task outlives its callers.
    fn start_refresh(&self, old: Lease, emitter: Emitter) -> Result<RefreshFuture, RefreshError> {
        let refresh_token = old
            .tokens
            .refresh_token()
            .cloned()
            .ok_or(RefreshError::NoRefreshToken)?;
        let endpoint = self.inner.endpoint.clone()?;
        let cache = self.clone();
        let span = tracing::info_span!("token_refresh", generation = old.generation);
        let task = tokio::spawn(
            async move {
                let sent_at = cache.inner.clock.now_unix();
                let outcome = endpoint.refresh(&refresh_token).await.and_then(|fields| {
                    TokenSet::from_response(fields, sent_at, Some(&old.tokens))
                        .map_err(|error| RefreshError::InvalidResponse(error.to_string()))
                });
                cache
                    .finish_refresh(old.generation, outcome, &emitter)
                    .await
            }
            .instrument(span),
        );
        Ok(task
            .map(|joined| {
                joined.unwrap_or_else(|_| {
                    Err(RefreshError::InvalidResponse(
                        "the refresh task panicked".into(),
                    ))
                })
            })
            .boxed()
            .shared())
    }

    /// Ends the refresh of `generation`. The keys are published while the refresh is still in
    /// flight and before the new token set is current, so that no caller can see the new
    /// token set with its keys pending and publish them a second time.
    async fn finish_refresh(
        &self,
        generation: u64,
        outcome: Result<TokenSet, RefreshError>,
        emitter: &Emitter,
    ) -> Result<Lease, RefreshError> {
        crate::telemetry::metrics::get().token_refreshed(&outcome);
        let tokens = match outcome {
            Ok(tokens) => Arc::new(tokens),
            Err(error) => {
                tracing::warn!(message = "Access token refresh failed.", %error);
                let mut state = self.lock();
                state.in_flight = None;
                if error.is_reauthorization_required() && state.current.generation == generation {
                    state.dead = Some(error.clone());
                }
                return Err(error);
            }
        };
        self.inner.refreshes.fetch_add(1, Ordering::SeqCst);
        let published = publish_keys(&tokens, emitter).await;
        let lease = {
            let mut state = self.lock();
            state.in_flight = None;
            // Numbered after the current generation, not after the refreshed one: a token set
            // adopted meanwhile took that number.
            state.current = Lease {
                generation: state.current.generation + 1,
                tokens,
            };
            state.dead = None;
            state.unpublished = published.is_err();
            state.current.clone()
        };
        let expires_in_s = lease
            .tokens
            .expires_at()
            .map(|at| at.saturating_sub(self.inner.clock.now_unix()));
        tracing::info!(
            message = "Access token refreshed.",
            generation = lease.generation,
            expires_in_s
        );
        published.map(|()| lease)
    }

    /// Publishes the keys of a refresh whose `updateKeys` failed, once: the caller that finds
    /// them pending takes the job, and hands it back if publishing fails again.
    async fn republish_if_needed(&self, emitter: &Emitter) -> Result<(), RefreshError> {
        let pending = {
            let mut state = self.lock();
            let pending = state.unpublished && state.in_flight.is_none();
            state.unpublished &= !pending;
            pending.then(|| state.current.clone())
        };
        let Some(lease) = pending else {
            return Ok(());
        };
        let published = publish_keys(&lease.tokens, emitter).await;
        if published.is_err() {
            let mut state = self.lock();
            if state.current.generation == lease.generation {
                state.unpublished = true;
            }
        }
        published
    }
}

/// Emits `updateKeys` with the whole token set; the refresh is complete only once the
/// platform has the keys, since a rotated refresh token exists nowhere else.
async fn publish_keys(tokens: &TokenSet, emitter: &Emitter) -> Result<(), RefreshError> {
    // The one place the token set is written out: the updateKeys payload.
    let keys = Keys::new(json!({ "oauth": tokens.expose_json() }));
    emitter.update_keys(keys).await.map_err(|error| {
        tracing::error!(message = "Refreshed keys could not be published; retrying with the next call.", %error);
        RefreshError::KeysNotPublished(error.to_string())
    })
}
