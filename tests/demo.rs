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
