//! Rotated keys to the platform API (`PUT /v1/accounts/{id}`), through the real worker on
//! RabbitMQ, against a loopback stand-in for the platform API.

mod bed;
mod platform_api;

use std::time::Duration;

use bed::{Bed, Provider, decrypt, request_config, routing_keys, start};
use platform_api::PlatformApi;
use serde_json::json;

/// The worker's environment for `request` with an expired token set and the platform API at
/// `api`, plus `extra`.
fn vars(bed: &Bed, provider: &str, api: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = bed.vars("request", &request_config(provider, true));
    vars.extend(PlatformApi::vars(api));
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

/// What every test here starts from: the OAuth2 provider, the platform-API stand-in (its
/// first answers `statuses`, then 200) and a bed with the inputs `{"n": n}` for each of `ns`
/// queued.
struct Setup {
    provider: Provider,
    base: String,
    api: PlatformApi,
    api_base: String,
    bed: Bed,
}

impl Setup {
    async fn new(statuses: &[u16], ns: impl IntoIterator<Item = u64>) -> Self {
        let provider = Provider::default();
        let base = provider.serve().await;
        let api = PlatformApi::default();
        if !statuses.is_empty() {
            api.answer_with(statuses);
        }
        let api_base = api.serve().await;
        let bed = Bed::new().await;
        bed.send_numbered(ns, |n| json!({ "n": n })).await;
        Self {
            provider,
            base,
            api,
            api_base,
            bed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_configured_keys_go_to_the_api_and_the_broker_by_default() {
    let Setup {
        provider: _provider,
        base,
        api,
        api_base,
        bed,
    } = Setup::new(&[], [1]).await;
    // A trailing slash on the API URI is dropped, as sailor-nodejs' client does.
    let worker = start(
        vars(&bed, &base, &format!("{api_base}/"), &[]),
        component::registry(),
    );
    let events = bed.collect(2, Duration::from_secs(20)).await;
    worker.stop().await;

    assert_eq!(routing_keys(&events), ["keys", "data"]);
    let puts = api.puts();
    assert_eq!(puts.len(), 1, "{puts:?}");
    let put = &puts[0];
    assert_eq!(put.account, "account-1");
    assert_eq!(
        put.authorization.as_deref(),
        Some(PlatformApi::expected_authorization().as_str())
    );
    assert_eq!(put.content_type.as_deref(), Some("application/json"));
    let mut body = put.body.clone();
    assert!(
        body["keys"]["oauth"]
            .as_object_mut()
            .unwrap()
            .remove("expires_at")
            .is_some()
    );
    assert_eq!(
        body,
        json!({"keys": {"oauth": {
            "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600,
            "token_type": "Bearer", "scope": "items.read", "instance_url": "https://eu.example"
        }}}),
        "sailor-nodejs' body: {{keys: <what updateKeys carries>}}"
    );
    assert_eq!(
        decrypt(&events[0]),
        put.body["keys"],
        "the same keys on both ways"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_answered_500_then_200_delivers_the_keys_once_and_loses_nothing() {
    let Setup {
        provider,
        base,
        api,
        api_base,
        bed,
    } = Setup::new(&[500], [1, 2]).await;
    let worker = start(vars(&bed, &base, &api_base, &[]), component::registry());
    let events = bed.collect(3, Duration::from_secs(20)).await;
    worker.stop().await;

    assert_eq!(routing_keys(&events), ["keys", "data", "data"]);
    let statuses: Vec<u16> = api.puts().iter().map(|p| p.status).collect();
    assert_eq!(statuses, [500, 200], "one retry, then no more PUTs");
    assert_eq!(api.refresh_tokens(), ["rt-1", "rt-1"]);
    assert_eq!(provider.state().refreshes, 1);
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_api_kept_refusing_are_put_before_newer_ones_and_never_lost() {
    // Two attempts per delivery of the keys: the first refresh's keys fail both.
    let Setup {
        provider,
        base,
        api,
        api_base,
        bed,
    } = Setup::new(&[503, 503], [1]).await;
    let worker = start(
        vars(
            &bed,
            &base,
            &api_base,
            &[("ELASTICIO_API_REQUEST_RETRY_ATTEMPTS", "2")],
        ),
        component::registry(),
    );
    let first = bed.collect(3, Duration::from_secs(20)).await;
    assert_eq!(
        routing_keys(&first),
        ["keys", "error", "dead"],
        "a refresh is complete only once the API has the keys too"
    );
    assert_eq!(api.refresh_tokens(), ["rt-1", "rt-1"]);

    // The next message's call sends the pending keys first, then its own refresh's.
    provider.state().access_expired = true;
    bed.send_numbered([2], |n| json!({ "n": n })).await;
    let second = bed.collect(2, Duration::from_secs(20)).await;
    worker.stop().await;

    assert_eq!(
        routing_keys(&second),
        ["keys", "data"],
        "the broker got rt-1 once already: only rt-2 goes there"
    );
    assert_eq!(decrypt(&second[0])["oauth"]["refresh_token"], "rt-2");
    let statuses: Vec<u16> = api.puts().iter().map(|p| p.status).collect();
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(
        api.refresh_tokens(),
        ["rt-1", "rt-1", "rt-1", "rt-2"],
        "in generation order: the newest keys last"
    );
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_api_refused_are_put_at_shutdown() {
    let Setup {
        provider: _provider,
        base,
        api,
        api_base,
        bed,
    } = Setup::new(&[503], [1]).await;
    let worker = start(
        vars(
            &bed,
            &base,
            &api_base,
            &[
                ("ELASTICIO_API_REQUEST_RETRY_ATTEMPTS", "1"),
                ("COMPONENT_KEYS_DESTINATION", "api"),
            ],
        ),
        component::registry(),
    );
    let events = bed.collect(2, Duration::from_secs(20)).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    assert_eq!(api.puts().len(), 1);
    worker.stop().await;
    let statuses: Vec<u16> = api.puts().iter().map(|p| p.status).collect();
    assert_eq!(statuses, [503, 200], "flushed once more at shutdown");
    assert_eq!(api.refresh_tokens(), ["rt-1", "rt-1"]);
    bed.cleanup().await;
}

/// Runs one message with `COMPONENT_KEYS_DESTINATION=destination`; returns the routing keys
/// of what was published and the refresh tokens PUT to the API.
async fn with_destination(destination: &str, events: usize) -> (Vec<String>, Vec<String>) {
    let Setup {
        provider: _provider,
        base,
        api,
        api_base,
        bed,
    } = Setup::new(&[], [1]).await;
    let worker = start(
        vars(
            &bed,
            &base,
            &api_base,
            &[("COMPONENT_KEYS_DESTINATION", destination)],
        ),
        component::registry(),
    );
    let published = bed.collect(events, Duration::from_secs(20)).await;
    worker.stop().await;
    bed.cleanup().await;
    (routing_keys(&published), api.refresh_tokens())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_only_sends_no_update_keys_message() {
    let (published, put) = with_destination("api", 1).await;
    assert_eq!(
        (published, put),
        (vec!["data".to_owned()], vec!["rt-1".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_only_sends_no_put() {
    let (published, put) = with_destination("amqp", 2).await;
    assert_eq!(published, ["keys", "data"]);
    assert!(put.is_empty(), "{put:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_account_the_keys_go_to_the_broker_only_and_api_mode_refuses_to_start() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let api = PlatformApi::default();
    let api_base = api.serve().await;
    let bed = Bed::new().await;
    let mut config = request_config(&base, true);
    config.as_object_mut().unwrap().remove("_account");
    let mut env = bed.vars("request", &config);
    env.extend(PlatformApi::vars(&api_base));
    env.push(("COMPONENT_KEYS_DESTINATION".into(), "api".into()));
    let error = start(env, component::registry())
        .finished()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`_account`"), "{error}");

    bed.send_numbered([1], |n| json!({ "n": n })).await;
    let mut env = bed.vars("request", &config);
    env.extend(PlatformApi::vars(&api_base));
    let worker = start(env, component::registry());
    // The start-up error of the first worker, then the second's keys and data.
    let events = bed.collect(3, Duration::from_secs(20)).await;
    worker.stop().await;
    assert_eq!(routing_keys(&events), ["error", "keys", "data"]);
    assert_eq!(api.puts().len(), 0);
    bed.cleanup().await;
}
