//! `pollItems` against the sandbox API: pagination modes, token expiry mid-pagination, and
//! the high-water mark across polls.

mod common;

use common::*;
use component::event::{Event, EventKind};
use component::sandbox::{GrantState, Sandbox};
use component::step::{Outcome, Step};
use serde_json::{Value, json};

/// A `pollItems` step over `sandbox` with a valid grant and the paged fields below, `extra`
/// overriding them: every test here starts from the same paged API and changes one knob.
fn poll_step(sandbox: &Sandbox, extra: Value) -> Step {
    step(sandbox, "pollItems", GrantState::Valid, paged(extra))
}

/// One poll of `step` from `snapshot`: `pollItems` reads no message body, so it gets an empty one.
async fn poll(step: &Step, snapshot: &Value) -> (Outcome, Vec<Event>) {
    run(step, json!({}), snapshot).await
}

/// Polls a sandbox holding `n` items once with `extra` fields, checks the poll completed with
/// every item in order, and returns the traffic: the pagination-mode tests differ only in
/// how the pages were asked for.
async fn poll_all_of(n: usize, extra: Value) -> Vec<String> {
    let sandbox = sandbox().await;
    sandbox.set_items(distinct_items(n));
    let step = poll_step(&sandbox, extra);
    let (outcome, events) = poll(&step, &json!({})).await;
    assert_eq!(outcome, Outcome::Completed, "{events:?}");
    assert_eq!(ids(&events), expected_ids(1..=n));
    traffic(&sandbox)
}

/// The fields of a page-numbered `/items` API with a `has_more` flag, `extra` overriding them.
fn paged(extra: Value) -> Value {
    let mut fields = json!({
        "path": "/items",
        "items_pointer": "/items",
        "modified_field": "updated_at",
        "since_param": "since",
        "pagination": "page",
        "page_size": 5,
        "has_more_pointer": "/has_more",
    });
    fields
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    fields
}

#[tokio::test]
async fn a_poll_across_three_pages_survives_a_token_expiry_mid_pagination() {
    let sandbox = sandbox().await;
    sandbox.set_items(distinct_items(12));
    let step = poll_step(&sandbox, json!({}));
    let original_refresh_token = step
        .config()
        .oauth
        .as_ref()
        .unwrap()
        .refresh_token()
        .unwrap()
        .expose_secret()
        .to_owned();
    sandbox.expire_access_tokens_after(1);

    let (outcome, events) = poll(&step, &json!({})).await;

    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(ids(&events), expected_ids(1..=12));
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(count(&events, EventKind::UpdateKeys), 1);
    assert_eq!(sandbox.api_rejections(), 1);
    assert_eq!(sandbox.api_calls(), 4);
    assert_eq!(
        traffic(&sandbox),
        vec![
            "GET /api/items?per_page=5&page=1 200",
            "GET /api/items?per_page=5&page=2 401",
            "POST /oauth/token 200",
            "GET /api/items?per_page=5&page=2 200",
            "GET /api/items?per_page=5&page=3 200",
        ]
    );
    let Some(Event::UpdateKeys(keys)) = events.iter().find(|e| e.kind() == EventKind::UpdateKeys)
    else {
        panic!("an updateKeys event");
    };
    let rotated = keys.expose_json()["oauth"]["refresh_token"]
        .as_str()
        .unwrap();
    assert_ne!(rotated, original_refresh_token);
    assert_eq!(events.last().map(Event::kind), Some(EventKind::Snapshot));
    assert_eq!(count(&events, EventKind::Snapshot), 1);
    assert_eq!(
        last_snapshot(&events),
        Some(json!({"since": "2026-01-01T00:00:12Z", "ids_at_since": ["item-12"]}))
    );
}

#[tokio::test]
async fn a_second_poll_with_the_snapshot_emits_nothing_new() {
    let sandbox = sandbox().await;
    sandbox.set_items(distinct_items(12));
    let step = poll_step(&sandbox, json!({}));
    let (_, first) = poll(&step, &json!({})).await;
    let snapshot = last_snapshot(&first).unwrap();

    let (outcome, second) = poll(&step, &snapshot).await;

    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(ids(&second), Vec::<String>::new());
    assert_eq!(second.len(), 1, "only the snapshot: {second:?}");
    assert_eq!(last_snapshot(&second), Some(snapshot));
    // The inclusive API sent the boundary item again; it was recognised, not re-emitted.
    assert_eq!(
        traffic(&sandbox).last().unwrap(),
        "GET /api/items?since=2026-01-01T00%3A00%3A12Z&per_page=5&page=1 200"
    );
}

#[tokio::test]
async fn items_sharing_the_timestamp_of_the_mark_are_emitted_once_each_across_polls() {
    let sandbox = sandbox().await;
    sandbox.set_items(items(&["t1", "t2", "t2"]));
    let step = poll_step(&sandbox, json!({}));
    let (_, first) = poll(&step, &json!({})).await;
    assert_eq!(ids(&first), expected_ids(1..=3));
    let snapshot = last_snapshot(&first).unwrap();
    assert_eq!(
        snapshot,
        json!({"since": "t2", "ids_at_since": ["item-02", "item-03"]})
    );

    // A late item with the very same timestamp, and a newer one.
    let mut all = items(&["t1", "t2", "t2"]);
    all.extend(items_from(4, &["t2", "t3"]));
    sandbox.set_items(all);
    let (_, second) = poll(&step, &snapshot).await;
    assert_eq!(ids(&second), vec!["item-04", "item-05"]);
    let snapshot = last_snapshot(&second).unwrap();
    assert_eq!(
        snapshot,
        json!({"since": "t3", "ids_at_since": ["item-05"]})
    );

    let (_, third) = poll(&step, &snapshot).await;
    assert_eq!(ids(&third), Vec::<String>::new());
}

#[tokio::test]
async fn items_sharing_a_timestamp_across_page_boundaries_are_all_emitted_once() {
    let sandbox = sandbox().await;
    sandbox.set_items(items(&["t1", "t1", "t1", "t1", "t1", "t2"]));
    let step = poll_step(&sandbox, json!({"page_size": 2}));
    let (_, events) = poll(&step, &json!({})).await;
    assert_eq!(ids(&events), expected_ids(1..=6));
    assert_eq!(sandbox.api_calls(), 3);

    // The mark now sits on the last item; with a page boundary inside a run of equal
    // stamps, a second poll still emits nothing.
    sandbox.set_items(items(&["t1", "t1", "t1", "t1", "t2", "t2"]));
    let step = poll_step(&sandbox, json!({"page_size": 1}));
    let (_, first) = poll(&step, &json!({})).await;
    let snapshot = last_snapshot(&first).unwrap();
    assert_eq!(
        snapshot,
        json!({"since": "t2", "ids_at_since": ["item-05", "item-06"]})
    );
    let (_, again) = poll(&step, &snapshot).await;
    assert_eq!(ids(&again), Vec::<String>::new());
}

#[tokio::test]
async fn page_mode_without_a_has_more_flag_stops_at_the_first_empty_page() {
    let traffic = poll_all_of(
        7,
        json!({"has_more_pointer": "", "page_size": "3", "page_size_param": "per_page", "page_param": "page"}),
    )
    .await;
    assert_eq!(
        traffic,
        vec![
            "GET /api/items?per_page=3&page=1 200",
            "GET /api/items?per_page=3&page=2 200",
            "GET /api/items?per_page=3&page=3 200",
            "GET /api/items?per_page=3&page=4 200",
        ]
    );
}

#[tokio::test]
async fn link_mode_follows_the_relative_rel_next_link_among_several() {
    let traffic = poll_all_of(10, json!({"pagination": "link", "page_size": 4})).await;
    assert_eq!(
        traffic,
        vec![
            "GET /api/items?per_page=4 200",
            "GET /api/items?per_page=4&page=2 200",
            "GET /api/items?per_page=4&page=3 200",
        ]
    );
}

#[tokio::test]
async fn cursor_mode_sends_the_next_cursor_from_the_body() {
    let traffic = poll_all_of(
        10,
        json!({"pagination": "cursor", "page_size": 4, "cursor_pointer": "/next_cursor", "cursor_param": "cursor", "has_more_pointer": ""}),
    )
    .await;
    assert_eq!(
        traffic,
        vec![
            "GET /api/items?per_page=4 200",
            "GET /api/items?per_page=4&cursor=4 200",
            "GET /api/items?per_page=4&cursor=8 200",
        ]
    );
}

#[tokio::test]
async fn the_page_bound_ends_a_poll_and_the_next_poll_continues_from_the_mark() {
    let sandbox = sandbox().await;
    sandbox.set_items(distinct_items(12));
    let step = poll_step(&sandbox, json!({"max_pages": 2}));
    let (_, first) = poll(&step, &json!({})).await;
    assert_eq!(ids(&first), expected_ids(1..=10));
    assert_eq!(sandbox.api_calls(), 2);
    let (_, second) = poll(&step, &last_snapshot(&first).unwrap()).await;
    assert_eq!(ids(&second), expected_ids(11..=12));
}

#[tokio::test]
async fn a_bad_config_fails_with_an_error_naming_the_field_before_any_call() {
    let sandbox = sandbox().await;
    let step = poll_step(&sandbox, json!({"pagination": "pages"}));
    let (outcome, events) = poll(&step, &json!({})).await;
    let Outcome::Failed { report, .. } = outcome else {
        panic!("the poll fails");
    };
    assert_eq!(report.name, "ConfigurationError");
    assert_eq!(
        report.message,
        "the step config is invalid: `pagination` must be one of none, page, link, cursor; got `pages`"
    );
    assert_eq!(events.len(), 1);
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn an_api_error_names_the_status_and_emits_no_snapshot() {
    let sandbox = sandbox().await;
    sandbox.set_items(distinct_items(3));
    let step = poll_step(&sandbox, json!({}));
    sandbox.fail_api_calls(&[500]);
    let (outcome, events) = poll(&step, &json!({})).await;
    let Outcome::Failed { report, .. } = outcome else {
        panic!("the poll fails");
    };
    assert_eq!(
        report.message,
        r#"the API answered HTTP 500: {"error":"Internal Server Error"}"#
    );
    assert_eq!(count(&events, EventKind::Snapshot), 0);
    assert_eq!(count(&events, EventKind::Error), 1);
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed_with_the_token() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Another origin that counts who calls it.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}", elsewhere.local_addr().unwrap());
    let router = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::Json(json!({"items": []})) }
    });
    tokio::spawn(async move { axum::serve(elsewhere, router).await });

    // An API whose next link points there.
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", api.local_addr().unwrap());
    let link = format!("<{elsewhere_url}/collect?page=2>; rel=\"next\"");
    let router = axum::Router::new().route(
        "/items",
        axum::routing::get(move || async move {
            (
                [(axum::http::header::LINK, link)],
                axum::Json(json!({"items": [{"id": "a", "updated_at": "t1"}]})),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(api, router).await });

    let config = component::StepConfig::from_value(json!({
        "oauth": {"access_token": "secret-token", "token_type": "Bearer"},
        "api_base_url": api_url,
        "path": "/items",
        "items_pointer": "/items",
        "pagination": "link",
    }))
    .unwrap();
    let step = component::step::Step::new(
        &component::Registry::builtin(),
        "pollItems",
        config,
        component::clock::system(),
    )
    .unwrap();
    let (outcome, events) = poll(&step, &json!({})).await;
    let Outcome::Failed { report, .. } = outcome else {
        panic!("the poll refuses the link");
    };
    assert_eq!(
        report.message,
        format!(
            "the API answered HTTP 200: the next-page link leads to another origin ({elsewhere_url}); the access token is not sent there"
        )
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(ids(&events), vec!["a"]);
    assert_eq!(count(&events, EventKind::Snapshot), 0);
}
