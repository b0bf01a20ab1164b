//! `component worker`: the run loop of the production mode (shaped like mini-redis'
//! `server::run`).
//!
//! It loads the step, consumes the step's queue and processes up to `prefetch` deliveries at
//! once, each in its own task and tracing span. A delivery is settled in exactly one place,
//! `Worker::settle`, after every publish it caused was confirmed: acked on success (a
//! rebound is a success), rejected without requeue when it emitted an error, requeued when
//! not even its error could be published. On connection loss it reconnects with backoff;
//! the broker redelivers what was unacked, and a delivery whose `messageId` is still in flight
//! is not processed again but settled with it (sailor-nodejs' messagesDB, narrowed to what the
//! broker flags as redelivered, so that distinct messages sharing an id are never merged).
//!
//! With `COMPONENT_METRICS_ADDR` set it also serves the operator's endpoint
//! ([`crate::telemetry::server`]): each delivery is counted in the metrics and watched by
//! the liveness check, and readiness follows whether the consumer is attached.
//!
//! Shutdown ends within `COMPONENT_SHUTDOWN_TIMEOUT` ([`Settings::shutdown_timeout`]) of the
//! signal, whatever the broker and the API do: it stops consuming; in-flight deliveries get
//! the first three quarters of the time, a token refresh still running and keys whose
//! publish failed (flushed once more) the next eighth, and closing both connections the rest.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::amqp::account_keys::{AccountKeys, AccountKeysConfig, DEFAULT_LEASE_WAIT};
use crate::amqp::connection::{INITIAL_RECONNECT_DELAY, MAX_RECONNECT_DELAY};
use crate::amqp::consumer::{ChannelAcker, Subscription};
use crate::amqp::error_input;
use crate::amqp::headers::{self, IncomingHeaders};
use crate::amqp::keys::KeysPublisher;
use crate::amqp::publisher::Publisher;
use crate::amqp::sink::{self, Delivered, DeliverySink, StepWire};
use crate::clock;
use crate::crypto::Encoding;
use crate::emitter::{Emitter, EventSink as _};
use crate::event::{ErrorReport, Event};
use crate::hooks::{self, HookError};
use crate::lightweight::{self, ResolveError};
use crate::message::Message;
use crate::module::Invocation;
use crate::object_storage::ObjectStorage;
use crate::platform::{self, LoadedStep, StepSourceError};
use crate::platform_keys::{AccountsApi, KeysDelivery, KeysRoute};
use crate::registry::Registry;
use crate::settings::{InputFormat, PublishRetry, Reconnect, Settings};
use crate::step::{Outcome, Step, UnknownFunction};
use crate::telemetry::health::Health;
use crate::telemetry::metrics::{self, DeliveryMetrics, Processed};
use crate::telemetry::server::OpsServer;
use crate::wake_gate::WakeGated;

/// How long a delivery that must go back to the queue is held first, so that a failure on the
/// broker's side (an exchange gone, a connection down) does not become a hot redelivery loop.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// Retries of the start-up error's publish: the process is about to exit and must not hang.
pub const START_ERROR_PUBLISH_RETRIES: u32 = 3;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The step definition could not be loaded.
    #[error(transparent)]
    StepSource(#[from] StepSourceError),
    /// `ELASTICIO_FUNCTION` names no compiled-in function.
    #[error(transparent)]
    UnknownFunction(#[from] UnknownFunction),
    /// The function's `startup` or `init` hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// `COMPONENT_KEYS_DESTINATION` asks for the platform API, which the step cannot use.
    #[error("{0}")]
    KeysDestination(String),
    /// The broker could not be reached `ELASTICIO_AMQP_RECONNECT_ATTEMPTS` times in a row.
    #[error(
        "RabbitMQ at {host} could not be reached after {attempts} reconnection attempt(s): {last}"
    )]
    BrokerUnreachable {
        /// `host:port`.
        host: String,
        /// Failed attempts in a row.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// How a delivery is settled, from the least to the most cautious.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    #[default]
    /// Processed; everything it caused is confirmed.
    Ack,
    /// It failed and its error event is confirmed: drop it (the error carries it).
    Reject,
    /// Not even its error could be published: give it back to the queue.
    Requeue,
}

impl Decision {
    /// Its name in log lines: `Ack`, `Reject` or `Requeue`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "Ack",
            Self::Reject => "Reject",
            Self::Requeue => "Requeue",
        }
    }
}

struct Worker {
    step: Step,
    wire: Arc<StepWire>,
    /// Where the step's `updateKeys` go: the broker, the platform API, or both.
    keys: Arc<KeysDelivery>,
    /// Message ids being processed. Hashed with foldhash: the map holds at most a prefetch
    /// of ids, and std's SipHash cost more than the rest of the bookkeeping.
    in_flight: Mutex<HashMap<String, InFlight, foldhash::fast::RandomState>>,
    permits: Semaphore,
    /// What `/healthz` and `/readyz` answer.
    health: Arc<Health>,
    /// The step's delivery series in the metrics.
    metrics: DeliveryMetrics,
}

/// The deliveries of one `messageId` in the worker.
#[derive(Default)]
struct InFlight {
    /// Deliveries being processed: more than one when an upstream step reuses ids.
    running: usize,
    /// Redeliveries of it that arrived meanwhile (after a reconnect), settled after them.
    parked: Vec<ChannelAcker>,
    /// The most cautious decision of those processed so far.
    decision: Decision,
}

/// Runs the worker until `shutdown` completes, then drains and closes.
pub async fn run(
    settings: Settings,
    registry: &Registry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    for problem in &settings.warnings {
        tracing::warn!(message = "Incomplete environment.", problem = %problem);
    }
    let loaded = async {
        let loaded = platform::load(&settings.step_source, &settings.identity)
            .await?
            .into_step(registry, &settings.function)?;
        let step = &loaded.step;
        let account = step.config().account.clone();
        let route =
            keys_route(&settings, account.as_deref()).map_err(WorkerError::KeysDestination)?;
        // The hooks run outside any delivery: their keys go out as standalone messages.
        let publisher = Arc::new(
            KeysPublisher::new(settings.keys_settings(), account.clone()).for_function(step.name()),
        );
        let keys =
            keys_delivery(&settings, account.as_deref(), route).router(Some(publisher.clone()));
        let hooked = hooks::before_consuming(&settings, step, keys).await;
        publisher.close().await;
        hooked?;
        Ok::<_, WorkerError>(loaded)
    }
    .await;
    let LoadedStep {
        step,
        snapshot,
        is_passthrough,
    } = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            report_start_error(&settings, &error).await;
            return Err(error);
        }
    };
    let account_keys = share_account_keys(&settings, &step);
    let served = serve(settings, step, snapshot, is_passthrough, shutdown).await;
    if let Some(joining) = account_keys {
        if joining.is_finished() {
            if let Ok(Some(keys)) = joining.await {
                keys.close().await;
            }
        } else {
            joining.abort();
        }
    }
    served
}

/// Where the step's rotated keys go: `COMPONENT_KEYS_DESTINATION` against what the
/// environment and the step's `_account` allow.
fn keys_route(settings: &Settings, account: Option<&str>) -> Result<KeysRoute, String> {
    settings
        .keys_destination
        .resolve(settings.platform_api.is_some(), true, account)
}

/// The worker's keys route, logged once: the broker alone when the environment allows no
/// other (with why).
fn announced_keys_route(settings: &Settings, account: Option<&str>) -> KeysRoute {
    let route = keys_route(settings, account).unwrap_or_else(|problem| {
        tracing::error!(message = "Rotated keys go to the broker only.", %problem);
        KeysRoute {
            amqp: true,
            api: false,
        }
    });
    tracing::info!(
        message = "Rotated keys destinations.",
        amqp = route.amqp,
        api = route.api
    );
    route
}

/// The process's keys delivery on `route`, with the platform API client when it is on it.
fn keys_delivery(
    settings: &Settings,
    account: Option<&str>,
    route: KeysRoute,
) -> Arc<KeysDelivery> {
    let api = settings
        .platform_api
        .clone()
        .zip(account)
        .map(|(api, account)| AccountsApi::new(api, account));
    KeysDelivery::new(route, api)
}

/// When the step has a token set and an `_account`, joins the account's keys on the broker
/// in the background (retrying until the broker answers), holding the step's calls until the
/// newest published keys are adopted; then newer ones are adopted as they come, and
/// refreshes take the account's lease. The worker's start-up (its health endpoint, its
/// consumer) is not held up meanwhile.
fn share_account_keys(
    settings: &Settings,
    step: &Step,
) -> Option<tokio::task::JoinHandle<Option<AccountKeys>>> {
    let (Some(cache), Some(account)) = (step.tokens().cloned(), step.config().account.clone())
    else {
        return None;
    };
    let config = AccountKeysConfig {
        amqp_uri: settings.amqp_uri.clone(),
        exchange: settings.keys_exchange.clone(),
        account,
        cipher: settings.cipher.clone(),
        protocol: settings.protocol,
        lease_wait: DEFAULT_LEASE_WAIT,
    };
    cache.hold_calls();
    Some(tokio::spawn(async move {
        let mut delay = INITIAL_RECONNECT_DELAY;
        loop {
            match AccountKeys::start(config.clone(), cache.clone()).await {
                Ok(keys) => {
                    cache.release_calls();
                    return Some(keys);
                }
                Err(error) if error.is_permanent() => {
                    tracing::error!(message = "The broker refuses the account's keys; this process refreshes on its own, and may rotate the other processes' refresh token away.", %error);
                    cache.release_calls();
                    return None;
                }
                Err(error) => {
                    tracing::warn!(message = "Joining the account's keys failed; retrying.", %error, retry_in_ms = delay.as_millis() as u64);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        }
    }))
}

/// Publishes why the worker could not start on the error routing key, as the sailors do, so
/// that the failure shows in the platform's error store and not only in the container's log.
/// There is no input, so the error has no `errorInput`.
async fn report_start_error(settings: &Settings, error: &WorkerError) {
    let report = ErrorReport::from_error("StartupError", error);
    let outgoing = sink::error_message(
        &report,
        None,
        &settings.cipher,
        &settings.error_routing_key,
        headers::standalone_headers(&settings.identity, &settings.function),
    );
    let retry = PublishRetry {
        attempts: Some(START_ERROR_PUBLISH_RETRIES),
        ..settings.publish_retry
    };
    let publisher = Publisher::new(
        settings.amqp_uri.clone(),
        settings.publish_messages_to.clone(),
        retry,
        settings.persistent_messages,
    );
    match publisher.publish(&outgoing).await {
        Ok(()) => tracing::info!(message = "Start-up error published."),
        Err(publish_error) => {
            tracing::error!(message = "Start-up error could not be published.", error = %publish_error);
        }
    }
    publisher.close().await;
}

/// Runs `step` as the worker until `shutdown` completes, then drains and closes; or until the
/// broker could not be reached `ELASTICIO_AMQP_RECONNECT_ATTEMPTS` times in a row, when that
/// is set: then it drains and closes the same way and returns the error.
///
/// [`run`] builds the step from the environment; this entry point exists for hosts that
/// build it themselves, such as `component demo --amqp`, whose two steps share one account's
/// token cache and a held clock. `settings.function` and `settings.step_source` are not read.
pub async fn serve(
    settings: Settings,
    step: Step,
    snapshot: Value,
    is_passthrough: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let account = step.config().account.clone();
    let route = announced_keys_route(&settings, account.as_deref());
    let keys = keys_delivery(&settings, account.as_deref(), route);
    let settings = Arc::new(settings);
    let publisher = Arc::new(Publisher::new(
        settings.amqp_uri.clone(),
        settings.publish_messages_to.clone(),
        settings.publish_retry,
        settings.persistent_messages,
    ));
    let step_headers = Arc::new(headers::step_headers(&settings.identity, step.name()));
    let worker = Arc::new(Worker {
        metrics: metrics::get().deliveries(step.name()),
        step,
        wire: Arc::new(StepWire {
            settings: settings.clone(),
            publisher: publisher.clone(),
            snapshot: Mutex::new(snapshot),
            is_passthrough,
            account,
            object_storage: ObjectStorage::new(
                &settings.object_storage,
                settings.cipher.clone(),
                &settings.identity,
            ),
            throttles: crate::throttle::Throttles::new(settings.rate_limits),
            step_headers,
        }),
        keys,
        in_flight: Mutex::new(HashMap::default()),
        permits: Semaphore::new(usize::from(settings.prefetch)),
        health: Arc::new(Health::new(
            settings.stuck_delivery_timeout,
            clock::system(),
        )),
    });
    let ops = match settings.metrics_addr {
        Some(address) => match OpsServer::start(address, worker.health.clone()).await {
            Ok(server) => Some(server),
            Err(error) => {
                tracing::error!(message = "The metrics and health endpoint cannot listen; running without it.", %address, %error);
                None
            }
        },
        None => None,
    };
    tracing::info!(
        message = "Worker starting.",
        function = %worker.step.name(),
        queue = %settings.listen_messages_on,
        host = %settings.amqp_uri.host(),
        vhost = settings.amqp_uri.vhost(),
        prefetch = settings.prefetch
    );

    // The publishing connection opens now, beside the consuming one, as sailor-nodejs opens
    // both at start-up: the first output does not wait for a second handshake.
    let opening = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.open().await }
    });
    let mut tasks = JoinSet::new();
    // The loop below runs once or twice for every message, and polling the signal handlers
    // behind `shutdown` cost more than the rest of it: polled only once they woke.
    let mut shutdown = std::pin::pin!(WakeGated::new(shutdown));
    let mut delay = settings.reconnect.delay.unwrap_or(INITIAL_RECONNECT_DELAY);
    let mut consumed_before = false;
    let mut failures = 0u32;
    let mut gave_up = None;
    let last = 'consume: loop {
        let opened = tokio::select! {
            () = &mut shutdown => break 'consume None,
            opened = async {
                let (uri, queue) = (&settings.amqp_uri, &settings.listen_messages_on);
                if settings.reconnect == Reconnect::default() {
                    Subscription::open(uri, queue, settings.prefetch).await
                } else {
                    Subscription::open_once(uri, queue, settings.prefetch).await
                }
            } => opened,
        };
        let mut subscription = match opened {
            Ok(subscription) => subscription,
            Err(error) => {
                failures += 1;
                if let Some(attempts) = settings.reconnect.attempts
                    && failures > attempts
                {
                    tracing::error!(message = "RabbitMQ cannot be reached; giving up, as ELASTICIO_AMQP_RECONNECT_ATTEMPTS says.", %error, attempts);
                    gave_up = Some(WorkerError::BrokerUnreachable {
                        host: settings.amqp_uri.host(),
                        attempts: failures,
                        last: error.to_string(),
                    });
                    break 'consume None;
                }
                tracing::warn!(message = "Consuming failed; retrying.", %error, retry_in_ms = delay.as_millis() as u64);
                tokio::select! {
                    () = &mut shutdown => break 'consume None,
                    () = tokio::time::sleep(delay) => {}
                }
                if settings.reconnect.delay.is_none() {
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
                continue;
            }
        };
        failures = 0;
        delay = settings.reconnect.delay.unwrap_or(INITIAL_RECONNECT_DELAY);
        if consumed_before {
            metrics::get().reconnected(worker.step.name());
        }
        consumed_before = true;
        worker.health.set_consuming(true);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    worker.health.set_consuming(false);
                    tracing::info!(message = "Shutdown requested; no new messages are taken.");
                    subscription.cancel().await;
                    break 'consume Some(subscription);
                }
                next = subscription.consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let acker = subscription.acker(delivery.delivery_tag);
                        worker.clone().accept(delivery, acker, &mut tasks);
                    }
                    Some(Err(error)) => {
                        tracing::warn!(message = "The consumer failed; reconnecting.", %error);
                        break;
                    }
                    None => {
                        tracing::warn!(message = "The consumer was cancelled; reconnecting.");
                        break;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        worker.health.set_consuming(false);
        subscription.close().await;
    };

    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    drain(tasks, deadline - settings.shutdown_timeout / 4).await;
    // A refresh outlives the delivery that started it (a call that timed out, a task cut off
    // above) and publishes its updateKeys through this publisher, and keys whose publish
    // failed wait for a next call that will not come: until they are confirmed the rotated
    // refresh token exists nowhere else, so the publisher stays open for them.
    if let Some(tokens) = worker.step.tokens() {
        let flushed = tokio::time::timeout_at(
            deadline - settings.shutdown_timeout / 8,
            tokens.flush_unpublished(),
        )
        .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(
                message = "Rotated keys could not be published before exit; they are lost.",
                %error
            ),
            Err(_) => tracing::error!(
                message = "Rotated keys were not published in time; they may be lost."
            ),
        }
    }
    opening.abort();
    let closed = tokio::time::timeout_at(deadline, async {
        if let Some(subscription) = last {
            subscription.close().await;
        }
        publisher.close().await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!(message = "Closing the connections timed out.");
    }
    if let Some(ops) = ops {
        ops.stop();
    }
    tracing::info!(message = "Worker stopped.");
    match gave_up {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Lets in-flight deliveries finish until `until`; those still running then are cut off
/// unsettled, and the broker redelivers them.
async fn drain(mut tasks: JoinSet<()>, until: tokio::time::Instant) {
    tracing::info!(
        message = "Draining in-flight messages.",
        in_flight = tasks.len()
    );
    let drained =
        tokio::time::timeout_at(until, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            message = "In-flight messages did not finish in time; the broker will redeliver them.",
            left = tasks.len()
        );
        tasks.shutdown().await;
    }
}

impl Worker {
    /// Takes a delivery: a redelivery of a message still in flight is parked, to be settled
    /// with it; anything else gets a task, even when its `messageId` is one already in
    /// flight (an upstream component may reuse ids: distinct messages are never merged).
    fn accept(self: Arc<Self>, delivery: Delivery, acker: ChannelAcker, tasks: &mut JoinSet<()>) {
        let mut headers = IncomingHeaders::read(delivery.properties.headers().as_ref());
        self.metrics.received();
        let tracked_id = headers.message_id.clone();
        if let Some(id) = &tracked_id {
            let mut in_flight = self.lock_in_flight();
            let entry = in_flight.entry(id.clone()).or_default();
            if delivery.redelivered && entry.running > 0 {
                tracing::info!(
                    message = "Redelivery of a message still in flight; it will be settled with it.",
                    message_id = %id,
                    delivery_tag = delivery.delivery_tag
                );
                entry.parked.push(acker);
                return;
            }
            entry.running += 1;
        }
        let untracked_id;
        let message_id = match &tracked_id {
            Some(id) => id.as_str(),
            None => {
                untracked_id = uuid::Uuid::new_v4().to_string();
                untracked_id.as_str()
            }
        };
        // Every line logged for this delivery carries these fields (sailor-nodejs' names).
        // The thread id is settled here, so that the span is formatted once, not again when
        // it is recorded later. The span is at `error`, the level any filter that logs at all
        // lets through: at `LOG_LEVEL=warn` a warning still names its message.
        let span = tracing::error_span!(
            "delivery",
            messageId = message_id,
            parentMessageId = headers.parent_message_id.as_deref(),
            threadId = headers
                .thread_id
                .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
                .as_str(),
            function = self.step.name(),
            stepId = self.wire.settings.identity.step_id.as_str(),
            delivery_tag = delivery.delivery_tag,
            redelivered = delivery.redelivered
        );
        // Boxed as well: on its way into the runtime (`instrument`, `spawn` and the task's
        // cell) the task is moved several times, and a box moves as a pointer.
        tasks.spawn(
            Box::pin(async move {
                let Delivery {
                    data, properties, ..
                } = delivery;
                let decision = match self.permits.acquire().await {
                    // Boxed apart: the processing future is several KiB, which the box of
                    // this task would otherwise allocate and copy whole.
                    Ok(_permit) => Box::pin(self.process_observed(data, properties, headers)).await,
                    Err(_) => Decision::Requeue,
                };
                self.settle(acker, tracked_id, decision).await;
            })
            .instrument(span),
        );
    }

    fn lock_in_flight(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, InFlight, foldhash::fast::RandomState>> {
        self.in_flight
            .lock()
            .expect("no code panics while holding this lock")
    }

    /// [`Self::process`], watched by the liveness check and counted in the metrics.
    async fn process_observed(
        &self,
        data: Vec<u8>,
        properties: BasicProperties,
        headers: IncomingHeaders,
    ) -> Decision {
        let _running = self.health.delivery_started();
        let _in_flight = self.metrics.in_flight();
        let started = std::time::Instant::now();
        let (decision, processed) = self.process(data, properties, headers).await;
        self.metrics.processed(processed, started.elapsed());
        decision
    }

    /// Runs the step on one delivery (its body and properties) and decides how to settle it,
    /// and what the metrics call that.
    async fn process(
        &self,
        data: Vec<u8>,
        properties: BasicProperties,
        mut headers: IncomingHeaders,
    ) -> (Decision, Processed) {
        let settings = &self.wire.settings;
        let start_ms = headers::now_ms();
        let encoding = Encoding::from_protocol_version(headers.protocol_version);
        let decoded = match settings.input_format {
            InputFormat::Error => {
                error_input::decode(&settings.cipher, &data, properties.headers().as_ref())
            }
            InputFormat::Default => decode_message(&settings.cipher, &data, encoding),
        };
        // `accept` gave every delivery a thread; `Delivered` keeps it on its own.
        let thread_id = headers
            .thread_id
            .take()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let reply_to = headers.reply_to.clone();
        let invocation =
            Invocation::of_step(&settings.identity.flow_id, &settings.identity.step_id)
                .for_message(
                    headers.message_id.clone(),
                    headers.parent_message_id.clone(),
                    Some(thread_id.clone()),
                );
        // A body in object storage is read back before anything else sees the message.
        let (decoded, unresolved) = match decoded {
            Ok(mut message) => {
                let resolved =
                    lightweight::resolve(&mut message, self.wire.object_storage.as_ref()).await;
                (Ok(message), resolved.err())
            }
            Err(problem) => (Err(problem), None),
        };
        let delivered = Delivered {
            encoding,
            headers,
            body: data,
            properties,
            // Only a passthrough step reads the incoming message again: no copy otherwise.
            message: if self.wire.is_passthrough {
                decoded.as_ref().ok().cloned()
            } else {
                None
            },
            thread_id,
            start_ms,
        };
        let sink = Arc::new(DeliverySink::new(self.wire.clone(), Arc::new(delivered)));
        let mut message = match decoded {
            Ok(message) => message,
            Err(problem) => {
                let decision = poison(&sink, problem).await;
                return (decision, outcome_of(decision, Processed::Rejected, false));
            }
        };
        if let Some(error) = unresolved {
            let decision = unreadable_body(&sink, &error).await;
            return (decision, outcome_of(decision, Processed::Error, false));
        }
        if let Some(reply_to) = reply_to {
            message
                .headers
                .insert("reply_to".into(), Value::String(reply_to));
        }
        let snapshot = self.wire.snapshot();
        let emitter = Emitter::new(self.keys.router(Some(sink.clone())));
        let processed = AssertUnwindSafe(
            self.step
                .process_as(&message, &snapshot, &emitter, invocation),
        )
        .catch_unwind()
        .await;
        let Ok(outcome) = processed else {
            // A panicking function must not wedge its prefetch slot: report it like an error.
            let report = ErrorReport {
                name: "Panic".to_owned(),
                message: format!("the function `{}` panicked", self.step.name()),
                stack: String::new(),
            };
            let decision = report_and_reject(&sink, report).await;
            return (decision, outcome_of(decision, Processed::Error, false));
        };
        let decision = match outcome {
            Outcome::Completed if sink.errors_published() == 0 => Decision::Ack,
            Outcome::Completed
            | Outcome::Failed {
                error_published: true,
                ..
            } => Decision::Reject,
            Outcome::Failed {
                error_published: false,
                ..
            } => Decision::Requeue,
        };
        let rebounded = sink.rebounds_published() > 0;
        (decision, outcome_of(decision, Processed::Error, rebounded))
    }

    /// The one place deliveries are acked, rejected or requeued: the delivery itself, and,
    /// once no delivery of its `messageId` runs any more, the redeliveries parked meanwhile,
    /// with the most cautious decision among those that ran.
    async fn settle(&self, acker: ChannelAcker, message_id: Option<String>, decision: Decision) {
        let parked = message_id
            .and_then(|id| {
                let mut in_flight = self.lock_in_flight();
                let entry = in_flight.get_mut(&id)?;
                entry.running -= 1;
                entry.decision = entry.decision.max(decision);
                if entry.running > 0 {
                    return None;
                }
                in_flight.remove(&id)
            })
            .map(|entry| (entry.parked, entry.decision));
        settle_one(&acker, decision).await;
        if let Some((parked, decision)) = parked {
            for acker in parked {
                settle_one(&acker, decision).await;
            }
        }
    }
}

/// Acks, rejects or requeues one delivery, and says what really happened: an acker whose
/// channel is gone settles nothing, and the broker redelivers that message.
async fn settle_one(acker: &ChannelAcker, decision: Decision) {
    let settled = match decision {
        Decision::Ack => acker.ack(BasicAckOptions::default()).await,
        Decision::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
        Decision::Requeue => {
            tokio::time::sleep(REQUEUE_DELAY).await;
            acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
        }
    };
    match settled {
        // At `debug`: a line per message is most of what logging costs a busy worker, and the
        // metrics count every settlement (`component_messages_total`); what goes wrong with
        // one is a warning below.
        Ok(true) => tracing::debug!(message = "Message settled.", decision = decision.as_str()),
        Ok(false) => tracing::warn!(
            message = "Message not settled: its channel is closed; the broker will redeliver it.",
            decision = decision.as_str()
        ),
        Err(error) => tracing::warn!(
            message = "Message could not be settled on its channel; the broker will redeliver it.",
            decision = decision.as_str(),
            %error
        ),
    }
}

/// What the metrics call a delivery settled by `decision`: a rejection is `rejected` (an
/// error for a failed function, a rejection for an undecodable message).
fn outcome_of(decision: Decision, rejected: Processed, rebounded: bool) -> Processed {
    match decision {
        Decision::Ack if rebounded => Processed::Rebound,
        Decision::Ack => Processed::Data,
        Decision::Reject => rejected,
        Decision::Requeue => Processed::Requeued,
    }
}

/// A delivery of the default input format: the message, encrypted per its protocol version.
fn decode_message(
    cipher: &crate::crypto::MessageCipher,
    data: &[u8],
    encoding: Encoding,
) -> Result<Message, String> {
    let plain = cipher
        .decode(data, encoding)
        .map_err(|error| error.to_string())?;
    // The position only: serde's message may quote the payload, which is never logged.
    serde_json::from_slice::<Message>(&plain).map_err(|error| {
        format!(
            "the decrypted body is not a message object ({:?} error at line {}, column {})",
            error.classify(),
            error.line(),
            error.column()
        )
    })
}

/// An undecryptable or unparsable delivery: reported on the error routing key, then dropped.
async fn poison(sink: &DeliverySink, problem: String) -> Decision {
    tracing::warn!(message = "Message cannot be decoded; reporting and rejecting it.", problem = %problem);
    let report = ErrorReport {
        name: "InvalidMessage".to_owned(),
        message: format!("the incoming message cannot be decoded: {problem}"),
        stack: problem,
    };
    report_and_reject(sink, report).await
}

/// A lightweight input whose stored body cannot be read: reported, then dropped, as
/// sailor-nodejs does (the error carries the input).
async fn unreadable_body(sink: &DeliverySink, error: &ResolveError) -> Decision {
    tracing::warn!(message = "The message body in object storage cannot be read; reporting and rejecting the message.", %error);
    report_and_reject(sink, ErrorReport::from_error("ObjectStorageError", error)).await
}

/// Publishes `report` as the delivery's error event: reject once it is confirmed, requeue
/// when it cannot be published.
async fn report_and_reject(sink: &DeliverySink, report: ErrorReport) -> Decision {
    match sink.publish(Event::Error(report)).await {
        Ok(()) => Decision::Reject,
        Err(error) => {
            tracing::error!(message = "The error event could not be published; requeueing.", %error);
            Decision::Requeue
        }
    }
}

#[cfg(test)]
mod tests {
    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use tracing_test::traced_test;

    use crate::amqp::consumer;

    use super::*;

    #[test]
    fn the_most_cautious_decision_wins() {
        assert!(Decision::Ack < Decision::Reject && Decision::Reject < Decision::Requeue);
        assert_eq!(Decision::default(), Decision::Ack);
        for decision in [Decision::Ack, Decision::Reject, Decision::Requeue] {
            assert_eq!(decision.as_str(), format!("{decision:?}"));
        }
    }

    #[tokio::test]
    #[traced_test]
    async fn a_delivery_whose_channel_is_gone_is_logged_as_not_settled() {
        let connection = Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            ConnectionProperties::default(),
        )
        .await
        .expect("RabbitMQ runs on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        let queue = consumer::tests::exclusive_queue(&channel).await;
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        let delivery = consumer::tests::next_delivery(&channel, &queue, false).await;
        let acker = ChannelAcker::new(Arc::new(channel.clone()), delivery.delivery_tag);
        channel.close(200, "gone".into()).await.unwrap();
        settle_one(&acker, Decision::Ack).await;
        assert!(logs_contain("Message not settled: its channel is closed"));
        assert!(!logs_contain("Message settled."));
        connection.close(200, "done".into()).await.unwrap();
    }
}
