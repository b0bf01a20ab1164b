//! The token cache of one account: one refresh at a time, shared by every caller.
//!
//! Shaped like the AWS SDK's expiring identity cache: callers lease the current token set,
//! tagged with a generation number. A caller whose request was rejected asks for a refresh
//! *of the generation it used*; if that generation was already replaced, it simply gets the
//! newer one. Otherwise it joins the refresh in flight, or starts one. The refresh runs in a
//! task of its own, so a caller that is cancelled mid-refresh cannot lose a rotated refresh
//! token: the task finishes, keeps the new token set and emits `updateKeys` regardless.
//!
//! While the token endpoint fails (5xx, 429, timeout, unreachable), the cache keeps one backoff
//! schedule for the account: each refresh task makes one request, and callers that need a
//! new token wait for the schedule's next slot and join its one request, up to the policy's
//! `max_wait`; the wait is the caller's, so dropping its future ends it. Keys are published
//! one generation at a time, in order; keys whose publish failed are re-sent before the next
//! call, or by [`TokenCache::flush_unpublished`] when the process stops.
//!
//! Across processes that share the account, a [`RefreshCoordinator`] (set with
//! [`TokenCache::coordinate_with`]) extends the single flight: the refresh task takes the
//! account's lease before its token request, re-checks under it whether newer keys were
//! adopted meanwhile, and publishes the new keys through the lease before releasing it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use reqwest::header::HeaderValue;
use serde_json::json;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::coordination::{Coordination, RefreshCoordinator, RefreshLease};
use super::error::RefreshError;
use super::refresh::{Attempt, RetryPolicy, TokenEndpoint};
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
    /// `Bearer <access token>` as a sensitive header value (its `Debug` shows no token), made
    /// once per generation instead of on every call; `None` when the token cannot be a
    /// header value.
    bearer: Option<HeaderValue>,
}

impl Lease {
    /// Generation `generation` of the token set `tokens`.
    pub fn new(generation: u64, tokens: Arc<TokenSet>) -> Self {
        let bearer = format!("Bearer {}", tokens.access_token().expose_secret());
        let bearer = HeaderValue::from_str(&bearer).ok().map(|mut value| {
            value.set_sensitive(true);
            value
        });
        Self {
            generation,
            tokens,
            bearer,
        }
    }

    /// The `Authorization` value of its access token, `None` when the token holds characters
    /// no header may.
    pub fn bearer(&self) -> Option<&HeaderValue> {
        self.bearer.as_ref()
    }
}

type RefreshFuture = Shared<BoxFuture<'static, Result<Lease, RefreshError>>>;

struct State {
    current: Lease,
    in_flight: Option<RefreshFuture>,
    /// The refresh token of the current generation was refused for good; never send it again.
    dead: Option<RefreshError>,
    /// The current generation's `updateKeys` has not been confirmed: the emitter of the
    /// publish that failed, through which a flush sends the keys again.
    unpublished: Option<Emitter>,
    /// The token endpoint has been failing since its last answer: the one backoff schedule
    /// every caller of the account follows.
    outage: Option<Outage>,
}

/// A failing token endpoint, as far as the next request needs to know.
struct Outage {
    /// Consecutive failed token requests.
    failures: u32,
    /// The last failure.
    last: String,
    /// The wait the endpoint last asked for.
    retry_after: Option<Duration>,
    /// No token request goes out before this.
    next_attempt: Instant,
    /// A request of this outage was sent but never answered, so it may have rotated the
    /// refresh token.
    response_lost: bool,
}

impl Outage {
    fn error(&self) -> RefreshError {
        RefreshError::Unavailable {
            attempts: self.failures,
            last: self.last.clone(),
            retry_after: self.retry_after,
        }
    }
}

struct Inner {
    state: Mutex<State>,
    endpoint: Result<TokenEndpoint, RefreshError>,
    clock: Arc<dyn Clock>,
    skew_s: u64,
    mode: RefreshMode,
    refreshes: AtomicU64,
    /// Held while `updateKeys` is published, so that keys go out one at a time and in
    /// generation order: a late re-send of one generation can never follow the next.
    publishing: tokio::sync::Mutex<()>,
    /// The account's cross-process single flight, when the process has a broker.
    coordinator: OnceLock<Arc<dyn RefreshCoordinator>>,
    /// `false` while calls are held: the process has not yet learnt the account's newest keys.
    gate: tokio::sync::watch::Sender<bool>,
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

/// What a caller that needs a refresh does next.
enum Next {
    /// Join this refresh.
    Join(RefreshFuture),
    /// Wait for the endpoint's next slot on the shared schedule.
    WaitUntil(Instant),
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
                    current: Lease::new(0, Arc::new(tokens)),
                    in_flight: None,
                    dead: None,
                    unpublished: None,
                    outage: None,
                }),
                endpoint,
                clock,
                skew_s,
                mode,
                refreshes: AtomicU64::new(0),
                publishing: tokio::sync::Mutex::new(()),
                coordinator: OnceLock::new(),
                gate: tokio::sync::watch::Sender::new(true),
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

    /// True while the current generation's `updateKeys` has not been confirmed.
    pub fn has_unpublished_keys(&self) -> bool {
        self.lock().unpublished.is_some()
    }

    /// The token set for the next API call: refreshed first when it is within the expiry
    /// skew, or always in `every_call` mode. Keys whose `updateKeys` failed are re-sent first.
    ///
    /// A token that has expired (or `every_call`) waits out a failing token endpoint on the
    /// account's shared schedule, up to the policy's `max_wait`; a token that is due but
    /// still valid is used as is while the endpoint fails.
    pub async fn lease_for_call(&self, emitter: &Emitter) -> Result<Lease, RefreshError> {
        self.pass_gate().await;
        self.republish(Some(emitter)).await?;
        let lease = self.current();
        let now = self.inner.clock.now_unix();
        let due = self.inner.mode == RefreshMode::EveryCall
            || lease.tokens.is_expired(now, self.inner.skew_s);
        if !due {
            return Ok(lease);
        }
        // A token that is due but not yet expired is still good while the endpoint is down.
        let still_valid = self.inner.mode == RefreshMode::On401 && !lease.tokens.is_expired(now, 0);
        // Boxed: a refresh is rare, and every call's future would otherwise be its size.
        match Box::pin(self.refresh_generation(lease.generation, emitter, !still_valid)).await {
            Err(error) if still_valid && error.is_retryable() => {
                tracing::warn!(message = "Proactive refresh failed; using the current token until it expires.", %error);
                Ok(lease)
            }
            outcome => outcome,
        }
    }

    /// After the API rejected `rejected`: refresh, unless that generation was already
    /// replaced, in which case the newer token set is returned without a token request.
    /// Waits out a failing token endpoint like [`Self::lease_for_call`].
    pub async fn refresh_after_rejection(
        &self,
        rejected: &Lease,
        emitter: &Emitter,
    ) -> Result<Lease, RefreshError> {
        self.pass_gate().await;
        self.refresh_generation(rejected.generation, emitter, true)
            .await
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

    /// For a process about to exit (the worker's shutdown): waits for the refresh in flight,
    /// then sends once more the keys whose `updateKeys` was not confirmed, through the
    /// emitter of the publish that failed. Otherwise they would be re-sent only by the next
    /// API call, which never comes, and the rotated refresh token would be lost. `Ok` when
    /// nothing is pending. The caller bounds the wait (a timeout drops the future).
    pub async fn flush_unpublished(&self) -> Result<(), RefreshError> {
        self.wait_for_refresh().await;
        self.republish(None).await
    }

    /// Holds every call until [`Self::release_calls`]: for a process that must learn the
    /// account's newest keys (from the broker) before its first call, but should not hold up
    /// the rest of its start-up meanwhile.
    pub fn hold_calls(&self) {
        self.inner.gate.send_replace(false);
    }

    /// Lets the calls held by [`Self::hold_calls`] go.
    pub fn release_calls(&self) {
        self.inner.gate.send_replace(true);
    }

    /// Waits while calls are held; free (one read) otherwise.
    async fn pass_gate(&self) {
        if !*self.inner.gate.borrow() {
            let mut gate = self.inner.gate.subscribe();
            // Boxed, as the other rare waits of a call.
            let _ = Box::pin(gate.wait_for(|open| *open)).await;
        }
    }

    /// Makes every later refresh take the account's lease from `coordinator` first, so that
    /// processes sharing the account refresh one at a time. `false` when the cache already
    /// has a coordinator (it keeps that one).
    pub fn coordinate_with(&self, coordinator: Arc<dyn RefreshCoordinator>) -> bool {
        self.inner.coordinator.set(coordinator).is_ok()
    }

    /// Adopts a token set refreshed elsewhere (another replica of the step).
    pub fn adopt(&self, tokens: TokenSet) {
        let mut state = self.lock();
        state.current = Lease::new(state.current.generation + 1, Arc::new(tokens));
        state.dead = None;
        state.unpublished = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .expect("no code panics while holding the token cache lock")
    }

    /// How long a caller waits out a failing token endpoint.
    fn max_wait(&self) -> Duration {
        self.inner
            .endpoint
            .as_ref()
            .map(|endpoint| endpoint.retry().max_wait)
            .unwrap_or_default()
    }

    /// A new token set for `generation`: the one that replaced it, the outcome of the refresh
    /// in flight, or a new refresh. While the endpoint is failing, a caller that may `hold`
    /// waits on the shared schedule and joins its next attempt, until the endpoint answers or
    /// `max_wait` passes; one that may not gets the transient error at once. Dropping the
    /// future ends the wait.
    async fn refresh_generation(
        &self,
        generation: u64,
        emitter: &Emitter,
        hold: bool,
    ) -> Result<Lease, RefreshError> {
        let deadline = far_or(Instant::now(), self.max_wait());
        loop {
            let next = {
                let mut state = self.lock();
                if state.current.generation != generation {
                    return Ok(state.current.clone());
                }
                if let Some(dead) = &state.dead {
                    return Err(dead.clone());
                }
                let now = Instant::now();
                match (&state.in_flight, &state.outage) {
                    (Some(refresh), _) => Next::Join(refresh.clone()),
                    (None, Some(outage)) if !hold || now >= deadline => {
                        if outage.next_attempt > now || now >= deadline {
                            return Err(outage.error());
                        }
                        Next::Join(self.start_in(&mut state, emitter)?)
                    }
                    (None, Some(outage)) if outage.next_attempt > now => {
                        Next::WaitUntil(outage.next_attempt.min(deadline))
                    }
                    (None, _) => Next::Join(self.start_in(&mut state, emitter)?),
                }
            };
            match next {
                Next::WaitUntil(at) => tokio::time::sleep_until(at).await,
                // A failed attempt moved the schedule on; the loop's top decides whether to
                // wait for the next one.
                Next::Join(refresh) => match refresh.await {
                    Err(RefreshError::Unavailable { .. }) if hold => {}
                    outcome => return outcome,
                },
            }
        }
    }

    /// Starts the refresh of the current generation and records it as in flight.
    fn start_in(
        &self,
        state: &mut State,
        emitter: &Emitter,
    ) -> Result<RefreshFuture, RefreshError> {
        let refresh = self.start_refresh(state.current.clone(), emitter.clone())?;
        state.in_flight = Some(refresh.clone());
        Ok(refresh)
    }

    /// Spawns one token request for `old`'s generation. The task outlives its callers.
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
                let lease = match cache.inner.coordinator.get().cloned() {
                    None => None,
                    Some(coordinator) => match coordinator.acquire().await {
                        Ok(Coordination::Lease(lease)) => {
                            // Re-check under the lease: keys adopted while it was being
                            // taken hold a newer refresh token than `old`.
                            if cache.current().generation != old.generation {
                                lease.release().await;
                                return cache.settle_without_refresh();
                            }
                            Some(lease)
                        }
                        Ok(Coordination::Newer(tokens)) => {
                            cache.adopt(tokens);
                            return cache.settle_without_refresh();
                        }
                        Ok(Coordination::Superseded) => return cache.settle_without_refresh(),
                        Err(last) => {
                            let attempt = Attempt::Transient {
                                last: format!("the account's refresh lease: {last}"),
                                retry_after: None,
                                response_lost: false,
                            };
                            let sent_at = cache.inner.clock.now_unix();
                            return cache
                                .finish_refresh(
                                    old,
                                    sent_at,
                                    attempt,
                                    endpoint.retry(),
                                    &emitter,
                                    None,
                                )
                                .await;
                        }
                    },
                };
                let sent_at = cache.inner.clock.now_unix();
                let attempt = crate::telemetry::metrics::get()
                    .time_token_endpoint(endpoint.attempt(&refresh_token))
                    .await;
                let outcome = cache
                    .finish_refresh(
                        old,
                        sent_at,
                        attempt,
                        endpoint.retry(),
                        &emitter,
                        lease.as_deref(),
                    )
                    .await;
                if let Some(lease) = lease {
                    lease.release().await;
                }
                outcome
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

    /// Ends a refresh that another process's keys made unnecessary: the adopted token set
    /// is the outcome.
    fn settle_without_refresh(&self) -> Result<Lease, RefreshError> {
        let mut state = self.lock();
        state.in_flight = None;
        tracing::info!(
            message = "Keys refreshed by another process adopted instead of refreshing.",
            generation = state.current.generation
        );
        Ok(state.current.clone())
    }

    /// Ends the token request of `old`'s generation. A transient failure moves the shared
    /// schedule on. New keys are published while the refresh is still in flight and before
    /// the new token set is current, so that no caller can see the new token set with its
    /// keys pending and publish them a second time.
    async fn finish_refresh(
        &self,
        old: Lease,
        sent_at: u64,
        attempt: Attempt,
        retry: &RetryPolicy,
        emitter: &Emitter,
        lease: Option<&dyn RefreshLease>,
    ) -> Result<Lease, RefreshError> {
        let outcome = match attempt {
            Attempt::Done(result) => result.and_then(|fields| {
                TokenSet::from_response(fields, sent_at, Some(&old.tokens))
                    .map_err(|error| RefreshError::InvalidResponse(error.to_string()))
            }),
            Attempt::Transient {
                last,
                retry_after,
                response_lost,
            } => {
                let mut state = self.lock();
                state.in_flight = None;
                let (before, lost) = state
                    .outage
                    .as_ref()
                    .map_or((0, false), |o| (o.failures, o.response_lost));
                let failures = before + 1;
                let wait = retry.backoff(failures, retry_after);
                let outage = state.outage.insert(Outage {
                    failures,
                    last,
                    retry_after,
                    next_attempt: Instant::now() + wait,
                    response_lost: lost || response_lost,
                });
                tracing::warn!(
                    message = "Token endpoint failed; callers wait for the next attempt.",
                    failures = outage.failures,
                    wait_ms = wait.as_millis() as u64,
                    reason = %outage.last
                );
                let error = outage.error();
                crate::telemetry::metrics::get().token_refreshed(&Err(error.clone()));
                return Err(error);
            }
        };
        crate::telemetry::metrics::get().token_refreshed(&outcome);
        let lost_response = {
            let mut state = self.lock();
            state.outage.take().is_some_and(|o| o.response_lost)
        };
        let tokens = match outcome {
            Ok(tokens) => Arc::new(tokens),
            Err(error) => {
                let error = match error {
                    RefreshError::ReauthorizationRequired {
                        error, description, ..
                    } => RefreshError::ReauthorizationRequired {
                        error,
                        description,
                        after_lost_response: lost_response,
                    },
                    other => other,
                };
                tracing::warn!(message = "Access token refresh failed.", %error);
                let mut state = self.lock();
                state.in_flight = None;
                if error.is_reauthorization_required() && state.current.generation == old.generation
                {
                    state.dead = Some(error.clone());
                }
                return Err(error);
            }
        };
        self.inner.refreshes.fetch_add(1, Ordering::SeqCst);
        // The account's other processes wait for these keys while the lease is held.
        if let Some(lease) = lease {
            lease.publish(&tokens).await;
        }
        let publishing = self.inner.publishing.lock().await;
        let published = publish_keys(&tokens, emitter).await;
        let lease = {
            let mut state = self.lock();
            state.in_flight = None;
            // Numbered after the current generation, not after the refreshed one: a token set
            // adopted meanwhile took that number.
            state.current = Lease::new(state.current.generation + 1, tokens);
            state.dead = None;
            state.unpublished = published.is_err().then(|| emitter.clone());
            state.current.clone()
        };
        drop(publishing);
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

    /// Sends again the current keys whose `updateKeys` failed, once: through `emitter`, or
    /// the emitter of the failed publish. Under the publishing lock, so it cannot overtake
    /// a newer generation's keys; keys a refresh or adoption replaced meanwhile are dropped,
    /// not sent.
    async fn republish(&self, emitter: Option<&Emitter>) -> Result<(), RefreshError> {
        if self.lock().unpublished.is_none() {
            return Ok(());
        }
        // Boxed: keys left unpublished are rare, and every call passes here.
        Box::pin(self.republish_unpublished(emitter)).await
    }

    /// [`Self::republish`] once some keys wait.
    async fn republish_unpublished(&self, emitter: Option<&Emitter>) -> Result<(), RefreshError> {
        let _publishing = self.inner.publishing.lock().await;
        let (lease, failed_through) = {
            let mut state = self.lock();
            let Some(failed_through) = state.unpublished.take() else {
                return Ok(());
            };
            (state.current.clone(), failed_through)
        };
        let emitter = emitter.cloned().unwrap_or(failed_through);
        let published = publish_keys(&lease.tokens, &emitter).await;
        match &published {
            Ok(()) => tracing::info!(
                message = "Refreshed keys published after an earlier failure.",
                generation = lease.generation
            ),
            Err(_) => {
                let mut state = self.lock();
                if state.current.generation == lease.generation {
                    state.unpublished = Some(emitter);
                }
            }
        }
        published
    }
}

/// `from + wait`, or a year on when that is past what an `Instant` holds.
fn far_or(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait)
        .unwrap_or_else(|| from + Duration::from_secs(365 * 24 * 3600))
}

/// Emits `updateKeys` with the whole token set; the refresh is complete only once the
/// platform has the keys, since a rotated refresh token exists nowhere else.
async fn publish_keys(tokens: &TokenSet, emitter: &Emitter) -> Result<(), RefreshError> {
    // The one place the token set is written out: the updateKeys payload.
    let keys = Keys::new(json!({ "oauth": tokens.expose_json() }));
    emitter.update_keys(keys).await.map_err(|error| {
        tracing::error!(message = "Refreshed keys could not be published; they are sent again before the next call or at shutdown.", %error);
        RefreshError::KeysNotPublished(error.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_too_long_for_an_instant_ends_a_year_on() {
        let now = Instant::now();
        assert_eq!(
            far_or(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = far_or(now, Duration::MAX);
        assert_eq!(far, now + Duration::from_secs(365 * 24 * 3600));
    }

    /// A cache over the access token `access_token` that cannot refresh.
    fn cache_without_endpoint(access_token: &str) -> TokenCache {
        TokenCache::new(
            TokenSet::from_stored(json!({ "access_token": access_token })).unwrap(),
            Err(RefreshError::NotConfigured("no endpoint in this test")),
            RefreshMode::On401,
            60,
            crate::clock::system(),
        )
    }

    #[tokio::test]
    async fn calls_held_until_the_newest_keys_are_known_get_the_adopted_keys() {
        let cache = cache_without_endpoint("at-config");
        let emitter = Emitter::new(Arc::new(crate::emitter::CollectingSink::new()));
        cache.hold_calls();
        let held = tokio::spawn({
            let cache = cache.clone();
            let emitter = emitter.clone();
            async move { cache.lease_for_call(&emitter).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "the call waits for the newest keys");
        cache.adopt(TokenSet::from_stored(json!({"access_token": "at-newest"})).unwrap());
        cache.release_calls();
        let lease = held.await.unwrap();
        assert_eq!(lease.generation, 1);
        assert_eq!(lease.tokens.access_token().expose_secret(), "at-newest");
    }

    #[test]
    fn debug_shows_the_generation_and_mode_only() {
        let cache = cache_without_endpoint("at-s3cret");
        assert_eq!(
            format!("{cache:?}"),
            "TokenCache { generation: 0, mode: On401, .. }"
        );
    }

    #[test]
    fn a_lease_carries_its_bearer_header_and_shows_no_token() {
        let lease = cache_without_endpoint("at-s3cret").current();
        let bearer = lease.bearer().expect("a header-safe token");
        assert_eq!(bearer.as_bytes(), b"Bearer at-s3cret");
        assert!(bearer.is_sensitive());
        assert!(!format!("{lease:?}").contains("s3cret"), "{lease:?}");
        let unsafe_token = cache_without_endpoint("at-\nline").current();
        assert!(unsafe_token.bearer().is_none());
    }
}
