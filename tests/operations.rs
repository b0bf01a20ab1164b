//! What an operator sees of a running `component worker`: `/metrics` scraped while it works
//! on the real RabbitMQ, the probes an orchestrator polls, and the log lines its pipeline
//! parses. Each test runs the binary, so each has a metrics registry of its own.

mod bed;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bed::{Bed, Provider, cipher, request_config, routing_keys, text};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use sailor::crypto::Encoding;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// A loopback port free a moment ago, for `COMPONENT_METRICS_ADDR`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `component worker` whose logs are read as they come: at TRACE they would fill
/// the pipe and block the worker if they were read only at exit.
struct Worker {
    child: Child,
    logs: JoinHandle<String>,
}

/// Runs `component worker` with exactly `vars`, its logs captured.
fn spawn_worker(vars: &[(String, String)]) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("worker")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the component binary starts");
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        stderr.read_to_string(&mut logs).await.unwrap();
        logs
    });
    Worker { child, logs }
}

/// Stops the worker with SIGTERM and returns its logs once it has exited with 0.
async fn stop(worker: Worker) -> String {
    let Worker { mut child, logs } = worker;
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(35), child.wait())
        .await
        .expect("the worker exits within the grace period")
        .unwrap();
    let logs = logs.await.unwrap();
    assert_eq!(status.code(), Some(0), "{logs}");
    logs
}

/// The worker's operator endpoint.
struct Ops {
    base: String,
    client: reqwest::Client,
}

impl Ops {
    fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// The status of `GET path`, or `None` while nothing listens.
    async fn status(&self, path: &str) -> Option<u16> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Polls `path` every 20 ms until it answers `status`, failing the test after 20 s.
    async fn wait_for(&self, path: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.status(path).await != Some(status) {
            assert!(
                Instant::now() < deadline,
                "{path} did not answer {status} in time (last: {:?})",
                self.status(path).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn scrape(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

/// The value of the series `name{labels}` (exactly as encoded) in a scrape; 0 when absent,
/// as Prometheus reads a series not yet created.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

fn vars_with(mut vars: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_exactly_what_the_worker_received_processed_and_published() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    // With an expired token: one message that does not decrypt, one the API answers 400,
    // five good ones. One refresh and its updateKeys, five data, two errors (and both inputs
    // dead-lettered).
    bed.send_raw(b"not a ciphertext", FieldTable::default())
        .await;
    bed.send(&json!({ "body": { "n": "x" } }), Encoding::Base64, "m-x")
        .await;
    bed.send_numbered(0..5, |n| json!({ "n": n })).await;
    let port = free_port();
    let vars = vars_with(
        bed.vars("request", &request_config(&base, true)),
        &[("COMPONENT_METRICS_ADDR", &format!("127.0.0.1:{port}"))],
    );
    let child = spawn_worker(&vars);
    let ops = Ops::new(port);

    let events = bed.collect(10, Duration::from_secs(30)).await;
    let mut kinds = routing_keys(&events);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "data", "data", "data", "data", "data", "dead", "dead", "error", "error", "keys"
        ]
    );
    // The last settle follows the last publish's confirm: wait until it is counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let scrape = ops.scrape().await;
        if sample(
            &scrape,
            "component_processing_seconds_count{function=\"request\"}",
        ) >= 7.0
        {
            break scrape;
        }
        assert!(Instant::now() < deadline, "not all settled: {scrape}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ops.status("/readyz").await, Some(200));
    assert_eq!(ops.status("/healthz").await, Some(200));

    let request = "{function=\"request\"}";
    let outcome = |name: &str, outcome: &str| {
        sample(
            &scrape,
            &format!("{name}{{function=\"request\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(
        sample(
            &scrape,
            &format!("component_messages_received_total{request}")
        ),
        7.0
    );
    assert_eq!(outcome("component_messages_processed_total", "data"), 5.0);
    assert_eq!(
        outcome("component_messages_processed_total", "rejected"),
        1.0
    );
    assert_eq!(outcome("component_messages_processed_total", "error"), 1.0);
    for other in ["rebound", "requeued"] {
        assert_eq!(outcome("component_messages_processed_total", other), 0.0);
    }
    assert_eq!(
        sample(
            &scrape,
            &format!("component_processing_seconds_count{request}")
        ),
        7.0
    );
    assert_eq!(
        sample(&scrape, &format!("component_messages_in_flight{request}")),
        0.0
    );
    // Five data, two errors, one updateKeys: every publish confirmed at the first attempt.
    assert_eq!(outcome("component_publishes_total", "confirmed"), 8.0);
    for other in ["nacked", "returned", "refused", "unreachable"] {
        assert_eq!(outcome("component_publishes_total", other), 0.0);
    }
    assert_eq!(
        sample(
            &scrape,
            &format!("component_publish_retries_total{request}")
        ),
        0.0
    );
    assert_eq!(
        sample(
            &scrape,
            &format!("component_update_keys_published_total{request}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &scrape,
            "component_token_refreshes_total{outcome=\"refreshed\"}"
        ),
        1.0
    );
    assert_eq!(provider.state().refreshes, 1);
    assert_eq!(
        sample(&scrape, "component_token_endpoint_seconds_count"),
        1.0
    );
    assert_eq!(
        sample(&scrape, &format!("component_reconnects_total{request}")),
        0.0
    );
    let started = sample(&scrape, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - started < 120.0, "started {started}, now {now}");
    for content in [
        "at-0",
        "rt-0",
        "at-1",
        "rt-1",
        "client-s3cr3t",
        "account-1",
        "m-0",
        "m-x",
    ] {
        assert!(!scrape.contains(content), "{content} in the metrics");
    }

    stop(child).await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_hanging_past_the_bound_fails_liveness_until_it_ends() {
    let provider = Provider::default();
    provider.state().delay_ms = 5_000;
    let base = provider.serve().await;
    let bed = Bed::new().await;
    let port = free_port();
    let vars = vars_with(
        bed.vars("request", &request_config(&base, false)),
        &[
            ("COMPONENT_METRICS_ADDR", &format!("127.0.0.1:{port}")),
            ("COMPONENT_STUCK_DELIVERY_TIMEOUT", "1"),
        ],
    );
    let child = spawn_worker(&vars);
    let ops = Ops::new(port);
    ops.wait_for("/readyz", 200).await;
    assert_eq!(ops.status("/healthz").await, Some(200), "idle is alive");

    let sent = Instant::now();
    bed.send_numbered(0..1, |n| json!({ "n": n })).await;
    ops.wait_for("/healthz", 503).await;
    let wedged_after = sent.elapsed();
    assert!(
        wedged_after >= Duration::from_secs(1) && wedged_after < Duration::from_secs(5),
        "liveness failed {wedged_after:?} after the message was sent"
    );
    let body = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("past the 1 s bound"), "{body}");
    assert_eq!(ops.status("/readyz").await, Some(200), "it still consumes");

    // The call ends after 5 s: the worker is alive again.
    ops.wait_for("/healthz", 200).await;
    assert_eq!(
        routing_keys(&bed.collect(1, Duration::from_secs(10)).await),
        ["data"]
    );
    stop(child).await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_until_consuming_200_while_consuming_and_503_once_the_queue_is_gone() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;

    // A broker that cannot be reached: alive, never ready.
    let unreachable = free_port();
    let port = free_port();
    let vars = vars_with(
        bed.vars("request", &request_config(&base, false)),
        &[
            (
                "ELASTICIO_AMQP_URI",
                &format!("amqp://guest:guest@127.0.0.1:{unreachable}/%2f"),
            ),
            ("COMPONENT_METRICS_ADDR", &format!("127.0.0.1:{port}")),
        ],
    );
    let child = spawn_worker(&vars);
    let ops = Ops::new(port);
    ops.wait_for("/healthz", 200).await;
    for _ in 0..5 {
        assert_eq!(ops.status("/readyz").await, Some(503));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(child).await;

    // The real broker: ready while consuming; not once the queue is deleted under it; ready
    // again once the queue is back and the worker has reconnected.
    let port = free_port();
    let vars = vars_with(
        bed.vars("request", &request_config(&base, false)),
        &[("COMPONENT_METRICS_ADDR", &format!("127.0.0.1:{port}"))],
    );
    let child = spawn_worker(&vars);
    let ops = Ops::new(port);
    ops.wait_for("/readyz", 200).await;
    bed.channel
        .queue_delete(bed.input.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ops.wait_for("/readyz", 503).await;
    assert_eq!(
        ops.status("/healthz").await,
        Some(200),
        "not consuming is not wedged"
    );
    assert_eq!(
        sample(
            &ops.scrape().await,
            "component_reconnects_total{function=\"request\"}"
        ),
        0.0
    );
    bed.channel
        .queue_declare(
            bed.input.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ops.wait_for("/readyz", 200).await;
    assert_eq!(
        sample(
            &ops.scrape().await,
            "component_reconnects_total{function=\"request\"}"
        ),
        1.0
    );
    stop(child).await;
    bed.cleanup().await;
}

/// A loopback TCP forwarder to RabbitMQ that the test can cut, as a network failure or a
/// broker restart would, without touching the shared broker.
struct Link {
    address: String,
    open: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Link {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicBool::new(true));
        let pipes = Arc::new(Mutex::new(Vec::new()));
        let (accepting, piped) = (open.clone(), pipes.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                piped.lock().unwrap().push(pipe);
            }
        });
        Self {
            address,
            open,
            pipes,
        }
    }

    /// Closes every connection through the link and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Lets connections through again.
    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_while_the_broker_connection_is_lost_and_200_once_reconnected() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    let link = Link::start().await;
    let port = free_port();
    let vars = vars_with(
        bed.vars("request", &request_config(&base, false)),
        &[
            (
                "ELASTICIO_AMQP_URI",
                &format!("amqp://guest:guest@{}/%2f", link.address),
            ),
            ("COMPONENT_METRICS_ADDR", &format!("127.0.0.1:{port}")),
        ],
    );
    let child = spawn_worker(&vars);
    let ops = Ops::new(port);
    ops.wait_for("/readyz", 200).await;

    link.cut();
    ops.wait_for("/readyz", 503).await;
    // It stays unready while the broker cannot be reached, and alive.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ops.status("/readyz").await, Some(503));
    }
    assert_eq!(ops.status("/healthz").await, Some(200));

    link.restore();
    ops.wait_for("/readyz", 200).await;
    assert_eq!(
        sample(
            &ops.scrape().await,
            "component_reconnects_total{function=\"request\"}"
        ),
        1.0
    );
    // Consuming for real: a message sent now is processed.
    bed.send_numbered(0..1, |n| json!({ "n": n })).await;
    assert_eq!(
        routing_keys(&bed.collect(1, Duration::from_secs(20)).await),
        ["data"]
    );
    let logs = stop(child).await;
    assert!(logs.contains("reconnecting"), "{logs}");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bunyan_lines_at_trace_all_parse_carry_each_messages_ids_and_no_secret() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    for n in 0..2u64 {
        let body = cipher().encode(
            json!({ "body": { "n": n } }).to_string().as_bytes(),
            Encoding::Base64,
        );
        let mut headers = FieldTable::default();
        headers.insert("messageId".into(), text(&format!("m-{n}")));
        headers.insert("parentMessageId".into(), text(&format!("p-{n}")));
        headers.insert("threadId".into(), text(&format!("t-{n}")));
        bed.send_raw(&body, headers).await;
    }
    let vars = vars_with(
        bed.vars("request", &request_config(&base, true)),
        &[("COMPONENT_LOG_FORMAT", "bunyan"), ("LOG_LEVEL", "trace")],
    );
    let child = spawn_worker(&vars);
    let events = bed.collect(3, Duration::from_secs(30)).await;
    let logs = stop(child).await;
    let tail: Vec<&str> = logs.lines().rev().take(20).collect();
    assert_eq!(
        routing_keys(&events).len(),
        3,
        "keys and two data; {tail:#?}"
    );
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(lines.len() > 10, "{} lines", lines.len());
    for line in &lines {
        assert_eq!(line["name"], "component", "{line}");
        assert_eq!(line["hostname"], hostname.trim(), "{line}");
        assert_eq!(line["pid"], output_pid(&lines), "{line}");
        assert!(
            [10, 20, 30, 40, 50].contains(&line["level"].as_u64().unwrap()),
            "{line}"
        );
        assert!(line["msg"].is_string(), "{line}");
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(line["v"], 0, "{line}");
        assert_eq!(line["ELASTICIO_FLOW_ID"], "flow-1", "{line}");
        assert_eq!(line["ELASTICIO_STEP_ID"], "step_2", "{line}");
        assert_eq!(line["ELASTICIO_FUNCTION"], "request", "{line}");
        assert_eq!(line["tag"], "flow-1", "{line}");
    }
    // Every line logged inside a delivery says which message it is about.
    let settled: Vec<&Value> = lines
        .iter()
        .filter(|line| line["msg"] == "Message settled.")
        .collect();
    assert_eq!(settled.len(), 2);
    for n in 0..2 {
        let line = settled
            .iter()
            .find(|line| line["messageId"] == format!("m-{n}"))
            .unwrap_or_else(|| panic!("no settle line for m-{n}: {settled:?}"));
        assert_eq!(line["parentMessageId"], format!("p-{n}"));
        assert_eq!(line["threadId"], format!("t-{n}"));
        assert_eq!(line["stepId"], "step_2");
        assert_eq!(line["function"], "request");
    }
    let with_id = lines.iter().filter(|line| line.get("messageId").is_some());
    for line in with_id {
        assert!(line["threadId"].is_string(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|line| line["msg"] == "Access token refreshed."),
        "the refresh was logged"
    );
    bed::assert_no_secret_in(&logs);
    bed.cleanup().await;
}

/// The one `pid` of a run's lines.
fn output_pid(lines: &[Value]) -> Value {
    lines[0]["pid"].clone()
}
