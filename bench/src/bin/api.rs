//! `bench-api`: the loopback API of the benchmark, on 127.0.0.1 (port from the first argument,
//! 0 by default). It prints `http://127.0.0.1:PORT` on stdout once it listens.
//!
//! - `POST /echo` with `Authorization: Bearer <bench::ACCESS_TOKEN>` answers 200 with the
//!   request's body as `application/json` (401 for another token);
//! - `GET /v1/tasks/{flow}/steps/{step}` answers the step as elastic.io's platform API does,
//!   `{id, config, snapshot, is_passthrough}`: a `request` config that POSTs to `/echo` here,
//!   with a token set good for an hour and `_account` = the flow id.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let expected = format!("Bearer {}", bench::ACCESS_TOKEN);
    if headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn step(State(base): State<String>, Path((flow, step)): Path<(String, String)>) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs();
    let config = json!({
        "oauth": {
            "access_token": bench::ACCESS_TOKEN,
            "refresh_token": "bench-refresh-token-0123456789",
            "token_type": "Bearer",
            "expires_in": 3600,
            "expires_at": now + 3600,
        },
        "client_id": "bench-client",
        "client_secret": "bench-client-secret",
        "token_uri": format!("{base}/token"),
        "api_base_url": base,
        "method": "POST",
        "path": bench::ECHO_PATH,
        "_account": flow,
    });
    let json = json!({"id": step, "config": config, "snapshot": {}, "is_passthrough": false, "variables": {}});
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route(bench::ECHO_PATH, post(echo))
        .route("/v1/tasks/{flow}/steps/{step}", get(step))
        .with_state(base.clone());
    println!("{base}");
    axum::serve(listener, app).await?;
    Ok(())
}
