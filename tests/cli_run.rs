//! `component run` end to end: the built binary against the sandbox, with files on disk.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use sandbox::{GrantState, Sandbox};
use serde_json::{Value, json};
use tokio::process::Command;

/// What one run of the binary left behind: exit code, stdout parsed line by line, and both streams.
struct Run {
    code: i32,
    lines: Vec<Value>,
    stdout: String,
    stderr: String,
}

/// Writes `content` to `dir/name`: the binary reads its inputs from files only.
fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Writes the sandbox's step config, with a fresh grant in `state` and the function's `fields`,
/// to `dir/cfg.json`: the file `--config` names in the tests that reach the sandbox.
fn write_step_config(dir: &Path, sandbox: &Sandbox, state: GrantState, fields: Value) -> PathBuf {
    let config = sandbox.step_config(sandbox.issue_grant(state), fields);
    write(dir, "cfg.json", &config.to_string())
}

/// Runs `component run --function FUNCTION --config CONFIG` followed by each `(flag, file)` of
/// `files`: the one command line every test here drives, only the function and files differ.
async fn run_function(function: &str, config: &Path, files: &[(&str, &Path)]) -> Run {
    let mut args = vec![
        "run",
        "--function",
        function,
        "--config",
        config.to_str().unwrap(),
    ];
    for (flag, file) in files {
        args.push(flag);
        args.push(file.to_str().unwrap());
    }
    component(&args).await
}

/// Runs `request` as a GET of the sandbox's `path` with a valid grant: the tests of how one API
/// answer becomes stdout lines and an exit code need nothing else.
async fn run_get(path: &str) -> Run {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_step_config(
        dir.path(),
        &sandbox,
        GrantState::Valid,
        json!({"method": "GET", "path": path}),
    );
    run_function("request", &config, &[]).await
}

/// Runs the built binary with `args` and reads its exit code and output.
async fn component(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_component"))
        .args(args)
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("the binary runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        lines: stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
            .collect(),
        stdout,
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_request_refreshes_prints_update_keys_then_data_and_exits_0() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_step_config(
        dir.path(),
        &sandbox,
        GrantState::ExpiredUnknown,
        json!({"method": "POST", "path": "/echo/items/{id}"}),
    );
    let message = write(dir.path(), "msg.json", r#"{"body": {"id": "x y", "n": 1}}"#);

    let run = run_function("request", &config, &[("--message", &message)]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines.len(), 2, "{}", run.stdout);
    assert_eq!(run.lines[0]["event"], json!("updateKeys"));
    let oauth = &run.lines[0]["payload"]["oauth"];
    assert!(oauth["access_token"].as_str().unwrap().starts_with("at-"));
    assert!(oauth["refresh_token"].as_str().unwrap().starts_with("rt-"));
    assert_eq!(run.lines[1]["event"], json!("data"));
    let body = &run.lines[1]["payload"]["body"];
    assert_eq!(body["status"], json!(200));
    assert_eq!(body["body"]["path"], json!("/api/echo/items/x%20y"));
    assert_eq!(body["body"]["body"], json!({"id": "x y", "n": 1}));
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_poll_items_with_a_snapshot_file_emits_only_newer_items_then_the_snapshot() {
    let sandbox = sandbox().await;
    sandbox.set_items(items(&["t1", "t2", "t2", "t3"]));
    let dir = tempfile::tempdir().unwrap();
    let config = write_step_config(
        dir.path(),
        &sandbox,
        GrantState::Valid,
        json!({"path": "/items", "items_pointer": "/items", "since_param": "since", "pagination": "cursor", "page_size": 2}),
    );
    let snapshot = write(
        dir.path(),
        "snap.json",
        r#"{"since": "t2", "ids_at_since": ["item-02"]}"#,
    );

    let run = run_function("pollItems", &config, &[("--snapshot", &snapshot)]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    let events: Vec<(&str, Value)> = run
        .lines
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["payload"].clone()))
        .collect();
    assert_eq!(events.len(), 3, "{}", run.stdout);
    assert_eq!(events[0].0, "data");
    assert_eq!(events[0].1["body"]["id"], json!("item-03"));
    assert_eq!(events[1].1["body"]["id"], json!("item-04"));
    assert_eq!(
        events[2],
        (
            "snapshot",
            json!({"since": "t3", "ids_at_since": ["item-04"]})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_turns_a_429_into_a_rebound_line_and_exits_0() {
    let run = run_get("/status/429?retry_after=3").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines,
        vec![
            json!({"event": "rebound", "payload": {"reason": "the API answered HTTP 429 Too Many Requests", "retry_after_ms": 3000}})
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_1_with_one_error_event_when_the_api_fails() {
    let run = run_get("/status/404").await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines.len(), 1, "{}", run.stdout);
    assert_eq!(run.lines[0]["event"], json!("error"));
    assert_eq!(run.lines[0]["payload"]["name"], json!("ApiError"));
    assert_eq!(
        run.lines[0]["payload"]["message"],
        json!(r#"the API answered HTTP 404: {"error":"Not Found"}"#)
    );
}

#[tokio::test]
async fn run_exits_2_naming_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let run = run_function("request", &missing, &[]).await;
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains(&format!("error: cannot read {}: ", missing.display())),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn run_exits_2_naming_line_and_column_of_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cfg.json", "{}");
    let message = write(dir.path(), "msg.json", "{\n  \"body\": [1,\n}");
    let run = run_function("request", &config, &[("--message", &message)]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: {}: invalid JSON at line 3, column 1",
            message.display()
        )
    );
}

#[tokio::test]
async fn run_exits_2_listing_the_known_functions_for_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cfg.json", "{}");
    let run = run_function("pollitems", &config, &[]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim_end(),
        "error: unknown function `pollitems`; this component has: pollItems, request"
    );
}
