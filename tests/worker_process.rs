//! The `component worker` binary as the platform runs it: env vars in, signals to stop.

mod bed;

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use bed::{Bed, Provider, decrypt, request_config, routing_keys};
use lapin::message::Delivery;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// A provider answering after `delay_ms`, a bed with `count` numbered messages queued, and the
/// worker's environment for `request` with a token that is `expired` or good for an hour:
/// every run of the binary here starts from that.
async fn queued_requests(
    delay_ms: u64,
    count: u64,
    expired: bool,
) -> (Provider, Bed, Vec<(String, String)>) {
    let provider = Provider::default();
    provider.state().delay_ms = delay_ms;
    let base = provider.serve().await;
    let bed = Bed::new().await;
    bed.send_numbered(0..count, |n| json!({ "n": n })).await;
    let vars = bed.vars("request", &request_config(&base, expired));
    (provider, bed, vars)
}

/// Runs `component worker` with exactly `vars` and `log_level`, its logs captured.
fn spawn_worker(vars: &[(String, String)], log_level: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("worker")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("LOG_LEVEL", log_level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the component binary starts")
}

/// Sends SIGTERM to `child`, as the platform does to stop a step.
fn terminate(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stops `child` with SIGTERM and returns its output once it has exited with 0 within the
/// grace period: how every run here ends.
async fn stop(child: Child) -> Output {
    terminate(&child);
    let output = tokio::time::timeout(Duration::from_secs(35), child.wait_with_output())
        .await
        .expect("the worker exits within the grace period")
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    output
}

/// The `n` a data event answered: which message it came from.
fn answered_n(event: &Delivery) -> Option<u64> {
    (routing_keys(std::slice::from_ref(event))[0] == "data")
        .then(|| decrypt(event)["body"]["body"]["n"].as_u64())
        .flatten()
}

/// Asserts that every duplicated output is of a message the worker's log shows it received
/// again as a redelivery, so that no output was duplicated by anything but the fault.
fn assert_duplicates_were_redelivered(duplicates: &[(u64, usize)], logs: &str) {
    let redelivered = bed::redelivered_ids(logs);
    for (n, _) in duplicates {
        assert!(
            redelivered.contains(&format!("m-{n}")),
            "m-{n} was output twice but never redelivered (redelivered: {redelivered:?})"
        );
    }
}

/// Polls `done` every 20 ms, failing the test after 20 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_mid_batch_is_restarted_and_processes_the_rest() {
    let (provider, bed, mut vars) = queued_requests(150, 20, false).await;
    vars.push(("ELASTICIO_RABBITMQ_PREFETCH_SAILOR".into(), "2".into()));

    let mut first = spawn_worker(&vars, "info");
    wait_until("five calls were made", || provider.state().calls.len() >= 5).await;
    first.kill().await.unwrap();
    let done_before = provider.state().calls.len();
    assert!(done_before < 20, "killed mid-batch ({done_before} done)");

    // The first ran on the default current-thread runtime; the second runs on tokio's
    // multi-thread one, as TOKIO_WORKER_THREADS asks.
    vars.push(("TOKIO_WORKER_THREADS".into(), "2".into()));
    // At `debug`, so that every delivery logs a line ("Message settled.") with its
    // `redelivered` flag: a message whose output the first worker published but whose ack the
    // kill cut off is output twice, and only such a line shows that it came back as a
    // redelivery (at `info` a duplicate could not be told from a republish).
    let second = spawn_worker(&vars, "debug");
    let expected: BTreeSet<u64> = (0..20).collect();
    let got = bed
        .collect_distinct(&expected, Duration::from_secs(30), answered_n)
        .await;
    let output = stop(second).await;

    assert!(routing_keys(&got.events).iter().all(|k| k == "data"));
    assert_eq!(
        got.missing(&expected),
        Vec::<u64>::new(),
        "every message was processed"
    );
    // Only what was in flight at the kill (at most prefetch = 2) may be processed twice, and
    // the restarted worker got it as a redelivery.
    assert!(
        got.duplicate_count() <= 2,
        "duplicates: {:?}",
        got.duplicates()
    );
    assert_duplicates_were_redelivered(&got.duplicates(), &String::from_utf8_lossy(&output.stderr));
    assert_eq!(bed.input_ready().await, 0, "every message was acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_logs_json_without_secrets_and_exits_0_on_sigterm() {
    let (provider, bed, vars) = queued_requests(800, 3, true).await;
    let child = spawn_worker(&vars, "debug");
    // The refresh happens before the first API call, which then takes 800 ms.
    wait_until("the token was refreshed", || {
        provider.state().refreshes == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let output = stop(child).await;

    let events = bed.collect(2, Duration::from_secs(5)).await;
    let keys = routing_keys(&events);
    assert_eq!(keys[0], "keys");
    let data = keys.iter().filter(|k| *k == "data").count();
    assert!(data >= 1, "the message in flight was finished: {keys:?}");
    let remaining = bed.input_ready().await as usize;
    assert_eq!(
        data + remaining,
        3,
        "nothing lost: {data} done, {remaining} left"
    );

    let logs = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for expected in [
        "Worker starting.",
        "Access token refreshed.",
        "Message settled.",
        "Worker stopped.",
    ] {
        assert!(
            messages.contains(&expected),
            "{expected:?} not in {messages:?}"
        );
    }
    // Each delivery's lines carry its identity, flattened in from the delivery span.
    let settled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "Message settled.")
        .collect();
    assert!(!settled.is_empty());
    for line in settled {
        assert!(
            line["messageId"].as_str().unwrap().starts_with("m-"),
            "{line}"
        );
        assert!(line["threadId"].is_string(), "{line}");
        assert_eq!(line["stepId"], "step_2", "{line}");
        assert_eq!(line["function"], "request", "{line}");
    }
    let once = messages
        .iter()
        .filter(|m| **m == "Rotated keys destinations.")
        .count();
    assert_eq!(once, 1, "the keys route is logged once: {messages:?}");
    // A clean stop logs no error: nothing an operator's alerting should wake anyone for.
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "errors on a clean stop: {errors:?}");
    bed::assert_no_secret_in(&logs);
    bed.cleanup().await;
}

/// Closes, broker side, this test's connections (named `{prefix}-read`/`-write`), as a
/// broker restart or network failure would. Other connections on the broker are not touched.
fn close_connections(prefix: &str) -> usize {
    let listing = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl is installed");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut closed = 0;
    for line in listing.lines() {
        let ours = ["read", "write"]
            .iter()
            .any(|role| line.contains(&format!("{{\"connection_name\",\"{prefix}-{role}\"}}")));
        if !ours {
            continue;
        }
        let pid = line.split('\t').next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: connection lost"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        closed += 1;
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_connection_loss_the_worker_reconnects_and_loses_nothing() {
    // Each rabbitmqctl call starts an Erlang VM (a second or more on a loaded machine): the
    // batch must outlast finding and closing both connections.
    let (provider, bed, mut vars) = queued_requests(700, 20, false).await;
    vars.push(("ELASTICIO_RABBITMQ_PREFETCH_SAILOR".into(), "1".into()));
    let hostname = format!("test-{}", bed.id);
    vars.push(("HOSTNAME".into(), hostname.clone()));
    let child = spawn_worker(&vars, "info");
    wait_until("three calls were made", || {
        provider.state().calls.len() >= 3
    })
    .await;
    assert_eq!(
        close_connections(&hostname),
        2,
        "both connections were found and closed"
    );
    let done_at_loss = provider.state().calls.len();
    assert!(done_at_loss < 20, "lost mid-batch ({done_at_loss} done)");

    // The loss makes the broker redeliver the message in flight and the worker republish
    // an unconfirmed output: one message may be output twice, and the 20th distinct output
    // may come after 20 events.
    let expected: BTreeSet<u64> = (0..20).collect();
    let got = bed
        .collect_distinct(&expected, Duration::from_secs(30), answered_n)
        .await;
    let output = stop(child).await;
    assert_eq!(
        got.missing(&expected),
        Vec::<u64>::new(),
        "every message was processed"
    );
    // Prefetch 1 and two connections closed one after the other: at most one message in
    // flight on each.
    assert!(
        got.duplicate_count() <= 2,
        "duplicates: {:?}",
        got.duplicates()
    );
    assert_eq!(
        bed.input_ready().await,
        0,
        "every message was acked in the end"
    );
    let logs = String::from_utf8(output.stderr).unwrap();
    assert!(
        logs.contains("reconnecting"),
        "the worker reconnected: {logs}"
    );
    bed.cleanup().await;
}

#[tokio::test]
async fn a_bad_environment_exits_2_listing_every_problem() {
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("worker")
        .env_clear()
        .env(
            "ELASTICIO_AMQP_URI",
            "amqp://guest:hunter2@127.0.0.1:5672/%2f",
        )
        .env("ELASTICIO_MESSAGE_CRYPTO_IV", "too short")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    for expected in [
        "ELASTICIO_LISTEN_MESSAGES_ON is missing",
        "ELASTICIO_FUNCTION is missing",
        "ELASTICIO_MESSAGE_CRYPTO_PASSWORD is missing",
        "ELASTICIO_MESSAGE_CRYPTO_IV must be exactly 16 bytes, not 9",
        "no step config",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_output_does_not_stand_in_for_one_still_to_come() {
    // What a clean-clone CI saw after a reconnect: 20 events, one a duplicate, and the 20th
    // distinct output still on its way. Counting events stopped at 19 distinct outputs.
    let bed = Bed::new().await;
    let publish = |n: u64| {
        let body = bed::cipher().encode(
            json!({"body": {"body": {"n": n}}}).to_string().as_bytes(),
            sailor::crypto::Encoding::Base64,
        );
        let channel = bed.channel.clone();
        let (exchange, key) = (bed.exchange.clone(), bed.key("data"));
        async move {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    key.as_str().into(),
                    Default::default(),
                    &body,
                    Default::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    for n in (0..19).chain([7]) {
        publish(n).await;
    }
    let expected: BTreeSet<u64> = (0..20).collect();
    let delayed = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        publish(19).await;
    };
    let (got, ()) = tokio::join!(
        bed.collect_distinct(&expected, Duration::from_secs(10), answered_n),
        delayed
    );
    assert_eq!(got.missing(&expected), Vec::<u64>::new());
    assert_eq!(got.events.len(), 21);
    assert_eq!(got.duplicates(), [(7, 2)]);
    assert_eq!(got.duplicate_count(), 1);
    bed.cleanup().await;
}
