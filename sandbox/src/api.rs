//! The sandbox's protected REST API under `/api`.
//!
//! - `GET /api/me`: the signed-in user (what `verify_credentials` calls).
//! - `GET /api/items`: the item list, sorted by `updated_at` (ties keep their order), filtered
//!   by `since` **inclusively** (items modified at or after it, as GitHub's and most
//!   "modified since" filters do), paged by `page`/`per_page` or `cursor`; every page says
//!   `has_more` and `next_cursor`, and all but the last carry an RFC 8288 `Link` header with
//!   `rel="first"` and `rel="next"` targets relative to the host.
//! - `GET /api/status/{code}`: answers with that status (429 and 503 with `Retry-After: 1`,
//!   or the `retry_after` query parameter's value; 204 and 304 with no body).
//! - `GET /api/report.csv`: a small `text/csv` body, for clients that must cope with non-JSON.
//! - any method under `/api/echo/`: echoes method, path, query, a few headers and JSON body.
//!
//! Every route first counts the call, then serves a scripted failure if one is queued, then
//! checks the bearer token: an unknown or expired one gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"`. A call that passes may expire every
//! access token behind it, when a test scripted that ([`super::Sandbox::expire_access_tokens_after`]).
//! Every exchange on the sandbox, token endpoint included, is kept in a traffic log of
//! method, path, query and status (never headers or bodies, which hold secrets).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
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
        .route("/api/report.csv", get(report))
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
        if let Some(left) = state.expire_after_api_calls.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                state.expire_after_api_calls = None;
                state.expire_all_access_tokens();
            }
        }
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

/// One exchange with the sandbox, as the traffic log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficRecord {
    /// When the answer was ready.
    pub at: Instant,
    /// The request method.
    pub method: String,
    /// The path, with the query when there was one.
    pub path_and_query: String,
    /// The status answered.
    pub status: u16,
}

/// Middleware over the whole sandbox: logs method, path, query and status of every exchange.
pub(super) async fn record_traffic(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    state
        .lock()
        .expect("sandbox lock")
        .traffic
        .push(TrafficRecord {
            at: Instant::now(),
            method,
            path_and_query,
            status: response.status().as_u16(),
        });
    response
}

fn status_response(status: u16) -> Response {
    status_response_with(status, None)
}

fn status_response_with(status: u16, retry_after: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if matches!(status, 204 | 304) {
        code.into_response()
    } else {
        (
            code,
            axum::Json(json!({"error": code.canonical_reason().unwrap_or("error")})),
        )
            .into_response()
    };
    if matches!(status, 429 | 503) {
        let value = retry_after
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| header::HeaderValue::from_static("1"));
        response.headers_mut().insert(header::RETRY_AFTER, value);
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
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    gate(&state, &headers)
        .unwrap_or_else(|| status_response_with(code, query.get("retry_after").map(String::as_str)))
}

async fn report(State(state): State<Shared>, headers: HeaderMap) -> Response {
    gate(&state, &headers).unwrap_or_else(|| {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            "id,name\n1,first\n",
        )
            .into_response()
    })
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
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "content_type": header(header::CONTENT_TYPE),
        "x_request_tag": headers.get("x-request-tag").and_then(|v| v.to_str().ok()),
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
        items.retain(|item| stamp(item) >= since.as_str());
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
        let target = |page: usize| {
            let mut pairs = pairs.clone();
            pairs.push(("page".into(), page.to_string()));
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            format!("{}?{query}", uri.path())
        };
        let link = format!(
            "<{}>; rel=\"first\", <{}>; rel=\"next\"",
            target(1),
            target(next_page)
        );
        if let Ok(value) = link.parse() {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

fn stamp(item: &Value) -> &str {
    item.get("updated_at").and_then(Value::as_str).unwrap_or("")
}
