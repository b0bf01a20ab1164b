//! The OAuth2 token lifecycle against the loopback sandbox provider: refresh on 401, single
//! flight, rotation, updateKeys, replay, permanent and transient token-endpoint failures.

use std::sync::Arc;
use std::time::Duration;

use component::auth::{RefreshError, RetryPolicy, TokenCache, TokenSet};
use component::clock;
use component::config::{StepConfig, TokenAuthMethod};
use component::emitter::{CollectingSink, EmitError, Emitter, EventSink};
use component::event::{Event, EventKind};
use component::http::{AuthClient, AuthError};
use component::sandbox::{GrantState, Sandbox, SandboxOptions};
use reqwest::Method;
use serde_json::{Value, json};

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
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
        let config = StepConfig::from_value(sandbox.step_config(grant.clone(), fields)).unwrap();
        let cache = TokenCache::from_config(&config, fast_retry(), clock::system()).unwrap();
        let events = CollectingSink::new();
        let emitter = Emitter::new(Arc::new(events.clone()));
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
async fn a_token_endpoint_that_keeps_failing_gives_a_transient_error() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    sandbox.fail_token_requests(&[500, 429, 502]);
    let harness = Harness::new(&sandbox, GrantState::ExpiredUnknown, json!({}));
    let error = harness.get("/me").await.unwrap_err();
    assert!(
        error.is_retryable() && !error.is_reauthorization_required(),
        "{error:?}"
    );
    assert!(
        error_chain(&error).contains("unavailable after 3 attempts: HTTP 502"),
        "{}",
        error_chain(&error)
    );
    assert_eq!(sandbox.token_requests(), 3);
    // Not dead: the next call tries again and succeeds.
    assert_eq!(harness.get("/me").await.unwrap(), 200);
    assert_eq!(sandbox.token_requests(), 4);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_gives_a_transient_error() {
    let sandbox = sandbox(SandboxOptions::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let harness = Harness::new(
        &sandbox,
        GrantState::ExpiredUnknown,
        json!({"token_uri": format!("http://{closed}/token")}),
    );
    let error = harness.get("/me").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
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

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
