//! The OAuth2 token lifecycle against the loopback sandbox provider: refresh on 401, single
//! flight, rotation, updateKeys, replay, permanent and transient token-endpoint failures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use sailor::auth::{RefreshError, RetryPolicy, TokenCache, TokenSet};
use sailor::clock;
use sailor::config::{StepConfig, TokenAuthMethod};
use sailor::emitter::{CollectingSink, EmitError, Emitter, EventSink};
use sailor::event::{Event, EventKind};
use sailor::http::{AuthClient, AuthError};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_wait: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
    }
}

/// A schedule like the default one, scaled down so that an outage lasts seconds.
fn outage_retry(max_wait: Duration) -> RetryPolicy {
    RetryPolicy {
        max_wait,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
    }
}

struct Harness {
    client: AuthClient,
    events: CollectingSink,
    grant: Value,
}

impl Harness {
    fn new(sandbox: &Sandbox, grant_state: GrantState, fields: Value) -> Self {
        let grant = sandbox.issue_grant(grant_state);
        Self::with_grant(sandbox, grant, fields)
    }

    fn with_grant(sandbox: &Sandbox, grant: Value, fields: Value) -> Self {
        Self::with_policy(sandbox, grant, fields, fast_retry())
    }

    fn with_policy(sandbox: &Sandbox, grant: Value, fields: Value, retry: RetryPolicy) -> Self {
        let events = CollectingSink::new();
        Self::with_sink(
            sandbox,
            grant,
            fields,
            retry,
            events.clone(),
            Arc::new(events),
        )
    }

    /// A client whose events go to `sink`; `events` is what the test reads back.
    fn with_sink(
        sandbox: &Sandbox,
        grant: Value,
        fields: Value,
        retry: RetryPolicy,
        events: CollectingSink,
        sink: Arc<dyn EventSink>,
    ) -> Self {
        let config = StepConfig::from_value(sandbox.step_config(grant.clone(), fields)).unwrap();
        let cache = TokenCache::from_config(&config, retry, clock::system()).unwrap();
        let emitter = Emitter::new(sink);
        let base = url::Url::parse(config.api_base_url.as_deref().unwrap()).unwrap();
        let client = AuthClient::new(reqwest::Client::new(), cache, emitter, Some(base));
        Self {
            client,
            events,
            grant,
        }
    }

    async fn get(&self, path: &str) -> Result<u16, AuthError> {
        let request = self.client.request(Method::GET, path)?;
        Ok(self.client.send(request).await?.status().as_u16())
    }

    /// The `oauth` payloads of every updateKeys event, in order.
    fn update_keys(&self) -> Vec<Value> {
        self.events
            .of_kind(EventKind::UpdateKeys)
            .into_iter()
            .map(|event| match event {
                Event::UpdateKeys(keys) => keys.expose_json()["oauth"].clone(),
                _ => unreachable!(),
            })
            .collect()
    }
}

async fn sandbox(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.unwrap()
}

/// A sandbox whose token endpoint takes `delay` to answer, and a client with an expired token.
async fn slow_refresh(delay: Duration) -> (Sandbox, Arc<Harness>) {
    let sandbox = sandbox(SandboxOptions {
        token_delay: delay,
        ..Default::default()
    })
    .await;
    let harness = Arc::new(Harness::new(
        &sandbox,
        GrantState::ExpiredUnknown,
        json!({}),
    ));
    (sandbox, harness)
}

#[tokio::test]
async fn a_valid_token_makes_no_token_request() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::Valid, json!({}));
    for _ in 0..3 {
        assert_eq!(harness.get("/me").await.unwrap(), 200);
    }
    assert_eq!((sandbox.token_requests(), sandbox.api_calls()), (0, 3));
    assert!(harness.events.events().is_empty());
    assert_eq!(harness.client.cache().refresh_count(), 0);
}

#[tokio::test]
async fn a_401_refreshes_once_emits_update_keys_and_replays() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!((sandbox.api_calls(), sandbox.api_rejections()), (2, 1));
    let keys = harness.update_keys();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["access_token"], harness.grant["access_token"]);
    assert_ne!(keys[0]["refresh_token"], harness.grant["refresh_token"]);
    // The refreshed token serves later calls without another refresh.
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(
        (sandbox.token_requests(), harness.update_keys().len()),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_calls_on_an_expired_token_share_one_refresh() {
    let (sandbox, harness) = slow_refresh(Duration::from_millis(200)).await;
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let harness = harness.clone();
            tokio::spawn(async move { harness.get("/me").await })
        })
        .collect();
    let mut successes = 0;
    for call in calls {
        if call.await.unwrap().unwrap() == 200 {
            successes += 1;
        }
    }
    assert_eq!(successes, 100);
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(harness.update_keys().len(), 1);
    assert_eq!(harness.client.cache().refresh_count(), 1);
}

#[tokio::test]
async fn a_known_expiry_refreshes_before_the_call() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredKnown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(
        (
            sandbox.token_requests(),
            sandbox.api_calls(),
            sandbox.api_rejections()
        ),
        (1, 1, 0)
    );
    assert_eq!(harness.update_keys().len(), 1);
}

#[tokio::test]
async fn every_call_mode_refreshes_before_each_call() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(
        &sandbox,
        GrantState::Valid,
        json!({"refresh": "every_call"}),
    );
    for _ in 0..3 {
        assert_eq!(harness.get("/me").await.unwrap(), 200);
    }
    assert_eq!((sandbox.token_requests(), sandbox.api_rejections()), (3, 0));
    assert_eq!(harness.update_keys().len(), 3);
}

#[tokio::test]
async fn a_rotation_chain_survives_three_refreshes_and_a_stale_copy_revokes_the_grant() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::Valid, json!({}));
    for _ in 0..3 {
        sandbox.expire_access_tokens();
        assert_eq!(harness.get("/me").await.unwrap(), 200);
    }
    let keys = harness.update_keys();
    assert_eq!((sandbox.token_requests(), keys.len()), (3, 3));
    assert_eq!(harness.client.cache().refresh_count(), 3);
    let refresh_tokens: Vec<&Value> = keys.iter().map(|k| &k["refresh_token"]).collect();
    assert!(
        refresh_tokens
            .iter()
            .all(|rt| **rt != harness.grant["refresh_token"])
    );
    assert!(refresh_tokens[0] != refresh_tokens[1] && refresh_tokens[1] != refresh_tokens[2]);

    // A replica that never received updateKeys still holds the first, rotated-away refresh
    // token: the provider detects the reuse and revokes the whole grant.
    let stale = Harness::with_grant(&sandbox, harness.grant.clone(), json!({}));
    sandbox.expire_access_tokens();
    let error = stale.get("/me").await.unwrap_err();
    assert!(error.is_reauthorization_required(), "{error:?}");
    assert!(
        error_chain(&error).contains("reuse detected"),
        "{}",
        error_chain(&error)
    );

    // The revocation reaches the current refresh token too; neither client loops.
    let error = harness.get("/me").await.unwrap_err();
    assert!(error.is_reauthorization_required());
    assert_eq!(sandbox.token_requests(), 5);
    for client in [&harness, &stale] {
        assert!(
            client
                .get("/me")
                .await
                .unwrap_err()
                .is_reauthorization_required()
        );
    }
    assert_eq!(
        sandbox.token_requests(),
        5,
        "a dead refresh token is never sent again"
    );
}

#[tokio::test]
async fn a_response_without_refresh_token_keeps_the_old_one() {
    let sandbox = sandbox(SandboxOptions {
        rotate_refresh_tokens: false,
        ..Default::default()
    })
    .await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let keys = harness.update_keys();
    assert_eq!(keys[0]["refresh_token"], harness.grant["refresh_token"]);
    sandbox.expire_access_tokens();
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(
        harness.update_keys()[1]["refresh_token"],
        harness.grant["refresh_token"]
    );
}

#[tokio::test]
async fn update_keys_carries_the_entire_token_response_with_provider_extras() {
    let extras = json!({"instance_url": "https://eu7.example.test", "id_token": "header.claims.sig",
                        "ext_expires_in": 7200, "nested": {"a": [1, 2.5, null]}});
    let options = SandboxOptions {
        extras: extras.as_object().cloned().unwrap(),
        ..Default::default()
    };
    let sandbox = sandbox(options).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let keys = harness.update_keys().remove(0);
    let mut expected_fields: Vec<&str> = vec![
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    ];
    expected_fields.extend([
        "instance_url",
        "id_token",
        "ext_expires_in",
        "nested",
        "expires_at",
    ]);
    assert_eq!(
        keys.as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        expected_fields
    );
    for (name, value) in extras.as_object().unwrap() {
        assert_eq!(&keys[name], value, "{name}");
    }
    let expires_at = keys["expires_at"].as_u64().unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&expires_at),
        "{expires_at}"
    );
    assert_eq!(keys["expires_in"], json!(3600));
}

#[tokio::test]
async fn invalid_grant_is_a_clear_error_and_never_loops() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    sandbox.revoke_all();
    let error = harness.get("/me").await.unwrap_err();
    let AuthError::Refresh(RefreshError::ReauthorizationRequired {
        error: code,
        description,
        ..
    }) = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(
        (code.as_str(), description.as_deref()),
        ("invalid_grant", Some("the grant was revoked"))
    );
    assert_eq!(
        error_chain(&error),
        "could not renew the access token: re-authorisation required: the token endpoint answered invalid_grant (the grant was revoked)"
    );
    for _ in 0..3 {
        assert!(
            harness
                .get("/me")
                .await
                .unwrap_err()
                .is_reauthorization_required()
        );
    }
    assert_eq!(sandbox.token_requests(), 1);
    assert!(harness.update_keys().is_empty());
}

#[tokio::test]
async fn a_503_from_the_token_endpoint_is_retried_then_succeeds() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    sandbox.fail_token_requests(&[503]);
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let statuses: Vec<u16> = sandbox.token_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 200]);
    assert_eq!(harness.update_keys().len(), 1);
}

#[tokio::test]
async fn a_token_endpoint_that_fails_three_times_delays_the_call_which_then_succeeds() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    sandbox.fail_token_requests(&[500, 429, 502]);
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let statuses: Vec<u16> = sandbox.token_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 429, 502, 200]);
    assert_eq!(harness.update_keys().len(), 1);
    assert!(harness.events.of_kind(EventKind::Error).is_empty());
}

#[tokio::test]
async fn an_unreachable_token_endpoint_gives_a_transient_error_once_the_wait_is_over() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let harness = Harness::with_policy(
        &sandbox,
        sandbox.issue_grant(GrantState::ExpiredUnknown),
        json!({"token_uri": format!("http://{closed}/token")}),
        outage_retry(Duration::from_millis(300)),
    );
    let error = harness.get("/me").await.unwrap_err();
    assert!(
        error.is_retryable() && !error.is_reauthorization_required(),
        "{error:?}"
    );
    assert!(
        error_chain(&error).contains("connection failed"),
        "{}",
        error_chain(&error)
    );
}

#[tokio::test]
async fn the_token_server_sees_the_configured_client_authentication() {
    for method in [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
    ] {
        let options = SandboxOptions {
            required_auth_method: Some(method),
            client_id: "id with:colon".into(),
            client_secret: "s3cr&t=+/".into(),
            ..Default::default()
        };
        let sandbox = sandbox(options).await;
        let name = serde_json::to_value(method).unwrap();
        let harness = Harness::new(
            &sandbox,
            GrantState::ExpiredUnknown,
            json!({"token_auth_method": name, "scope": "items.read"}),
        );
        assert_eq!(harness.get("/me").await.unwrap(), 200, "{method:?}");
        let log = sandbox.token_log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].auth_method, Some(method));
        assert!(log[0].client_authenticated);
        assert_eq!(
            (log[0].grant_type.as_str(), log[0].scope.as_deref()),
            ("refresh_token", Some("items.read"))
        );
    }
}

#[tokio::test]
async fn the_wrong_client_authentication_method_is_invalid_client() {
    let options = SandboxOptions {
        required_auth_method: Some(TokenAuthMethod::ClientSecretPost),
        ..Default::default()
    };
    let sandbox = sandbox(options).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let error = harness.get("/me").await.unwrap_err();
    assert!(
        error_chain(&error).contains("invalid_client"),
        "{}",
        error_chain(&error)
    );
    assert!(error.is_reauthorization_required());
}

#[tokio::test]
async fn form_encoded_token_responses_are_accepted() {
    let sandbox = sandbox(SandboxOptions {
        form_encoded_responses: true,
        ..Default::default()
    })
    .await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let keys = harness.update_keys().remove(0);
    assert_eq!(keys["expires_in"], json!(3600));
    assert!(keys["refresh_token"].as_str().unwrap().starts_with("rt-"));
}

#[tokio::test]
async fn a_second_401_after_the_refresh_is_an_error_not_a_loop() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::Valid, json!({}));
    sandbox.fail_api_calls(&[401, 401]);
    let error = harness.get("/me").await.unwrap_err();
    assert!(
        matches!(error, AuthError::Unauthorized { status: 401 }),
        "{error:?}"
    );
    assert_eq!((sandbox.api_calls(), sandbox.token_requests()), (2, 1));
}

#[tokio::test]
async fn a_403_with_an_invalid_token_challenge_counts_as_401_but_a_plain_403_does_not() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::Valid, json!({}));
    assert_eq!(harness.get("/status/403").await.unwrap(), 403);
    assert_eq!(sandbox.token_requests(), 0);

    let api = challenge_server().await;
    let config = json!({"api_base_url": api});
    let harness = Harness::new(&sandbox, GrantState::Valid, config);
    assert_eq!(harness.get("/challenge").await.unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 1);
}

/// An API that answers its first call with 403 and an `invalid_token` challenge, then 200.
async fn challenge_server() -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/challenge",
        axum::routing::get(move || {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    (
                        StatusCode::FORBIDDEN,
                        [("www-authenticate", r#"Bearer error="invalid_token""#)],
                    )
                        .into_response()
                } else {
                    StatusCode::OK.into_response()
                }
            }
        }),
    );
    common::serve(app).await
}

#[tokio::test]
async fn a_streaming_body_is_refused_before_it_is_sent() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::Valid, json!({}));
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>("chunk")]);
    let request = harness
        .client
        .request(Method::POST, "/echo/x")
        .unwrap()
        .body(reqwest::Body::wrap_stream(stream));
    let error = harness.client.send(request).await.unwrap_err();
    assert!(matches!(error, AuthError::NotReplayable), "{error:?}");
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn a_json_body_is_replayed_intact_after_the_refresh() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let request = harness
        .client
        .request(Method::POST, "/echo/things")
        .unwrap()
        .json(&json!({"n": 1}));
    let response = harness.client.send(request).await.unwrap();
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["body"], json!({"n": 1}));
    assert_eq!((sandbox.api_calls(), sandbox.token_requests()), (2, 1));
}

#[tokio::test]
async fn a_call_with_an_already_replaced_token_replays_without_refreshing() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let cache = harness.client.cache().clone();
    let stale = cache.current();
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let fresh = cache
        .refresh_after_rejection(&stale, &emitter)
        .await
        .unwrap();
    assert_eq!(fresh.generation, stale.generation + 1);
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test]
async fn a_caller_cancelled_during_the_refresh_does_not_lose_the_rotated_token() {
    let (sandbox, harness) = slow_refresh(Duration::from_millis(300)).await;
    let call = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.get("/me").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(harness.client.cache().current().generation, 1);
    assert_eq!(
        harness.update_keys().len(),
        1,
        "the refresh finished and published its keys"
    );
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(
        sandbox.token_requests(),
        1,
        "the rotated token was kept, not refreshed again"
    );
}

#[tokio::test]
async fn a_token_set_adopted_during_a_refresh_is_not_mistaken_for_the_refreshed_one() {
    let (sandbox, harness) = slow_refresh(Duration::from_millis(300)).await;
    let cache = harness.client.cache().clone();
    let call = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.get("/me").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another replica's keys arrive while this one's refresh is in flight.
    let other = sandbox.issue_grant(GrantState::Valid);
    cache.adopt(TokenSet::from_stored(other).unwrap());
    let adopted = cache.current();
    assert_eq!(call.await.unwrap().unwrap(), 200);

    let refreshed = cache.current();
    assert_ne!(refreshed.generation, adopted.generation);
    // A call that carried the adopted token set was answered 401: the refreshed token set
    // already replaced it, so no second refresh is made.
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let fresh = cache
        .refresh_after_rejection(&adopted, &emitter)
        .await
        .unwrap();
    assert_eq!(fresh.generation, refreshed.generation);
    assert_eq!(sandbox.token_requests(), 1);
}

/// A sink that takes `delay` to confirm an `updateKeys`, as a broker awaiting its confirm does.
struct SlowKeysSink {
    events: CollectingSink,
    delay: Duration,
}

#[async_trait::async_trait]
impl EventSink for SlowKeysSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        if event.kind() == EventKind::UpdateKeys {
            tokio::time::sleep(self.delay).await;
        }
        self.events.publish(event).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_while_the_keys_are_being_published_does_not_publish_them_again() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let config = StepConfig::from_value(sandbox.step_config(grant, json!({}))).unwrap();
    let cache = TokenCache::from_config(&config, fast_retry(), clock::system()).unwrap();
    let events = CollectingSink::new();
    let emitter = Emitter::new(Arc::new(SlowKeysSink {
        events: events.clone(),
        delay: Duration::from_millis(400),
    }));
    let base = url::Url::parse(&sandbox.api_base_url()).unwrap();
    let client = Arc::new(AuthClient::new(
        reqwest::Client::new(),
        cache,
        emitter,
        Some(base),
    ));
    let get = |client: Arc<AuthClient>| async move {
        let request = client.request(Method::GET, "/me").unwrap();
        client.send(request).await.map(|r| r.status().as_u16())
    };
    let first = tokio::spawn(get(client.clone()));
    // The first call is now waiting for its keys to be confirmed.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = tokio::spawn(get(client.clone()));
    assert_eq!(first.await.unwrap().unwrap(), 200);
    assert_eq!(second.await.unwrap().unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 1);
    assert_eq!(
        events.of_kind(EventKind::UpdateKeys).len(),
        1,
        "one refresh, one updateKeys"
    );
}

#[tokio::test]
async fn a_config_without_token_uri_reports_what_is_missing() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let mut config = sandbox.step_config(grant, json!({}));
    config.as_object_mut().unwrap().remove("token_uri");
    let config = StepConfig::from_value(config).unwrap();
    let cache = TokenCache::from_config(&config, fast_retry(), clock::system()).unwrap();
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let base = url::Url::parse(&sandbox.api_base_url()).unwrap();
    let client = AuthClient::new(reqwest::Client::new(), cache, emitter, Some(base));
    let error = client
        .send(client.request(Method::GET, "/me").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        error_chain(&error),
        "could not renew the access token: cannot refresh the access token: the config has no `token_uri`"
    );
}

/// The token endpoint fails for the whole of `outage`; a harness whose token has expired
/// (and says so), waiting out failures on `retry`.
async fn outage(outage: Duration, retry: RetryPolicy) -> (Sandbox, Arc<Harness>) {
    let sandbox = sandbox(SandboxOptions::default()).await;
    sandbox.fail_token_requests_for(500, outage);
    let grant = sandbox.issue_grant(GrantState::ExpiredKnown);
    let harness = Harness::with_policy(&sandbox, grant, json!({}), retry);
    (sandbox, Arc::new(harness))
}

fn token_statuses(sandbox: &Sandbox) -> Vec<u16> {
    sandbox.token_log().iter().map(|r| r.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_on_an_expired_token_wait_out_a_two_second_outage_on_one_schedule() {
    let (sandbox, harness) = outage(
        Duration::from_secs(2),
        outage_retry(Duration::from_secs(30)),
    )
    .await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let harness = harness.clone();
            tokio::spawn(async move { harness.get("/me").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap().unwrap());
    }
    assert_eq!(statuses, [200; 50]);
    assert!(started.elapsed() >= Duration::from_secs(2));
    // One schedule for all 50: 100 ms doubling to 1 s, jittered, gives 5 to 7 failures in
    // 2 s (4 on a machine slow to answer), then the one request that succeeds. One refresh
    // per caller would be 50 or more.
    let log = token_statuses(&sandbox);
    let (last, failed) = log.split_last().unwrap();
    assert_eq!(*last, 200, "{log:?}");
    assert!(failed.iter().all(|status| *status == 500), "{log:?}");
    assert!((4..=7).contains(&failed.len()), "{log:?}");
    assert_eq!(harness.update_keys().len(), 1);
    assert!(harness.events.of_kind(EventKind::Error).is_empty());
    assert_eq!(
        (sandbox.api_calls(), sandbox.api_rejections()),
        (50, 0),
        "every call waited for the new token instead of trying the expired one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_answer_during_an_outage_fails_every_waiting_caller_at_once() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let grant = sandbox.issue_grant(GrantState::ExpiredKnown);
    let harness = Arc::new(Harness::with_policy(
        &sandbox,
        grant,
        json!({}),
        outage_retry(Duration::from_secs(30)),
    ));
    sandbox.fail_token_requests(&[503, 503]);
    sandbox.revoke_all();
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let harness = harness.clone();
            tokio::spawn(async move { harness.get("/me").await })
        })
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert!(error.is_reauthorization_required(), "{error:?}");
        assert!(
            error_chain(&error).contains("invalid_grant (the grant was revoked)"),
            "{}",
            error_chain(&error)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(token_statuses(&sandbox), [503, 503, 400]);
    // The dead refresh token is never sent again.
    assert!(
        harness
            .get("/me")
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
    assert_eq!(sandbox.token_requests(), 3);
}

#[tokio::test]
async fn a_caller_waits_no_longer_than_the_outage_bound_and_gets_a_transient_error() {
    let (sandbox, harness) = outage(
        Duration::from_secs(30),
        outage_retry(Duration::from_millis(800)),
    )
    .await;
    let started = std::time::Instant::now();
    let error = harness.get("/me").await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        error.is_retryable() && !error.is_reauthorization_required(),
        "{error:?}"
    );
    let failures = sandbox.token_requests();
    assert!(
        error_chain(&error).ends_with(&format!(
            "the token endpoint is unavailable after {failures} attempts: HTTP 500 temporarily_unavailable"
        )),
        "{}",
        error_chain(&error)
    );
    assert!(
        (Duration::from_millis(800)..Duration::from_millis(1_800)).contains(&waited),
        "{waited:?}"
    );
    // 100 ms doubling, jittered: 4 to 5 requests in 0.8 s (3 on a machine slow to answer).
    assert!((3..=5).contains(&failures), "{failures}");
    assert_eq!(sandbox.api_calls(), 0);
}

#[tokio::test]
async fn a_caller_dropped_while_waiting_out_an_outage_stops_the_token_requests() {
    let (sandbox, harness) = outage(
        Duration::from_secs(30),
        outage_retry(Duration::from_secs(30)),
    )
    .await;
    let call = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.get("/me").await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    // A request already sent may still finish; none is sent after it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests = sandbox.token_requests();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(sandbox.token_requests(), requests);
}

#[tokio::test]
async fn a_call_after_a_wait_that_ran_out_follows_the_schedule_instead_of_retrying_at_once() {
    let (sandbox, harness) = outage(
        Duration::from_secs(30),
        RetryPolicy {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            ..outage_retry(Duration::from_millis(200))
        },
    )
    .await;
    for _ in 0..3 {
        let error = harness.get("/me").await.unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
    }
    assert_eq!(
        sandbox.token_requests(),
        1,
        "the next slot is 1 to 2 s away"
    );
}

#[tokio::test]
async fn a_due_token_is_used_as_is_while_the_token_endpoint_fails() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    // Valid for 30 s more, inside the 60 s skew: due for a proactive refresh.
    let mut grant = sandbox.issue_grant(GrantState::Valid);
    grant["expires_at"] = json!(now() + 30);
    sandbox.fail_token_requests_for(503, Duration::from_secs(30));
    let harness = Harness::with_policy(
        &sandbox,
        grant,
        json!({}),
        RetryPolicy {
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            ..outage_retry(Duration::from_secs(30))
        },
    );
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(harness.get("/me").await.unwrap(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // One proactive attempt; the later calls find the endpoint in its backoff.
    assert_eq!(token_statuses(&sandbox), [503]);
    assert_eq!(harness.client.cache().current().generation, 0);
    assert!(harness.update_keys().is_empty());
}

#[tokio::test]
async fn a_due_token_is_not_used_once_the_provider_refused_the_refresh_for_good() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let mut grant = sandbox.issue_grant(GrantState::Valid);
    grant["expires_at"] = json!(now() + 30);
    let harness = Harness::with_grant(&sandbox, grant, json!({}));
    sandbox.revoke_all();
    let error = harness.get("/me").await.unwrap_err();
    assert!(error.is_reauthorization_required(), "{error:?}");
    assert_eq!((sandbox.token_requests(), sandbox.api_calls()), (1, 0));
}

#[tokio::test]
async fn every_call_mode_waits_for_the_endpoint_rather_than_using_the_old_token() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    sandbox.fail_token_requests_for(503, Duration::from_secs(30));
    let harness = Harness::with_policy(
        &sandbox,
        sandbox.issue_grant(GrantState::Valid),
        json!({"refresh": "every_call"}),
        outage_retry(Duration::from_millis(300)),
    );
    let error = harness.get("/me").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(sandbox.api_calls(), 0);
}

/// A token endpoint that answers its first request 429 with `Retry-After: 1`, then a token,
/// and records when each request arrived.
async fn throttling_token_endpoint() -> (String, Arc<std::sync::Mutex<Vec<std::time::Instant>>>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push(std::time::Instant::now());
                seen.len() == 1
            };
            async move {
                if first {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
                } else {
                    axum::Json(json!({"access_token": "at-2", "expires_in": 3600})).into_response()
                }
            }
        }),
    );
    (format!("{}/token", common::serve(app).await), arrivals)
}

#[tokio::test]
async fn a_retry_after_from_the_token_endpoint_spaces_the_next_request() {
    let (token_uri, arrivals) = throttling_token_endpoint().await;
    let config = StepConfig::from_value(json!({
        "oauth": {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": now() - 10},
        "client_id": "c", "client_secret": "s", "token_uri": token_uri,
    }))
    .unwrap();
    let cache = TokenCache::from_config(
        &config,
        outage_retry(Duration::from_secs(30)),
        clock::system(),
    )
    .unwrap();
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let lease = cache.lease_for_call(&emitter).await.unwrap();
    assert_eq!(lease.tokens.access_token().expose_secret(), "at-2");
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    // Without Retry-After the schedule would wait 50 to 100 ms.
    assert!(
        (Duration::from_secs(1)..Duration::from_millis(1_500)).contains(&gap),
        "{gap:?}"
    );
}

/// A sink whose `updateKeys` publishes follow a script, one entry per publish: fail, or
/// succeed after a delay. Past the script they succeed at once.
struct ScriptedKeysSink {
    events: CollectingSink,
    script: std::sync::Mutex<std::collections::VecDeque<Option<Duration>>>,
}

impl ScriptedKeysSink {
    fn new(events: &CollectingSink, script: &[Option<Duration>]) -> Arc<Self> {
        Arc::new(Self {
            events: events.clone(),
            script: std::sync::Mutex::new(script.iter().copied().collect()),
        })
    }
}

#[async_trait::async_trait]
impl EventSink for ScriptedKeysSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        if event.kind() == EventKind::UpdateKeys {
            let next = self.script.lock().unwrap().pop_front();
            match next {
                Some(None) => {
                    return Err(EmitError::Refused {
                        kind: EventKind::UpdateKeys,
                        reason: "the broker returned it as unroutable".into(),
                    });
                }
                Some(Some(delay)) => tokio::time::sleep(delay).await,
                None => {}
            }
        }
        self.events.publish(event).await
    }
}

const FAIL: Option<Duration> = None;

/// A harness with an expired token whose keys publishes follow `script`.
async fn scripted_keys(script: &[Option<Duration>]) -> (Sandbox, Arc<Harness>) {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let events = CollectingSink::new();
    let sink = ScriptedKeysSink::new(&events, script);
    let harness = Harness::with_sink(
        &sandbox,
        sandbox.issue_grant(GrantState::ExpiredUnknown),
        json!({}),
        fast_retry(),
        events,
        sink,
    );
    (sandbox, Arc::new(harness))
}

fn current_refresh_token(harness: &Harness) -> Value {
    harness.client.cache().current().tokens.expose_json()["refresh_token"].clone()
}

#[tokio::test]
async fn keys_whose_publish_failed_are_sent_again_before_the_next_call() {
    let (sandbox, harness) = scripted_keys(&[FAIL]).await;
    let error = harness.get("/me").await.unwrap_err();
    assert!(
        matches!(error, AuthError::Refresh(RefreshError::KeysNotPublished(_))),
        "{error:?}"
    );
    assert!(harness.client.cache().has_unpublished_keys());
    assert!(harness.update_keys().is_empty());

    assert_eq!(harness.get("/me").await.unwrap(), 200);
    let keys = harness.update_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["refresh_token"], current_refresh_token(&harness));
    assert!(!harness.client.cache().has_unpublished_keys());
    assert_eq!(
        sandbox.token_requests(),
        1,
        "the keys were re-sent, not refreshed"
    );
    // Sent once: later calls publish nothing more.
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(harness.update_keys().len(), 1);
}

#[tokio::test]
async fn a_flush_sends_keys_whose_publish_failed_once_through_the_emitter_that_failed() {
    let (sandbox, harness) = scripted_keys(&[FAIL]).await;
    let cache = harness.client.cache().clone();
    cache.flush_unpublished().await.unwrap();
    assert!(harness.update_keys().is_empty(), "nothing was pending");

    harness.get("/me").await.unwrap_err();
    cache.flush_unpublished().await.unwrap();
    let keys = harness.update_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["refresh_token"], current_refresh_token(&harness));
    assert!(!cache.has_unpublished_keys());
    cache.flush_unpublished().await.unwrap();
    assert_eq!(harness.update_keys().len(), 1);
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test]
async fn a_flush_that_fails_again_keeps_the_keys_pending() {
    let (_sandbox, harness) = scripted_keys(&[FAIL, FAIL]).await;
    let cache = harness.client.cache().clone();
    harness.get("/me").await.unwrap_err();
    let error = cache.flush_unpublished().await.unwrap_err();
    assert!(
        matches!(error, RefreshError::KeysNotPublished(_)),
        "{error:?}"
    );
    assert!(cache.has_unpublished_keys());
    cache.flush_unpublished().await.unwrap();
    assert_eq!(harness.update_keys().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_the_refresh_in_flight_and_sends_its_failed_keys() {
    let sandbox = sandbox(SandboxOptions {
        token_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let events = CollectingSink::new();
    let sink = ScriptedKeysSink::new(&events, &[FAIL]);
    let harness = Arc::new(Harness::with_sink(
        &sandbox,
        sandbox.issue_grant(GrantState::ExpiredUnknown),
        json!({}),
        fast_retry(),
        events,
        sink,
    ));
    let call = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.get("/me").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Shutdown: the delivery is cut off, then the cache is flushed.
    call.abort();
    harness.client.cache().flush_unpublished().await.unwrap();
    let keys = harness.update_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["refresh_token"], current_refresh_token(&harness));
}

#[tokio::test]
#[tracing_test::traced_test]
async fn a_failed_keys_publish_is_logged_as_an_error_and_the_keys_stay_pending() {
    let (_sandbox, harness) = scripted_keys(&[FAIL]).await;
    harness.get("/me").await.unwrap_err();
    assert!(harness.client.cache().has_unpublished_keys());
    logs_assert(|lines: &[&str]| {
        let failed: Vec<&&str> = lines
            .iter()
            .filter(|line| line.contains("Refreshed keys could not be published"))
            .collect();
        match failed.as_slice() {
            [line] if line.contains("ERROR") => Ok(()),
            other => Err(format!("expected one ERROR line, got {other:?}")),
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_re_send_of_older_keys_is_never_confirmed_after_newer_keys() {
    // Publish 1 (generation 1) fails; its re-send (publish 2) takes 600 ms; meanwhile a 401
    // refreshes generation 1 into 2, whose keys (publish 3) must not be overtaken by it.
    let (sandbox, harness) = scripted_keys(&[FAIL, Some(Duration::from_millis(600))]).await;
    let cache = harness.client.cache().clone();
    harness.get("/me").await.unwrap_err();
    let generation_1 = cache.current();
    let resend = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.get("/me").await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let emitter = Emitter::new(Arc::new(harness.events.clone()));
    let generation_2 = cache
        .refresh_after_rejection(&generation_1, &emitter)
        .await
        .unwrap();
    assert_eq!(resend.await.unwrap().unwrap(), 200);
    assert_eq!(generation_2.generation, 2);

    let confirmed: Vec<Value> = harness
        .update_keys()
        .iter()
        .map(|keys| keys["refresh_token"].clone())
        .collect();
    assert_eq!(
        confirmed,
        [
            generation_1.tokens.expose_json()["refresh_token"].clone(),
            generation_2.tokens.expose_json()["refresh_token"].clone(),
        ],
        "the platform's last word is the newest refresh token"
    );
    assert_eq!(sandbox.token_requests(), 2);
}

#[tokio::test]
async fn keys_replaced_by_a_newer_refresh_are_dropped_not_re_sent() {
    let (sandbox, harness) = scripted_keys(&[FAIL]).await;
    let cache = harness.client.cache().clone();
    harness.get("/me").await.unwrap_err();
    let emitter = Emitter::new(Arc::new(harness.events.clone()));
    let newer = cache
        .refresh_after_rejection(&cache.current(), &emitter)
        .await
        .unwrap();
    cache.flush_unpublished().await.unwrap();
    let keys = harness.update_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0]["refresh_token"],
        newer.tokens.expose_json()["refresh_token"]
    );
    assert_eq!(sandbox.token_requests(), 2);
}

#[tokio::test]
async fn adopting_keys_revives_a_dead_cache_and_drops_keys_pending_publication() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let cache = harness.client.cache().clone();
    sandbox.revoke_all();
    assert!(
        harness
            .get("/me")
            .await
            .unwrap_err()
            .is_reauthorization_required()
    );
    // Another replica's sign-in arrives.
    cache.adopt(TokenSet::from_stored(sandbox.issue_grant(GrantState::Valid)).unwrap());
    assert_eq!(cache.current().generation, 1);
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 1);

    let (_sandbox, harness) = scripted_keys(&[FAIL]).await;
    let cache = harness.client.cache().clone();
    harness.get("/me").await.unwrap_err();
    let generation = cache.current().generation;
    cache.adopt(TokenSet::from_stored(_sandbox.issue_grant(GrantState::Valid)).unwrap());
    assert_eq!(cache.current().generation, generation + 1);
    assert!(!cache.has_unpublished_keys());
    cache.flush_unpublished().await.unwrap();
    assert!(
        harness.update_keys().is_empty(),
        "adopted keys are not ours to publish"
    );
}

#[tokio::test]
async fn a_due_token_is_refreshed_once_the_endpoint_is_back() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let mut grant = sandbox.issue_grant(GrantState::Valid);
    grant["expires_at"] = json!(now() + 30);
    sandbox.fail_token_requests(&[503]);
    let harness = Harness::with_grant(&sandbox, grant, json!({}));
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(harness.client.cache().current().generation, 0);
    // fast_retry's next slot is at most 10 ms away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(token_statuses(&sandbox), [503, 200]);
    assert_eq!(harness.client.cache().current().generation, 1);
    assert_eq!(harness.update_keys().len(), 1);
}

/// A token endpoint that refuses its first request with `invalid_scope`, then answers with a
/// token; it counts the requests.
async fn once_refusing_token_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_scope"})),
                    )
                        .into_response()
                } else {
                    axum::Json(json!({"access_token": "at-2", "expires_in": 3600})).into_response()
                }
            }
        }),
    );
    (format!("{}/token", common::serve(app).await), requests)
}

#[tokio::test]
async fn a_refusal_that_is_no_revoked_grant_does_not_kill_the_refresh_token() {
    let (token_uri, requests) = once_refusing_token_endpoint().await;
    let config = StepConfig::from_value(json!({
        "oauth": {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": now() - 10},
        "client_id": "c", "client_secret": "s", "token_uri": token_uri,
    }))
    .unwrap();
    let cache = TokenCache::from_config(&config, fast_retry(), clock::system()).unwrap();
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let error = cache.lease_for_call(&emitter).await.unwrap_err();
    assert!(
        matches!(error, RefreshError::Refused { status: 400, .. }),
        "{error:?}"
    );
    let lease = cache.lease_for_call(&emitter).await.unwrap();
    assert_eq!(lease.tokens.access_token().expose_secret(), "at-2");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A token endpoint that hangs up on its first request without answering, then answers
/// `invalid_grant`: the refresh token may have been rotated by the request whose answer was
/// lost.
async fn answer_lost_then_invalid_grant() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            if std::mem::take(&mut first) {
                continue;
            }
            let body = r#"{"error":"invalid_grant","error_description":"unknown refresh token"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    format!("http://{addr}/token")
}

#[tokio::test]
async fn invalid_grant_after_a_lost_answer_says_the_lost_request_may_have_rotated_the_token() {
    let token_uri = answer_lost_then_invalid_grant().await;
    let config = StepConfig::from_value(json!({
        "oauth": {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": now() - 10},
        "client_id": "c", "client_secret": "s", "token_uri": token_uri,
    }))
    .unwrap();
    let cache = TokenCache::from_config(&config, fast_retry(), clock::system()).unwrap();
    let emitter = Emitter::new(Arc::new(CollectingSink::new()));
    let error = cache.lease_for_call(&emitter).await.unwrap_err();
    assert!(
        matches!(
            error,
            RefreshError::ReauthorizationRequired {
                after_lost_response: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().ends_with(
            "an earlier refresh whose answer was lost may have rotated the refresh token"
        ),
        "{error}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
