//! The sandbox's protected REST API under `/api`.
//!
//! - `GET /api/me`: the signed-in user (what `verify_credentials` calls).
//! - `GET /api/items`: the item list, sorted by `updated_at`, filtered by `since`, paged by
//!   `page`/`per_page` or `cursor`; every page says `has_more` and `next_cursor` and carries
//!   an RFC 8288 `Link: rel="next"` header.
//! - `GET /api/status/{code}`: answers with that status (429 and 503 with `Retry-After: 1`).
//! - any method under `/api/echo/`: echoes method, path, query and JSON body.
//!
//! Every route first counts the call, then serves a scripted failure if one is queued, then
//! checks the bearer token: an unknown or expired one gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::state::ProviderState;

type Shared = Arc<Mutex<ProviderState>>;

/// Items per page when the client does not say.
const DEFAULT_PAGE_SIZE: usize = 10;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/items", get(items))
        .route("/api/status/{code}", get(status))
        .route("/api/echo/{*rest}", any(echo))
}

/// Counts the call, serves scripted failures, checks the bearer token: `Some` is the
/// rejection to send instead of the route's answer.
fn gate(state: &Shared, headers: &HeaderMap) -> Option<Response> {
    let mut state = state.lock().expect("sandbox lock");
    state.api_calls += 1;
    if let Some(status) = state.api_failures.pop_front() {
        return Some(status_response(status));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_some_and(|token| state.accepts(token)) {
        return None;
    }
    state.api_rejections += 1;
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="sandbox", error="invalid_token""#,
            )],
            axum::Json(json!({"error": "invalid_token"})),
        )
            .into_response(),
    )
}

fn status_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        code,
        axum::Json(json!({"error": code.canonical_reason().unwrap_or("error")})),
    )
        .into_response();
    if matches!(status, 429 | 503) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("valid header"));
    }
    response
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    gate(&state, &headers).unwrap_or_else(|| {
        axum::Json(json!({"id": "user-1", "name": "Sandbox User"})).into_response()
    })
}

async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(code): Path<u16>,
) -> Response {
    gate(&state, &headers).unwrap_or_else(|| status_response(code))
}

async fn echo(
    State(state): State<Shared>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(response) = gate(&state, &headers) {
        return response;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "body": body,
    }))
    .into_response()
}

async fn items(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = gate(&state, &headers) {
        return response;
    }
    let mut items: Vec<Value> = state.lock().expect("sandbox lock").items.clone();
    items.sort_by(|a, b| stamp(a).cmp(stamp(b)));
    if let Some(since) = query.get("since") {
        items.retain(|item| stamp(item) > since.as_str());
    }
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let start = match (query.get("cursor"), query.get("page")) {
        (Some(cursor), _) => cursor.parse::<usize>().unwrap_or(0),
        (None, Some(page)) => page.parse::<usize>().unwrap_or(1).saturating_sub(1) * per_page,
        (None, None) => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let end = start + page.len();
    let has_more = end < items.len();
    let mut response = axum::Json(json!({
        "items": page,
        "has_more": has_more,
        "next_cursor": if has_more { Value::from(end.to_string()) } else { Value::Null },
    }))
    .into_response();
    if has_more {
        let next_page = end / per_page + 1;
        let mut pairs: Vec<(String, String)> = query
            .into_iter()
            .filter(|(k, _)| k != "page" && k != "cursor")
            .collect();
        pairs.sort();
        pairs.push(("page".into(), next_page.to_string()));
        let next = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let link = format!("<{}?{next}>; rel=\"next\"", uri.path());
        if let Ok(value) = link.parse() {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

fn stamp(item: &Value) -> &str {
    item.get("updated_at").and_then(Value::as_str).unwrap_or("")
}
