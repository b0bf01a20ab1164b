//! The worker's Prometheus metrics, kept in one process-wide registry (`prometheus-client`)
//! so that the transport and the token cache count with one call, without a handle threaded
//! through them.
//!
//! Labels are the step's function name and a fixed outcome vocabulary, never anything taken
//! from a message, a token or an account, so the series stay few and carry no content. The
//! platform runs one worker process per step; Prometheus' own target labels (pod, instance)
//! tell replicas apart. Token metrics carry no function label: one account's token cache
//! serves every step of the process that shares it.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `component_messages_received_total` | counter | function |
//! | `component_messages_processed_total` | counter | function, outcome: `data` (acked), `rebound` (acked after a rebound), `error` (rejected after its error event), `rejected` (undecodable, rejected), `requeued` |
//! | `component_processing_seconds` | histogram | function |
//! | `component_messages_in_flight` | gauge | function |
//! | `component_publishes_total` | counter | function, outcome: `confirmed`, `nacked`, `returned`, `refused`, `unreachable` |
//! | `component_publish_retries_total` | counter | function |
//! | `component_reconnects_total` | counter | function (the consuming connection) |
//! | `component_update_keys_published_total` | counter | function |
//! | `component_token_refreshes_total` | counter | outcome: `refreshed`, `reauthorization_required`, `refused`, `unavailable`, `invalid_response`, `failed` |
//! | `component_token_endpoint_seconds` | histogram | (one observation per request) |
//! | `process_start_time_seconds` | gauge | |

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::types::AMQPValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::amqp::publisher::{Outgoing, PublishError};
use crate::auth::{RefreshError, TokenSet};

/// Every metric name this module serves, as Prometheus sees it (histograms as their base
/// name): the dashboard's test checks its queries against this list.
pub const METRIC_NAMES: [&str; 11] = [
    "component_messages_received_total",
    "component_messages_processed_total",
    "component_processing_seconds",
    "component_messages_in_flight",
    "component_publishes_total",
    "component_publish_retries_total",
    "component_reconnects_total",
    "component_update_keys_published_total",
    "component_token_refreshes_total",
    "component_token_endpoint_seconds",
    "process_start_time_seconds",
];

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a delivery ended, as `component_messages_processed_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processed {
    /// Completed without an error event, and acked.
    Data,
    /// Completed by a rebound, and acked.
    Rebound,
    /// The function failed; its error event is confirmed and the delivery rejected.
    Error,
    /// Undecodable: reported and rejected.
    Rejected,
    /// Not even its error could be published: back to the queue.
    Requeued,
}

impl Processed {
    /// Every outcome, in declaration order.
    const ALL: [Self; 5] = [
        Self::Data,
        Self::Rebound,
        Self::Error,
        Self::Rejected,
        Self::Requeued,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Rebound => "rebound",
            Self::Error => "error",
            Self::Rejected => "rejected",
            Self::Requeued => "requeued",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    function: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The outcomes of a publish, as `component_publishes_total` labels them.
const PUBLISH_OUTCOMES: [&str; 5] = ["confirmed", "nacked", "returned", "refused", "unreachable"];

/// `component_publishes_total`'s counters of one function, one per outcome. A worker publishes
/// for one function, so its counters are looked up once and kept, instead of their labels
/// being built and hashed on every publish.
struct PublishCounters {
    function: String,
    by_outcome: [Counter; PUBLISH_OUTCOMES.len()],
}

/// The process' metrics and the registry that serves them.
pub struct Metrics {
    registry: Registry,
    received: Family<FunctionLabels, Counter>,
    processed: Family<OutcomeLabels, Counter>,
    processing: HistogramFamily<FunctionLabels>,
    in_flight: Family<FunctionLabels, Gauge>,
    publishes: Family<OutcomeLabels, Counter>,
    last_publishes: std::sync::Mutex<Option<PublishCounters>>,
    publish_retries: Family<FunctionLabels, Counter>,
    reconnects: Family<FunctionLabels, Counter>,
    update_keys: Family<FunctionLabels, Counter>,
    refreshes: Family<RefreshLabels, Counter>,
    token_endpoint: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Processing times from 5 ms to about 80 s.
fn processing_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let received = Family::default();
        registry.register(
            "component_messages_received",
            "Deliveries taken from the step's queue",
            received.clone(),
        );
        let processed = Family::default();
        registry.register(
            "component_messages_processed",
            "Deliveries settled, by outcome",
            processed.clone(),
        );
        let processing: HistogramFamily<FunctionLabels> =
            Family::new_with_constructor(processing_histogram);
        registry.register(
            "component_processing_seconds",
            "Time from taking a delivery to knowing how to settle it",
            processing.clone(),
        );
        let in_flight = Family::default();
        registry.register(
            "component_messages_in_flight",
            "Deliveries being processed now",
            in_flight.clone(),
        );
        let publishes = Family::default();
        registry.register(
            "component_publishes",
            "Publishes finished, by what the broker finally answered",
            publishes.clone(),
        );
        let publish_retries = Family::default();
        registry.register(
            "component_publish_retries",
            "Publish attempts repeated after a nack or a broken link",
            publish_retries.clone(),
        );
        let reconnects = Family::default();
        registry.register(
            "component_reconnects",
            "Times the consuming connection was opened again after it was lost",
            reconnects.clone(),
        );
        let update_keys = Family::default();
        registry.register(
            "component_update_keys_published",
            "updateKeys events confirmed by the broker",
            update_keys.clone(),
        );
        let refreshes = Family::default();
        registry.register(
            "component_token_refreshes",
            "Access token refreshes, by outcome",
            refreshes.clone(),
        );
        let token_endpoint = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "component_token_endpoint_seconds",
            "Latency of each request to the token endpoint",
            token_endpoint.clone(),
        );
        let start_time: Gauge = Gauge::default();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        start_time.set(i64::try_from(started.as_secs()).unwrap_or(i64::MAX));
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            start_time,
        );
        Self {
            registry,
            received,
            processed,
            processing,
            in_flight,
            publishes,
            last_publishes: std::sync::Mutex::new(None),
            publish_retries,
            reconnects,
            update_keys,
            refreshes,
            token_endpoint,
        }
    }

    /// The metrics in the OpenMetrics text format, which Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }

    /// The delivery metrics of `function`'s series, each created now (at zero).
    pub fn deliveries(&self, function: &str) -> DeliveryMetrics {
        let labels = by_function(function);
        DeliveryMetrics {
            received: self.received.get_or_create(&labels).clone(),
            processed: Processed::ALL.map(|outcome| {
                self.processed
                    .get_or_create(&OutcomeLabels {
                        function: function.to_owned(),
                        outcome: outcome.as_str(),
                    })
                    .clone()
            }),
            processing: self.processing.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
        }
    }

    /// A publish finished with `result`; its function is read from its `function` header.
    pub fn publish_finished(&self, message: &Outgoing, result: &Result<(), PublishError>) {
        let outcome = match result {
            Ok(()) => "confirmed",
            Err(PublishError::Nacked { .. }) => "nacked",
            Err(PublishError::Unroutable { .. }) => "returned",
            Err(PublishError::Refused { .. }) => "refused",
            Err(PublishError::Unreachable { .. }) => "unreachable",
        };
        let outcome = PUBLISH_OUTCOMES
            .iter()
            .position(|known| *known == outcome)
            .expect("every outcome is in PUBLISH_OUTCOMES");
        let function = function_bytes(message);
        let mut last = self
            .last_publishes
            .lock()
            .expect("no code panics while holding this lock");
        if last
            .as_ref()
            .is_none_or(|counters| counters.function.as_bytes() != function)
        {
            let function = String::from_utf8_lossy(function).into_owned();
            *last = Some(PublishCounters {
                by_outcome: PUBLISH_OUTCOMES.map(|outcome| {
                    self.publishes
                        .get_or_create(&OutcomeLabels {
                            function: function.clone(),
                            outcome,
                        })
                        .clone()
                }),
                function,
            });
        }
        last.as_ref().expect("set just above").by_outcome[outcome].inc();
    }

    /// A publish is tried again.
    pub fn publish_retried(&self, message: &Outgoing) {
        self.publish_retries
            .get_or_create(&FunctionLabels {
                function: function_of(message),
            })
            .inc();
    }

    /// The consuming connection was opened again after being lost.
    pub fn reconnected(&self, function: &str) {
        self.reconnects.get_or_create(&by_function(function)).inc();
    }

    /// The broker confirmed `message`, an `updateKeys` event.
    pub fn update_keys_published(&self, message: &Outgoing) {
        self.update_keys
            .get_or_create(&FunctionLabels {
                function: function_of(message),
            })
            .inc();
    }

    /// A token refresh ended with `outcome`.
    pub fn token_refreshed(&self, outcome: &Result<TokenSet, RefreshError>) {
        let outcome = match outcome {
            Ok(_) => "refreshed",
            Err(error) if error.is_reauthorization_required() => "reauthorization_required",
            Err(RefreshError::Refused { .. }) => "refused",
            Err(RefreshError::Unavailable { .. }) => "unavailable",
            Err(RefreshError::InvalidResponse(_)) => "invalid_response",
            Err(_) => "failed",
        };
        self.refreshes
            .get_or_create(&RefreshLabels { outcome })
            .inc();
    }

    /// Runs one request to the token endpoint, observing how long it took.
    pub async fn time_token_endpoint<T>(&self, request: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let answer = request.await;
        self.token_endpoint.observe(started.elapsed().as_secs_f64());
        answer
    }
}

/// The delivery metrics of one function, looked up once ([`Metrics::deliveries`]), so that
/// counting a delivery touches no label map and allocates nothing.
#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    received: Counter,
    /// Indexed like [`Processed::ALL`].
    processed: [Counter; 5],
    processing: Histogram,
    in_flight: Gauge,
}

impl DeliveryMetrics {
    /// A delivery was taken from the queue.
    pub fn received(&self) {
        self.received.inc();
    }

    /// A delivery's outcome is known, `took` after it was taken.
    pub fn processed(&self, outcome: Processed, took: Duration) {
        self.processed[outcome as usize].inc();
        self.processing.observe(took.as_secs_f64());
    }

    /// Counts a delivery in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard(self.in_flight.clone())
    }
}

/// Holds one delivery in `component_messages_in_flight`.
#[derive(Debug)]
pub struct InFlightGuard(Gauge);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn by_function(function: &str) -> FunctionLabels {
    FunctionLabels {
        function: function.to_owned(),
    }
}

/// The `function` header every publish of a worker carries (the step's identity).
fn function_of(message: &Outgoing) -> String {
    String::from_utf8_lossy(function_bytes(message)).into_owned()
}

/// The text of `message`'s `function` header, empty when it has none.
fn function_bytes(message: &Outgoing) -> &[u8] {
    match message.headers.get("function") {
        Some(AMQPValue::LongString(text)) => text.as_bytes(),
        Some(AMQPValue::ShortString(text)) => text.as_str().as_bytes(),
        _ => b"",
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;

    use super::*;
    use crate::amqp::headers::text_value;
    use crate::amqp::publisher::json_properties;

    /// The value of the sample `name{labels}` in `text`, labels as encoded.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.parse().unwrap())
    }

    #[test]
    fn every_metric_is_served_under_its_documented_name() {
        // A function no other test uses, so that the counts are this test's.
        let metrics = get();
        let function = "metricsUnitTest";
        for (index, outcome) in Processed::ALL.into_iter().enumerate() {
            assert_eq!(
                outcome as usize, index,
                "DeliveryMetrics indexes by declaration order"
            );
        }
        let deliveries = metrics.deliveries(function);
        deliveries.received();
        deliveries.processed(Processed::Rebound, Duration::from_millis(30));
        let guard = deliveries.in_flight();
        let mut headers = FieldTable::default();
        headers.insert("function".into(), text_value(function));
        let message = Outgoing {
            routing_key: "k".into(),
            body: Vec::new(),
            properties: json_properties(),
            headers: headers.into(),
        };
        metrics.publish_retried(&message);
        metrics.publish_finished(&message, &Ok(()));
        // A publish of another function in between: each is counted under its own.
        let mut other = message.clone();
        other
            .headers
            .insert("function", text_value("metricsUnitTestOther"));
        metrics.publish_finished(&other, &Ok(()));
        metrics.publish_finished(
            &message,
            &Err(PublishError::Unroutable {
                routing_key: "k".into(),
            }),
        );
        metrics.reconnected(function);
        metrics.update_keys_published(&message);
        metrics.token_refreshed(&Err(RefreshError::NoRefreshToken));
        let text = metrics.encode();
        let labels = format!("{{function=\"{function}\"}}");
        for (series, value) in [
            (format!("component_messages_received_total{labels}"), 1.0),
            (
                format!(
                    "component_messages_processed_total{{function=\"{function}\",outcome=\"rebound\"}}"
                ),
                1.0,
            ),
            (format!("component_processing_seconds_count{labels}"), 1.0),
            (format!("component_messages_in_flight{labels}"), 1.0),
            (
                format!(
                    "component_publishes_total{{function=\"{function}\",outcome=\"confirmed\"}}"
                ),
                1.0,
            ),
            (
                format!(
                    "component_publishes_total{{function=\"{function}\",outcome=\"returned\"}}"
                ),
                1.0,
            ),
            (
                "component_publishes_total{function=\"metricsUnitTestOther\",outcome=\"confirmed\"}"
                    .to_owned(),
                1.0,
            ),
            (format!("component_publish_retries_total{labels}"), 1.0),
            (format!("component_reconnects_total{labels}"), 1.0),
            (
                format!("component_update_keys_published_total{labels}"),
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, &series), Some(value), "{series} in {text}");
        }
        drop(guard);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, &format!("component_messages_in_flight{labels}")),
            Some(0.0)
        );
        for name in METRIC_NAMES {
            assert!(
                text.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
                "{name} not in {text}"
            );
        }
        let started = sample(&text, "process_start_time_seconds").unwrap();
        assert!(started > 1.7e9, "{started}");
    }
}
