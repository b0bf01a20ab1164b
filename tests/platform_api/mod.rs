//! A stand-in for the platform API's accounts endpoint on loopback: records every
//! `PUT /v1/accounts/{id}` and answers with the statuses a test scripts (200 once the script
//! is used up).

#![allow(dead_code, missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::put;
use serde_json::Value;

pub const API_USERNAME: &str = "api-user@example.com";
pub const API_KEY: &str = "platform-api-k3y";

/// One PUT as received.
#[derive(Clone, Debug)]
pub struct Put {
    pub account: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    pub status: u16,
}

#[derive(Clone, Default)]
pub struct PlatformApi {
    puts: Arc<Mutex<Vec<Put>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl PlatformApi {
    /// Serves on a loopback port; returns the base URL.
    pub async fn serve(&self) -> String {
        let app = axum::Router::new()
            .route("/v1/accounts/{id}", put(account))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// The next PUTs are answered with these statuses, in order.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    pub fn puts(&self) -> Vec<Put> {
        self.puts.lock().unwrap().clone()
    }

    /// The refresh token of each PUT's keys, in order.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.puts()
            .iter()
            .map(|put| {
                put.body["keys"]["oauth"]["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The API's variables for a process, with `base` as `ELASTICIO_API_URI`.
    pub fn vars(base: &str) -> Vec<(String, String)> {
        vec![
            ("ELASTICIO_API_URI".into(), base.to_owned()),
            ("ELASTICIO_API_USERNAME".into(), API_USERNAME.into()),
            ("ELASTICIO_API_KEY".into(), API_KEY.into()),
            ("ELASTICIO_API_REQUEST_RETRY_DELAY".into(), "50".into()),
        ]
    }

    /// The `Authorization` header the process must send.
    pub fn expected_authorization() -> String {
        use base64::Engine as _;
        let credentials = format!("{API_USERNAME}:{API_KEY}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }
}

async fn account(
    State(api): State<PlatformApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let status = api.script.lock().unwrap().pop_front().unwrap_or(200);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    api.puts.lock().unwrap().push(Put {
        account: id,
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        status,
    });
    StatusCode::from_u16(status).unwrap()
}
