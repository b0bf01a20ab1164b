//! `component demo` runs in the test suite: the built binary, its exit code and its account.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_demo_exits_0_and_tells_of_three_401s_three_refreshes_and_three_update_keys() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .arg("demo")
        .output()
        .expect("the binary runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    let count = |needle: &str| stdout.matches(needle).count();
    assert_eq!(count("-> 401 Unauthorized"), 3, "{stdout}");
    assert_eq!(count("POST /oauth/token -> 200 OK"), 3, "{stdout}");
    assert_eq!(count("emit  updateKeys"), 3, "{stdout}");
    assert_eq!(count("emit  data        item-"), 16, "{stdout}");
    assert_eq!(
        count("\"instance_url\":\"https://eu42.sandbox.example\""),
        3
    );
    for line in [
        "Round 1: pollItems, first run, 12 items over 3 pages",
        "  http  GET /api/items?per_page=5&page=3 -> 200 OK",
        "  emit  data        item-13 \"Order 1013\" (updated_at 2026-01-01T09:00:12Z)",
        "  items emitted      16 (16 added to the API; each emitted exactly once)",
        "  API calls          11 (3 rejected with 401, each replayed once after the refresh)",
        "  token requests     3 (the access token expired 3 times)",
        "  updateKeys events  3",
        "  ok    no item is emitted twice",
        "  ok    exactly one token request per expiry",
        "  ok    the runtime holds the last rotated refresh token for the next refresh",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("checks passed:"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Tokens appear only as fingerprints: the sandbox's look like "at-7-<uuid>", "rt-8-<uuid>".
    assert!(
        !stdout.contains("\"at-") && !stdout.contains("\"rt-"),
        "{stdout}"
    );
    assert_eq!(count("\"<redacted #"), 6, "{stdout}");
}

#[tokio::test]
async fn the_demo_fails_naming_the_broken_promise_when_refresh_tokens_do_not_rotate() {
    let options = component::demo::DemoOptions {
        access_token_ttl: Duration::from_secs(1),
        rotate_refresh_tokens: false,
        ..component::demo::DemoOptions::default()
    };
    let mut out = Vec::new();
    let error = component::demo::run(&mut out, &options)
        .await
        .expect_err("the demo notices");
    let component::demo::DemoError::Expectations(failed) = &error else {
        panic!("an expectation failed, got {error}");
    };
    assert!(
        failed.contains(&"each refresh rotated the refresh token (expected 4, got 1)".to_owned()),
        "{failed:?}"
    );
    let printed = String::from_utf8(out).unwrap();
    assert!(
        printed.contains("  FAIL  each refresh rotated the refresh token (expected 4, got 1)"),
        "{printed}"
    );
    assert!(!printed.contains("checks passed"), "{printed}");
}

const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The names after `label` at the start of a printout line, e.g. the demo's exchange and queues.
fn names_after(stdout: &str, label: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(label))
        .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_amqp_demo_exits_0_tells_the_broker_side_and_leaves_nothing_on_the_broker() {
    let started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_component"))
        .args(["demo", "--amqp", AMQP_URI])
        .output()
        .await
        .expect("the binary runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let count = |needle: &str| stdout.matches(needle).count();
    assert_eq!(count("-> 401 Unauthorized"), 3, "{stdout}");
    assert_eq!(count("POST /oauth/token -> 200 OK"), 3, "{stdout}");
    assert_eq!(count("  send  trigger message "), 3, "{stdout}");
    assert_eq!(count("  send  request message "), 3, "{stdout}");
    assert_eq!(
        count("(protocol v1, base64 of the ciphertext"),
        3,
        "{stdout}"
    );
    assert_eq!(count("(protocol v2, raw ciphertext"), 3, "{stdout}");
    assert_eq!(count("  amqp  data        item-"), 16, "{stdout}");
    assert_eq!(count(".step_1.data\n"), 16, "{stdout}");
    assert_eq!(count("  amqp  data        {status: 200"), 3, "{stdout}");
    assert_eq!(count(".step_2.data\n"), 3, "{stdout}");
    assert_eq!(count("  amqp  snapshot    "), 3, "{stdout}");
    assert_eq!(count("  amqp  updateKeys  {\"oauth\":"), 3, "{stdout}");
    assert_eq!(
        count(".updateKeys, accountId: sandbox-account, keysEvent: updateKeys\n"),
        3,
        "{stdout}"
    );
    assert_eq!(count(".step_1.updateKeys, "), 2, "{stdout}");
    assert_eq!(count(".step_2.updateKeys, "), 1, "{stdout}");
    assert_eq!(count("  amqp  error"), 0, "{stdout}");
    assert_eq!(count(".error\n"), 0, "{stdout}");
    assert_eq!(count("emit  "), 0, "{stdout}");
    assert_eq!(
        count("\"instance_url\":\"https://eu42.sandbox.example\""),
        3
    );
    for line in [
        "component demo --amqp: the REST component and its runtime through RabbitMQ, against a loopback OAuth2 provider",
        "  broker    127.0.0.1:5672 vhost /",
        "  ack       0 message(s) left in ",
        "  rejected  0 delivery(ies) dead-lettered",
        "  items emitted      16 (16 added to the API; each emitted exactly once)",
        "  API calls          11 (3 rejected with 401, each replayed once after the refresh)",
        "  token requests     3 (the access token expired 3 times)",
        "  updateKeys messages  3",
        "All 18 checks passed:",
        "  ok    both input queues are empty after the workers stopped: every delivery was acked",
        "  ok    no delivery was rejected",
        "  ok    one updateKeys message per token request",
        "  ok    no error message",
        "  ok    no item is emitted twice",
        "  ok    exactly one token request per expiry",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        !stdout.contains("guest:guest"),
        "the URI's password is never printed"
    );
    assert!(
        !stdout.contains("\"at-") && !stdout.contains("\"rt-"),
        "{stdout}"
    );
    assert_eq!(count("\"<redacted #"), 6, "{stdout}");

    let exchanges = names_after(&stdout, "  exchange  ");
    let queues = names_after(&stdout, "  queue     ");
    assert_eq!((exchanges.len(), queues.len()), (1, 3), "{stdout}");
    let connection = lapin::Connection::connect(AMQP_URI, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ runs on 127.0.0.1:5672");
    let passive_queue = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let passive_exchange = lapin::options::ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    for queue in &queues {
        // A passive declare of a missing queue fails and closes its channel: one each.
        let channel = connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                passive_queue,
                lapin::types::FieldTable::default(),
            )
            .await;
        assert!(declared.is_err(), "queue {queue} is left on the broker");
    }
    let channel = connection.create_channel().await.unwrap();
    let declared = channel
        .exchange_declare(
            exchanges[0].as_str().into(),
            lapin::ExchangeKind::Direct,
            passive_exchange,
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(declared.is_err(), "exchange {} is left", exchanges[0]);
    let _ = connection.close(200, "done".into()).await;
}

#[test]
fn the_amqp_demo_names_an_unreachable_broker_and_exits_1_without_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .args([
            "demo",
            "--amqp",
            &format!("amqp://guest:s3cr3t@127.0.0.1:{port}/%2f"),
        ])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();

    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stderr.contains(&format!(
            "error: RabbitMQ at 127.0.0.1:{port} (vhost /) is unreachable: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("s3cr3t") && !stdout.contains("s3cr3t"));
    assert!(!stdout.contains("Round 1"), "no round runs: {stdout}");
}

#[test]
fn the_demo_refuses_an_amqp_uri_it_cannot_parse_with_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .args(["demo", "--amqp", "http://127.0.0.1:5672"])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr, "error: --amqp is not an amqp:// or amqps:// URI\n");
}
