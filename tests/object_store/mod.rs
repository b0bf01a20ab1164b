//! A loopback stand-in for elastic.io's object storage (maester), shared by the worker tests
//! and the interop harness: `POST /objects` keeps the request body as sent and answers
//! `{"objectId"}`, `GET /objects/{id}` gives it back; both want `Authorization: Bearer
//! {TOKEN}`, and every request is recorded. It stores bytes as they come: encrypting them is
//! the client's business, which is what the tests check.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

/// The bearer token the stand-in accepts.
pub const TOKEN: &str = "storage-t0ken-s3cr3t";

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: &'static str,
    pub path: String,
    pub authorization: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Clone, Default)]
pub struct ObjectStore {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests still to be answered 503, whatever they ask.
    failing: Arc<AtomicUsize>,
}

impl ObjectStore {
    /// Serves on a loopback port; returns the base URL.
    pub async fn serve(&self) -> String {
        let app = axum::Router::new()
            .route("/objects", axum::routing::post(add))
            .route("/objects/{id}", axum::routing::get(get_one))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// Stores `bytes` as the object `id`, as if a client had.
    pub fn put(&self, id: &str, bytes: Vec<u8>) {
        self.objects.lock().unwrap().insert(id.to_owned(), bytes);
    }

    /// The bytes stored as `id`.
    pub fn get(&self, id: &str) -> Option<Vec<u8>> {
        self.objects.lock().unwrap().get(id).cloned()
    }

    /// Answers the next `n` requests 503 Service Unavailable (they are recorded all the same).
    pub fn fail_next(&self, n: usize) {
        self.failing.store(n, Ordering::SeqCst);
    }

    /// Takes one of the failures [`Self::fail_next`] asked for, if any are left.
    fn failing_now(&self) -> bool {
        self.failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many `method` requests came.
    pub fn count(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }

    fn record(&self, method: &'static str, path: String, headers: &HeaderMap) -> bool {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let seen = Seen {
            method,
            path,
            authorization: get("authorization"),
            request_id: get("x-request-id"),
            content_type: get("content-type"),
        };
        let authorized = seen.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
        self.seen.lock().unwrap().push(seen);
        authorized
    }
}

async fn add(
    State(store): State<ObjectStore>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if !store.record("POST", "/objects".into(), &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if store.failing_now() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let id = uuid::Uuid::new_v4().to_string();
    store.put(&id, body.to_vec());
    axum::Json(json!({"objectId": id, "contentType": "application/json"})).into_response()
}

async fn get_one(
    State(store): State<ObjectStore>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> impl IntoResponse {
    if !store.record("GET", format!("/objects/{id}"), &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if store.failing_now() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match store.get(&id) {
        Some(bytes) => (StatusCode::OK, bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
