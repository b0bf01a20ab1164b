//! Tokens and the client secret never reach a log line or `Debug` output, even at TRACE.

use std::sync::Arc;

use component::auth::{RetryPolicy, TokenCache};
use component::clock;
use component::config::StepConfig;
use component::emitter::{CollectingSink, Emitter};
use component::event::Event;
use component::http::AuthClient;
use component::sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::json;
use tracing_test::traced_test;

#[tokio::test]
#[traced_test]
async fn no_token_or_secret_appears_in_trace_logs_or_debug_output() {
    let options = SandboxOptions {
        client_secret: "client-secret-value-1234".into(),
        ..Default::default()
    };
    let sandbox = Sandbox::start(options).await.unwrap();
    let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
    let config = StepConfig::from_value(sandbox.step_config(grant.clone(), json!({}))).unwrap();
    let cache = TokenCache::from_config(&config, RetryPolicy::default(), clock::system()).unwrap();
    let events = CollectingSink::new();
    let client = AuthClient::new(
        reqwest::Client::new(),
        cache.clone(),
        Emitter::new(Arc::new(events.clone())),
        Some(url::Url::parse(&sandbox.api_base_url()).unwrap()),
    );
    let response = client
        .send(client.request(reqwest::Method::GET, "/me").unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tracing::debug!(?config, ?cache, ?client, events = ?events.events(), "Debug output of every holder of a secret.");

    let Event::UpdateKeys(keys) = &events.events()[0] else {
        panic!("no updateKeys")
    };
    let new = &keys.expose_json()["oauth"];
    let secrets = [
        grant["access_token"].as_str().unwrap(),
        grant["refresh_token"].as_str().unwrap(),
        new["access_token"].as_str().unwrap(),
        new["refresh_token"].as_str().unwrap(),
        "client-secret-value-1234",
    ];
    assert!(
        logs_contain("Access token refreshed."),
        "the refresh was logged"
    );
    assert!(logs_contain("Debug output of every holder of a secret."));
    for secret in secrets {
        assert!(!logs_contain(secret), "a secret reached the logs");
    }
}
