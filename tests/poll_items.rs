//! `pollItems` against the sandbox API: pagination modes, token expiry mid-pagination, and
//! the high-water mark across polls.

mod common;

use common::*;
use sailor::event::{Event, EventKind};
use sailor::step::{Outcome, Step};
use sandbox::{GrantState, Sandbox};
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

    let config = sailor::StepConfig::from_value(json!({
        "oauth": {"access_token": "secret-token", "token_type": "Bearer"},
        "api_base_url": api_url,
        "path": "/items",
        "items_pointer": "/items",
        "pagination": "link",
    }))
    .unwrap();
    let step = sailor::step::Step::new(
        &component::registry(),
        "pollItems",
        config,
        sailor::clock::system(),
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

/// A loopback list API: `GET /items?since=&page=&per_page=` answering
/// `{"items": [...], "has_more": bool}`, sorted by `updated_at` oldest or newest first (ties
/// in the order they were added), `since` inclusive. It takes any bearer token.
struct ListApi {
    url: String,
    items: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl ListApi {
    async fn start(newest_first: bool) -> Self {
        use axum::extract::{Query, State};
        use std::collections::HashMap;

        let items: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route(
                "/items",
                axum::routing::get(
                    move |State(items): State<std::sync::Arc<std::sync::Mutex<Vec<Value>>>>,
                          Query(query): Query<HashMap<String, String>>| async move {
                        let stamp = |item: &Value| item["updated_at"].as_str().unwrap().to_owned();
                        let mut list = items.lock().unwrap().clone();
                        if let Some(since) = query.get("since") {
                            list.retain(|item| stamp(item) >= *since);
                        }
                        list.sort_by(|a, b| {
                            let order = stamp(a).cmp(&stamp(b));
                            if newest_first { order.reverse() } else { order }
                        });
                        let per_page: usize = query["per_page"].parse().unwrap();
                        let page: usize = query["page"].parse().unwrap();
                        let start = (page - 1) * per_page;
                        let page: Vec<Value> =
                            list.iter().skip(start).take(per_page).cloned().collect();
                        let has_more = start + page.len() < list.len();
                        axum::Json(json!({"items": page, "has_more": has_more}))
                    },
                ),
            )
            .with_state(items.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, items }
    }

    fn add(&self, items: Vec<Value>) {
        self.items.lock().unwrap().extend(items);
    }

    /// A `pollItems` step over this API, paged as [`paged`] says with `extra` on top.
    fn step(&self, extra: Value) -> Step {
        let mut config = paged(extra);
        config["oauth"] = json!({"access_token": "list-api-token"});
        config["api_base_url"] = json!(self.url);
        let config = sailor::StepConfig::from_value(config).unwrap();
        Step::new(
            &component::registry(),
            "pollItems",
            config,
            sailor::clock::system(),
        )
        .unwrap()
    }
}

/// Polls `step` from `snapshot` until a poll emits nothing (at most 20 polls), calling
/// `between` after each poll with its number; returns the ids each poll emitted and the last
/// snapshot.
async fn drain(
    step: &Step,
    mut snapshot: Value,
    mut between: impl FnMut(usize),
) -> (Vec<Vec<String>>, Value) {
    let mut polls = Vec::new();
    for number in 1..=20 {
        let (outcome, events) = poll(step, &snapshot).await;
        assert_eq!(outcome, Outcome::Completed, "{events:?}");
        snapshot = last_snapshot(&events).expect("every poll emits its snapshot");
        let emitted = ids(&events);
        let done = emitted.is_empty();
        polls.push(emitted);
        if done {
            return (polls, snapshot);
        }
        between(number);
    }
    panic!("20 polls did not drain the list: {polls:?}");
}

/// Every id emitted over `polls`, each exactly once: the sorted list, checked for duplicates.
fn each_once(polls: &[Vec<String>]) -> Vec<String> {
    let mut all: Vec<String> = polls.iter().flatten().cloned().collect();
    all.sort();
    let count = all.len();
    all.dedup();
    assert_eq!(all.len(), count, "an item was emitted twice: {polls:?}");
    all
}

fn id_list(numbers: &[usize]) -> Vec<String> {
    numbers.iter().map(|i| format!("item-{i:02}")).collect()
}

#[tokio::test]
async fn newest_first_with_more_pages_than_max_pages_emits_every_item_exactly_once_over_polls() {
    let api = ListApi::start(true).await;
    let all = distinct_items(29);
    api.add(all[..25].to_vec());
    let step = api.step(json!({"page_size": 3, "max_pages": 2}));

    // Four newer items arrive after the second poll, while the backlog is still draining.
    let (polls, snapshot) = drain(&step, json!({}), |number| {
        if number == 2 {
            api.add(all[25..].to_vec());
        }
    })
    .await;

    assert_eq!(
        polls,
        vec![
            id_list(&[25, 24, 23, 22, 21, 20]),
            id_list(&[19, 18, 17, 16, 15, 14]),
            id_list(&[29, 28, 27, 26]),
            id_list(&[13, 12, 11, 10, 9]),
            id_list(&[8, 7, 6, 5, 4, 3]),
            id_list(&[2, 1]),
            vec![],
        ]
    );
    assert_eq!(each_once(&polls), expected_ids(1..=29));
    assert_eq!(
        snapshot,
        json!({"since": "2026-01-01T00:00:29Z", "ids_at_since": ["item-29"]})
    );
}

#[tokio::test]
async fn items_sharing_one_timestamp_beyond_max_pages_progress_over_polls_none_lost_or_twice() {
    for newest_first in [false, true] {
        let api = ListApi::start(newest_first).await;
        // item-01 at t1, item-02..item-21 all at t5, item-22 at t9.
        let mut stamps = vec!["t1"];
        stamps.extend(["t5"; 20]);
        stamps.push("t9");
        api.add(items(&stamps));
        let step = api.step(json!({"page_size": 3, "max_pages": 2}));

        let (polls, snapshot) = drain(&step, json!({}), |_| {}).await;

        let expected = if newest_first {
            vec![
                id_list(&[22, 2, 3, 4, 5, 6]),
                id_list(&[7, 8, 9, 10, 11, 12]),
                id_list(&[13, 14, 15, 16, 17, 18]),
                id_list(&[19, 20, 21, 1]),
                vec![],
            ]
        } else {
            vec![
                id_list(&[1, 2, 3, 4, 5, 6]),
                id_list(&[7, 8, 9, 10]),
                id_list(&[11, 12, 13, 14, 15, 16]),
                id_list(&[17, 18, 19, 20, 21, 22]),
                vec![],
            ]
        };
        assert_eq!(polls, expected, "newest first: {newest_first}");
        assert_eq!(each_once(&polls), expected_ids(1..=22));
        assert_eq!(
            snapshot,
            json!({"since": "t9", "ids_at_since": ["item-22"]})
        );
    }
}
