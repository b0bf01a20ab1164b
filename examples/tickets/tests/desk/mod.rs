//! A ticket desk on loopback for the example's tests: `GET /tickets` and `POST /tickets`
//! behind an API key, counting every call.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The key the desk accepts.
pub const API_KEY: &str = "desk-key-0123456789";

/// What the desk holds and has seen.
#[derive(Default)]
pub struct Ledger {
    /// The tickets `GET /tickets` lists.
    pub tickets: Vec<Value>,
    /// Every ticket posted, as received.
    pub created: Vec<Value>,
    /// Every `since` and `limit` query value, in order.
    pub queries: Vec<String>,
    /// Calls refused for a missing or wrong key.
    pub refused: usize,
    /// Subscriptions open now, by id, with what was posted.
    pub subscriptions: Vec<(String, Value)>,
    /// Every subscription ever opened.
    pub subscribed: usize,
}

/// A running desk.
#[derive(Clone)]
pub struct Desk {
    pub url: String,
    pub ledger: Arc<Mutex<Ledger>>,
}

impl Desk {
    /// Starts a desk listing `tickets`.
    pub async fn start(tickets: Vec<Value>) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger {
            tickets,
            ..Ledger::default()
        }));
        let app = Router::new()
            .route("/api/tickets", get(list).post(create))
            .route("/api/queues", get(queues))
            .route("/api/subscriptions", axum::routing::post(subscribe))
            .route(
                "/api/subscriptions/{id}",
                axum::routing::delete(unsubscribe),
            )
            .with_state(ledger.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, ledger }
    }

    /// The step config for the desk with `api_key`.
    pub fn config(&self, api_key: &str) -> Value {
        json!({"desk_url": self.url, "api_key": api_key})
    }

    pub fn created(&self) -> Vec<Value> {
        self.ledger.lock().unwrap().created.clone()
    }

    pub fn queries(&self) -> Vec<String> {
        self.ledger.lock().unwrap().queries.clone()
    }

    pub fn refused(&self) -> usize {
        self.ledger.lock().unwrap().refused
    }

    /// The subscriptions open now.
    pub fn subscriptions(&self) -> Vec<(String, Value)> {
        self.ledger.lock().unwrap().subscriptions.clone()
    }

    pub fn subscribed(&self) -> usize {
        self.ledger.lock().unwrap().subscribed
    }
}

fn authorised(ledger: &Mutex<Ledger>, headers: &HeaderMap) -> bool {
    let ok = headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY);
    if !ok {
        ledger.lock().unwrap().refused += 1;
    }
    ok
}

async fn list(
    State(ledger): State<Arc<Mutex<Ledger>>>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> impl IntoResponse {
    if !authorised(&ledger, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let mut ledger = ledger.lock().unwrap();
    ledger.queries.push(query.unwrap_or_default());
    (StatusCode::OK, Json(Value::Array(ledger.tickets.clone())))
}

async fn create(
    State(ledger): State<Arc<Mutex<Ledger>>>,
    headers: HeaderMap,
    Json(ticket): Json<Value>,
) -> impl IntoResponse {
    if !authorised(&ledger, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let mut ledger = ledger.lock().unwrap();
    ledger.created.push(ticket.clone());
    let mut answer = ticket;
    answer["id"] = json!(format!("T-{}", ledger.created.len()));
    (StatusCode::CREATED, Json(answer))
}

async fn queues(State(ledger): State<Arc<Mutex<Ledger>>>, headers: HeaderMap) -> impl IntoResponse {
    if !authorised(&ledger, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    (
        StatusCode::OK,
        Json(json!([{"id": "support", "name": "Support"}, {"id": "billing", "name": "Billing"}])),
    )
}

async fn subscribe(
    State(ledger): State<Arc<Mutex<Ledger>>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> impl IntoResponse {
    if !authorised(&ledger, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let mut ledger = ledger.lock().unwrap();
    ledger.subscribed += 1;
    let id = format!("S-{}", ledger.subscribed);
    ledger.subscriptions.push((id.clone(), request));
    (StatusCode::CREATED, Json(json!({"id": id})))
}

async fn unsubscribe(
    State(ledger): State<Arc<Mutex<Ledger>>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> impl IntoResponse {
    if !authorised(&ledger, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let mut ledger = ledger.lock().unwrap();
    let before = ledger.subscriptions.len();
    ledger.subscriptions.retain(|(open, _)| *open != id);
    let status = if ledger.subscriptions.len() < before {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Json(json!({})))
}

/// Writes `value` as JSON to `dir/name`.
pub fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}
