//! The `verify_credentials` binary against the loopback sandbox provider and API.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

const BINARY: &str = env!("CARGO_BIN_EXE_verify_credentials");

/// How one run of the binary ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout as the one JSON object it must be.
    fn answer(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "stdout must be one line: {self:?}");
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    fn reason(&self) -> String {
        self.answer()["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("no reason: {self:?}"))
            .to_owned()
    }
}

async fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(BINARY);
    command.args(args);
    for name in [
        "ELASTICIO_CFG",
        "ELASTICIO_POST_RESULT_URL",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "LOG_LEVEL",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("stdin write");
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the binary finishes within 60 s")
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("the binary exits by itself"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs the check on `config` passed through `ELASTICIO_CFG`.
async fn verify(config: &Value) -> Run {
    run(&[], &[("ELASTICIO_CFG", &config.to_string())], None).await
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback server that accepts connections and never answers.
async fn silent_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// One request received by the result server.
#[derive(Clone, Debug)]
struct Posted {
    method: String,
    uri: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A platform stand-in for `ELASTICIO_POST_RESULT_URL`: records every request and answers
/// with `status`.
async fn result_server(status: StatusCode) -> (String, Arc<Mutex<Vec<Posted>>>) {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let record = posted.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                record.lock().unwrap().push(Posted {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                status
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("127.0.0.1:{}", addr.port()), posted)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn secret(grant: &Value, name: &str) -> String {
    grant[name].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_token_is_verified_without_a_token_request() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let run = verify(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "{\"verified\":true}\n");
    assert_eq!(sandbox.token_requests(), 0);
    assert_eq!(sandbox.api_calls(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_whole_new_token_set_is_returned() {
    let mut extras = Map::new();
    extras.insert("instance_url".into(), json!("https://eu.sandbox.example"));
    extras.insert("id_token".into(), json!("header.payload.signature"));
    let sandbox = Sandbox::start(SandboxOptions {
        extras,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let config = sandbox.step_config(grant.clone(), json!({}));
    let run = verify(&config).await;

    assert_eq!(run.code, 0, "{run:?}");
    let answer = run.answer();
    assert_eq!(answer["verified"], json!(true));
    assert_eq!(answer.get("reason"), None);
    let oauth = &answer["updatedKeys"]["oauth"];
    let names: Vec<&str> = oauth
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
            "instance_url",
            "id_token",
            "expires_at"
        ]
    );
    assert_ne!(oauth["access_token"], grant["access_token"]);
    assert_ne!(oauth["refresh_token"], grant["refresh_token"], "rotated");
    assert_eq!(oauth["instance_url"], json!("https://eu.sandbox.example"));
    assert_eq!(oauth["id_token"], json!("header.payload.signature"));
    assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(
        sandbox.api_calls(),
        2,
        "the rejected call and its one replay"
    );

    // The returned access token is the one the API now accepts.
    let me = reqwest::Client::new()
        .get(format!("{}/me", sandbox.api_base_url()))
        .bearer_auth(oauth["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
}

#[tokio::test]
async fn a_token_known_to_be_expired_is_refreshed_before_the_call() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredKnown), json!({}));
    let run = verify(&config).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.answer()["updatedKeys"]["oauth"]["access_token"].is_string());
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(sandbox.api_calls(), 1);
    assert_eq!(sandbox.api_rejections(), 0);
}

#[tokio::test]
async fn secrets_appear_on_stdout_only_inside_updated_keys_and_never_on_stderr() {
    let sandbox = sandbox().await;
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let config = sandbox.step_config(grant.clone(), json!({}));
    let run = run(
        &[],
        &[
            ("ELASTICIO_CFG", &config.to_string()),
            ("LOG_LEVEL", "trace"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let mut answer = run.answer();
    let oauth = answer["updatedKeys"]["oauth"].clone();
    let secrets = [
        secret(&grant, "access_token"),
        secret(&grant, "refresh_token"),
        secret(&oauth, "access_token"),
        secret(&oauth, "refresh_token"),
        "sandbox-secret".to_owned(),
    ];
    answer.as_object_mut().unwrap().remove("updatedKeys");
    let outside_keys = answer.to_string();
    assert!(!run.stderr.is_empty(), "trace logs were written");
    for secret in &secrets {
        assert!(!run.stderr.contains(secret.as_str()), "{secret} in stderr");
        assert!(
            !outside_keys.contains(secret.as_str()),
            "{secret} outside updatedKeys"
        );
    }
}

#[tokio::test]
async fn a_revoked_refresh_token_is_not_verified_and_the_reason_names_invalid_grant() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    sandbox.revoke_all();
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.answer()["verified"], json!(false));
    assert_eq!(
        run.reason(),
        "The access token was rejected and could not be renewed: the token endpoint answered \
         invalid_grant (the grant was revoked). Re-authorise the account."
    );
    assert_eq!(run.answer().get("updatedKeys"), None);
    assert_eq!(
        sandbox.token_requests(),
        1,
        "a permanent failure is not retried"
    );
}

#[tokio::test]
async fn an_api_answering_500_is_not_verified() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    sandbox.fail_api_calls(&[500]);
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.reason(),
        format!(
            "The API answered HTTP 500 Internal Server Error to GET {}/me. The credential could \
             not be checked; try again later. Response: {{\"error\":\"Internal Server Error\"}}",
            sandbox.api_base_url()
        )
    );
    assert_eq!(sandbox.token_requests(), 0);
}

#[tokio::test]
async fn an_unreachable_api_is_not_verified_with_a_reason() {
    let sandbox = sandbox().await;
    let port = closed_port();
    let config = sandbox.step_config(
        sandbox.issue_grant(GrantState::Valid),
        json!({"api_base_url": format!("http://127.0.0.1:{port}/api")}),
    );
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    let reason = run.reason();
    assert!(
        reason.starts_with(&format!(
            "The API could not be reached at GET http://127.0.0.1:{port}/api/me ("
        )),
        "{reason}"
    );
    assert!(reason.contains("refused"), "{reason}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_not_verified_with_a_reason() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(
        sandbox.issue_grant(GrantState::ExpiredUnknown),
        json!({"token_uri": format!("http://127.0.0.1:{}/oauth/token", closed_port())}),
    );
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    let reason = run.reason();
    assert!(
        reason.starts_with(
            "The access token was rejected and could not be renewed: the token endpoint is \
             unreachable or failing ("
        ),
        "{reason}"
    );
    assert!(
        reason.ends_with(" attempts). Try again later; if this persists, check `token_uri`."),
        "{reason}"
    );
}

#[tokio::test]
async fn a_check_that_takes_longer_than_the_timeout_is_not_verified() {
    let sandbox = sandbox().await;
    let port = silent_server().await;
    let config = sandbox.step_config(
        sandbox.issue_grant(GrantState::Valid),
        json!({"api_base_url": format!("http://127.0.0.1:{port}/api")}),
    );
    let started = Instant::now();
    let run = run(
        &["--timeout", "1"],
        &[("ELASTICIO_CFG", &config.to_string())],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.reason(),
        "No answer within 1 s: the API or the token endpoint is too slow or unreachable. Try \
         again later; if this persists, check `api_base_url` and `token_uri`."
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn invalid_json_exits_2_naming_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.json");
    std::fs::write(&path, "{\n  \"oauth\": {\"access_token\": \"at\",}\n}").unwrap();
    let run = run(&["--config", path.to_str().unwrap()], &[], None).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim(),
        format!(
            "error: the config is unusable: config file {} is not valid JSON: trailing comma \
             at line 2, column 34",
            path.display()
        )
    );
}

#[tokio::test]
async fn a_missing_access_token_exits_2_naming_the_field() {
    let run = verify(&json!({
        "oauth": {"refresh_token": "rt-secret"},
        "api_base_url": "http://127.0.0.1:1/api"
    }))
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.trim(),
        "error: the config is unusable: ELASTICIO_CFG: field `oauth.access_token` is missing, \
         empty or not a string"
    );
}

#[tokio::test]
async fn a_missing_api_base_url_exits_2_naming_the_field() {
    let run = verify(&json!({"oauth": {"access_token": "at"}})).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("field `api_base_url` is missing"),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_config_without_a_token_set_is_not_verified() {
    let run = verify(&json!({"api_base_url": "http://127.0.0.1:1/api"})).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"verified\":false,\"reason\":\"The config has no oauth token set: connect the \
         account through its OAuth2 sign-in first.\"}\n"
    );
}

#[tokio::test]
async fn the_config_is_read_from_a_file_given_with_dash_dash_config() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.json");
    std::fs::write(&path, config.to_string()).unwrap();
    // --config wins over ELASTICIO_CFG and stdin, which hold garbage here.
    let run = run(
        &["--config", path.to_str().unwrap()],
        &[("ELASTICIO_CFG", "not json")],
        Some("not json either"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sandbox.api_calls(), 1);
}

#[tokio::test]
async fn the_config_is_read_from_elasticio_cfg_before_stdin() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let run = run(
        &[],
        &[("ELASTICIO_CFG", &config.to_string())],
        Some("not json"),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sandbox.api_calls(), 1);
}

#[tokio::test]
async fn the_config_is_read_from_stdin_when_nothing_else_is_given() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let piped = run(&[], &[], Some(&config.to_string())).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert_eq!(piped.stdout, "{\"verified\":true}\n");
    assert_eq!(sandbox.api_calls(), 1);

    let empty = run(&[], &[], None).await;
    assert_eq!(empty.code, 2, "{empty:?}");
    assert!(
        empty.stderr.contains("standard input is empty"),
        "{empty:?}"
    );
}

#[tokio::test]
async fn the_result_url_receives_the_service_mode_body_with_basic_auth() {
    let sandbox = sandbox().await;
    let (host, posted) = result_server(StatusCode::OK).await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    let url = format!("http://task-7:p%40ss-w0rd@{host}/results/verify?exec=42");
    let run = run(
        &[],
        &[
            ("ELASTICIO_CFG", &config.to_string()),
            ("ELASTICIO_POST_RESULT_URL", &url),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].method, "POST");
    assert_eq!(posted[0].uri, "/results/verify?exec=42");
    assert_eq!(
        posted[0].authorization.as_deref(),
        Some(basic("task-7", "p@ss-w0rd").as_str())
    );
    assert_eq!(posted[0].content_type.as_deref(), Some("application/json"));
    // The refreshed keys are on stdout, never in the POSTed body.
    assert_eq!(
        posted[0].body,
        json!({"status": "success", "data": {"verified": true}})
    );
    assert!(run.answer()["updatedKeys"].is_object());
    assert!(!run.stderr.contains("p@ss-w0rd") && !run.stderr.contains("p%40ss"));
}

#[tokio::test]
async fn a_failed_check_is_posted_with_its_reason() {
    let sandbox = sandbox().await;
    let (host, posted) = result_server(StatusCode::OK).await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    sandbox.fail_api_calls(&[503]);
    let run = run(
        &[],
        &[
            ("ELASTICIO_CFG", &config.to_string()),
            ("ELASTICIO_POST_RESULT_URL", &format!("http://{host}/r")),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].authorization, None);
    assert_eq!(
        posted[0].body,
        json!({"status": "success", "data": {"verified": false, "reason": run.reason()}})
    );
}

#[tokio::test]
async fn a_result_post_that_fails_makes_the_exit_code_1_and_is_reported_on_stderr() {
    let sandbox = sandbox().await;
    let (host, posted) = result_server(StatusCode::INTERNAL_SERVER_ERROR).await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let run = run(
        &[],
        &[
            ("ELASTICIO_CFG", &config.to_string()),
            (
                "ELASTICIO_POST_RESULT_URL",
                &format!("http://u:hunter2@{host}/r"),
            ),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "{\"verified\":true}\n");
    assert_eq!(posted.lock().unwrap().len(), 1);
    assert!(
        run.stderr.contains(
            "error: the result could not be posted to ELASTICIO_POST_RESULT_URL: POST to \
             127.0.0.1 was answered with HTTP 500"
        ),
        "{run:?}"
    );
    assert!(!run.stderr.contains("hunter2"), "{run:?}");
}

#[tokio::test]
async fn unusable_input_is_posted_as_a_service_error() {
    let (host, posted) = result_server(StatusCode::OK).await;
    let run = run(
        &[],
        &[
            ("ELASTICIO_CFG", "{\"oauth\": 5}"),
            ("ELASTICIO_POST_RESULT_URL", &format!("http://{host}/r")),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    let posted = posted.lock().unwrap().clone();
    assert_eq!(
        posted[0].body,
        json!({"status": "error", "data": {"message":
            "the config is unusable: ELASTICIO_CFG: field `oauth` must be the token set \
             (a JSON object), not a number"}})
    );
}

#[tokio::test]
async fn keys_from_a_refresh_are_returned_even_when_the_check_then_fails() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    sandbox.fail_api_calls(&[401, 502]);
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.reason()
            .starts_with("The API answered HTTP 502 Bad Gateway to GET "),
        "{run:?}"
    );
    assert!(run.answer()["updatedKeys"]["oauth"]["refresh_token"].is_string());
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test]
async fn a_token_rejected_again_after_a_refresh_is_not_verified_and_not_refreshed_twice() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    sandbox.fail_api_calls(&[401, 401]);
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.reason(),
        format!(
            "The API rejected the access token again after a successful refresh (HTTP 401 to \
             GET {}/me): the account may lack access to this API. Re-authorise the account, or \
             check `api_base_url` and `verify_path`.",
            sandbox.api_base_url()
        )
    );
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(sandbox.api_calls(), 2);
}

#[tokio::test]
async fn verify_path_from_the_config_replaces_the_default() {
    let sandbox = sandbox().await;
    let config = sandbox.step_config(
        sandbox.issue_grant(GrantState::Valid),
        json!({"verify_path": "/status/403"}),
    );
    let run = verify(&config).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.reason(),
        format!(
            "The API answered HTTP 403 Forbidden to GET {}/status/403. The token is valid but \
             may not read this resource: check the scopes granted to the account and \
             `verify_path`. Response: {{\"error\":\"Forbidden\"}}",
            sandbox.api_base_url()
        )
    );
}

#[tokio::test]
async fn a_token_endpoint_slower_than_the_timeout_is_not_verified_but_its_rotated_keys_are_kept() {
    let sandbox = Sandbox::start(SandboxOptions {
        token_delay: Duration::from_secs(5),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    let started = Instant::now();
    let run = run(
        &["--timeout", "0.5"],
        &[("ELASTICIO_CFG", &config.to_string())],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.reason().starts_with("No answer within 0.5 s:"),
        "{run:?}"
    );
    // The refresh was already at the provider, which rotates the refresh token: the check
    // waits for it (within its grace) so that the new keys are not lost.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(9),
        "{elapsed:?}"
    );
    assert_eq!(sandbox.token_requests(), 1);
    let keys = &run.answer()["updatedKeys"]["oauth"];
    assert!(
        keys["refresh_token"].as_str().unwrap().starts_with("rt-"),
        "{run:?}"
    );
    assert_ne!(keys["refresh_token"], config["oauth"]["refresh_token"]);
}

#[tokio::test]
async fn a_timeout_that_is_not_a_positive_number_is_unusable_input() {
    let run = run(&["--timeout", "0"], &[], None).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("`0` is not a positive number of seconds"),
        "{run:?}"
    );
}
