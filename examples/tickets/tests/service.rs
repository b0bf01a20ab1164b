//! The example's service methods and lifecycle hooks through its binary, as the platform
//! calls them: `service getMetaModel|selectModel` with the answer POSTed to a result-URL
//! stand-in, and `worker` with `ELASTICIO_STARTUP_REQUIRED` then `ELASTICIO_HOOK_SHUTDOWN`,
//! the startup data kept by a platform-API stand-in.

#[path = "../../../tests/bed/mod.rs"]
mod bed;
mod desk;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::{Json, Router};
use bed::Bed;
use desk::{API_KEY, Desk};
use serde_json::{Value, json};
use tokio::process::Command;

/// What the platform stand-in was asked: results posted, and the startup data's requests.
#[derive(Default)]
struct Platform {
    results: Vec<Value>,
    requests: Vec<String>,
    data: Option<Value>,
    /// The first POST of startup data answers 409, as when a previous start left some.
    conflict_once: bool,
}

type Shared = Arc<Mutex<Platform>>;

async fn platform(conflict_once: bool, step: Value) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Platform {
        conflict_once,
        ..Platform::default()
    }));
    let app = Router::new()
        .route(
            "/result",
            axum::routing::post(
                |State(p): State<Shared>, Json(body): Json<Value>| async move {
                    p.lock().unwrap().results.push(body);
                    StatusCode::OK
                },
            ),
        )
        .route(
            "/sailor-support/hooks/task/flow-1/startup/data",
            axum::routing::any(
                |State(p): State<Shared>, method: Method, body: axum::body::Bytes| async move {
                    let mut p = p.lock().unwrap();
                    p.requests.push(method.to_string());
                    match method {
                        Method::POST if p.conflict_once => {
                            p.conflict_once = false;
                            (StatusCode::CONFLICT, Json(json!({"error": "exists"})))
                        }
                        Method::POST => {
                            p.data = Some(serde_json::from_slice(&body).unwrap());
                            (StatusCode::OK, Json(json!({})))
                        }
                        Method::GET => match p.data.clone() {
                            Some(data) => (StatusCode::OK, Json(data)),
                            None => (StatusCode::NOT_FOUND, Json(json!({"error": "none"}))),
                        },
                        _ => {
                            p.data = None;
                            (StatusCode::OK, Json(json!({})))
                        }
                    }
                },
            ),
        )
        .route(
            "/v1/tasks/flow-1/steps/step_2",
            axum::routing::get(move || {
                let step = step.clone();
                async move { Json(step) }
            }),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, shared)
}

/// Runs the binary with `args` and `env` (and nothing else of this process's environment).
async fn tickets(args: &[&str], env: &[(String, String)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tickets"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn service_env(
    url: &str,
    desk: &Desk,
    function: &str,
    method: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "ELASTICIO_POST_RESULT_URL".to_owned(),
            format!("{url}/result"),
        ),
        ("ELASTICIO_CFG".to_owned(), desk.config(API_KEY).to_string()),
        (
            "ELASTICIO_ACTION_OR_TRIGGER".to_owned(),
            function.to_owned(),
        ),
    ];
    if let Some(method) = method {
        env.push(("ELASTICIO_GET_MODEL_METHOD".to_owned(), method.to_owned()));
    }
    env
}

#[tokio::test]
async fn select_model_and_get_meta_model_post_their_answers() {
    let desk = Desk::start(vec![]).await;
    let (url, platform) = platform(false, json!({})).await;

    let (code, stderr) = tickets(
        &["service", "selectModel"],
        &service_env(&url, &desk, "createTicket", Some("queues")),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = tickets(
        &["service", "getMetaModel"],
        &service_env(&url, &desk, "createTicket", None),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let (code, _) = tickets(
        &["service", "selectModel"],
        &service_env(&url, &desk, "createTicket", Some("priorities")),
    )
    .await;
    assert_eq!(code, 0);

    let results = platform.lock().unwrap().results.clone();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0],
        json!({"status": "success", "data": {"support": "Support", "billing": "Billing"}})
    );
    assert_eq!(results[1]["status"], "success");
    assert_eq!(
        results[1]["data"]["in"]["properties"]["queue"]["enum"],
        json!(["support", "billing"])
    );
    assert_eq!(
        results[2],
        json!({"status": "error", "data": {"message":
            "Method \"priorities\" is not found in \"createTicket\" action or trigger"}})
    );
}

#[tokio::test]
async fn service_mode_without_a_result_url_is_unusable() {
    let desk = Desk::start(vec![]).await;
    let mut env = service_env("http://127.0.0.1:1", &desk, "createTicket", None);
    env.retain(|(name, _)| name != "ELASTICIO_POST_RESULT_URL");
    let (code, stderr) = tickets(&["service", "getMetaModel"], &env).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("ELASTICIO_POST_RESULT_URL is not provided"),
        "{stderr}"
    );
}

#[tokio::test]
async fn startup_stores_the_subscription_and_shutdown_removes_it() {
    let bed = Bed::new().await;
    let desk = Desk::start(vec![json!({"id": "T-1", "title": "t", "updated": 1})]).await;
    let (url, platform) = platform(true, json!({"config": desk.config(API_KEY)})).await;
    let mut vars = bed.vars("newTickets", &desk.config(API_KEY));
    vars.extend([
        ("ELASTICIO_API_URI".to_owned(), url.clone()),
        ("ELASTICIO_API_USERNAME".to_owned(), "task-user".to_owned()),
        (
            "ELASTICIO_API_KEY".to_owned(),
            "task-key-0123456789".to_owned(),
        ),
        ("ELASTICIO_STARTUP_REQUIRED".to_owned(), "true".to_owned()),
    ]);
    // The flow starts: the worker runs startup (the desk subscription), stores its result
    // (409, so DELETE and POST again), then consumes. One message shows it is consuming.
    bed.send(&json!({}), sailor::crypto::Encoding::Base64, "m-1")
        .await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = bed::spawn_binary_worker_logging_to(
        std::path::Path::new(env!("CARGO_BIN_EXE_tickets")),
        &vars,
        log.path(),
    );
    let events = bed.collect(2, Duration::from_secs(20)).await;
    worker.kill().await.unwrap();
    assert_eq!(bed::routing_keys(&events), ["data", "snapshot"]);
    assert_eq!(
        desk.subscribed(),
        1,
        "{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    {
        let platform = platform.lock().unwrap();
        assert_eq!(platform.requests, ["POST", "DELETE", "POST"]);
        assert_eq!(platform.data, Some(json!({"subscription": "S-1"})));
    }

    // The flow stops: `worker` with ELASTICIO_HOOK_SHUTDOWN and only what sailor-nodejs asks
    // for then (identity, function, platform API; no AMQP).
    let shutdown_env: Vec<(String, String)> = vars
        .iter()
        .filter(|(name, _)| {
            name.starts_with("ELASTICIO_API_")
                || name.ends_with("_ID")
                || name == "ELASTICIO_FUNCTION"
                || name == "ELASTICIO_CFG"
        })
        .cloned()
        .chain([("ELASTICIO_HOOK_SHUTDOWN".to_owned(), "1".to_owned())])
        .collect();
    let (code, stderr) = tickets(&["worker"], &shutdown_env).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(desk.subscriptions(), []);
    {
        let platform = platform.lock().unwrap();
        assert_eq!(
            platform.requests,
            ["POST", "DELETE", "POST", "GET", "DELETE"]
        );
        assert_eq!(platform.data, None);
    }
    bed.cleanup().await;
}
