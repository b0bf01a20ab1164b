//! The example component through its binary's `run`, `validate` and `verify`, against a
//! loopback desk (API key) and the sandbox provider (OAuth2).

mod desk;

use desk::{API_KEY, Desk, write};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use tokio::process::Command;

/// One run of the binary: exit code, stdout lines (as JSON where they are), stderr.
struct Run {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["event"] == kind).collect()
    }
}

async fn tickets(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tickets"))
        .args(args)
        .envs(env.iter().copied())
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("the example binary runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        lines: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_owned())))
            .collect(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `function` with `config`, `message` and `snapshot` files.
async fn run(function: &str, config: &Value, message: &Value, snapshot: &Value) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "cfg.json", config);
    let message = write(dir.path(), "msg.json", message);
    let snapshot = write(dir.path(), "snapshot.json", snapshot);
    tickets(
        &[
            "run",
            "--function",
            function,
            "--config",
            config.to_str().unwrap(),
            "--message",
            message.to_str().unwrap(),
            "--snapshot",
            snapshot.to_str().unwrap(),
        ],
        &[],
    )
    .await
}

#[tokio::test]
async fn validate_accepts_the_examples_own_descriptor() {
    let run = tickets(&["validate"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines,
        [json!(
            "component.json is valid: createTicket, fetchProfile, newTickets"
        )]
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "component.json",
        &json!({"title": "t", "description": "d"}),
    );
    let run = tickets(&["validate", "--descriptor", broken.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, 1);
    for name in ["createTicket", "fetchProfile", "newTickets"] {
        assert!(
            run.stderr.contains(&format!(
                "function `{name}` is compiled in but not declared"
            )),
            "{}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn create_ticket_posts_once_with_the_key_and_emits_the_ticket() {
    let desk = Desk::start(vec![]).await;
    let run = run(
        "createTicket",
        &desk.config(API_KEY),
        &json!({"body": {"title": "Printer on fire", "description": "3rd floor"}}),
        &json!({}),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        desk.created(),
        [
            json!({"title": "Printer on fire", "description": "3rd floor",
                "queue": "support", "source_step": null})
        ]
    );
    let data = run.of("data");
    assert_eq!(data.len(), 1, "{:?}", run.lines);
    assert_eq!(data[0]["payload"]["body"]["id"], "T-1");
    assert_eq!(run.lines.len(), 1);
}

#[tokio::test]
async fn a_refused_key_is_an_error_event_with_the_components_own_name() {
    let desk = Desk::start(vec![]).await;
    let run = run(
        "createTicket",
        &desk.config("wrong-key-0123456789"),
        &json!({"body": {"title": "x"}}),
        &json!({}),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!((desk.refused(), desk.created().len()), (1, 0));
    let errors = run.of("error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["payload"]["name"], "InvalidApiKey");
    assert!(
        !run.stderr.contains("wrong-key-0123456789")
            && !run
                .lines
                .iter()
                .any(|l| l.to_string().contains("wrong-key"))
    );
}

#[tokio::test]
async fn new_tickets_reports_a_bad_record_and_goes_on() {
    let desk = Desk::start(vec![
        json!({"id": "T-7", "title": "a", "updated": 7}),
        json!({"title": "no id", "updated": 8}),
        json!({"id": "T-9", "title": "b", "updated": 9}),
    ])
    .await;
    let run = run(
        "newTickets",
        &desk.config(API_KEY),
        &json!({}),
        &json!({"since": 5}),
    )
    .await;
    // An error event was emitted, so the run reports failure, but every good ticket came out.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(desk.queries(), ["since=5"]);
    let ids: Vec<&Value> = run
        .of("data")
        .iter()
        .map(|d| &d["payload"]["body"]["id"])
        .collect();
    assert_eq!(ids, [&json!("T-7"), &json!("T-9")]);
    let errors = run.of("error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["payload"]["name"], "MalformedTicket");
    assert_eq!(run.of("snapshot")[0]["payload"], json!({"since": 9}));
}

/// The sandbox with its access tokens already expired: the first call gets a 401.
async fn expired_grant() -> (Sandbox, Value) {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let config = sandbox.step_config(grant, json!({}));
    (sandbox, config)
}

#[tokio::test]
async fn fetch_profile_rides_the_runtimes_refresh() {
    let (sandbox, config) = expired_grant().await;
    let run = run(
        "fetchProfile",
        &config,
        &json!({"body": {"n": 1}}),
        &json!({}),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sandbox.token_requests(), 1);
    let keys = run.of("updateKeys");
    assert_eq!(keys.len(), 1, "{:?}", run.lines);
    let data = run.of("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["payload"]["body"]["input"], json!({"n": 1}));
    assert!(data[0]["payload"]["body"]["profile"].is_object());
}

#[tokio::test]
async fn verify_checks_the_key_with_the_components_verifier_and_oauth2_by_default() {
    let desk = Desk::start(vec![]).await;
    let good = desk.config(API_KEY).to_string();
    let run = tickets(&["verify"], &[("ELASTICIO_CFG", &good)]).await;
    assert_eq!(
        (run.code, &run.lines[..]),
        (0, &[json!({"verified": true})][..]),
        "{}",
        run.stderr
    );
    assert_eq!(desk.queries(), ["limit=1"]);

    let bad = desk.config("wrong-key-0123456789").to_string();
    let run = tickets(&["verify"], &[("ELASTICIO_CFG", &bad)]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.lines[0]["verified"], false);
    assert!(
        run.lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("refused the API key")
    );

    // Without a key, the OAuth2 check runs: GET /me, refreshing once.
    let (sandbox, config) = expired_grant().await;
    let run = tickets(&["verify"], &[("ELASTICIO_CFG", &config.to_string())]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines[0]["verified"], true);
    assert!(run.lines[0]["updatedKeys"]["oauth"]["access_token"].is_string());
    assert_eq!(sandbox.token_requests(), 1);
}
