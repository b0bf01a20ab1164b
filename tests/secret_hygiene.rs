//! Tokens and the client secret never reach a log line or `Debug` output, even at TRACE.

use std::sync::Arc;

use sailor::auth::{RetryPolicy, TokenCache};
use sailor::clock;
use sailor::config::StepConfig;
use sailor::emitter::{CollectingSink, Emitter};
use sailor::event::Event;
use sailor::http::AuthClient;
use sandbox::{GrantState, Sandbox, SandboxOptions};
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

/// A gateway that answers every request with a 500 whose body echoes the request's
/// Authorization header, whole and with the scheme cut off. Returns its base URL.
async fn echoing_gateway() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let token = authorization.trim_start_matches("Bearer ").to_owned();
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({
                "error": "upstream failed",
                "request": {"authorization": authorization, "token": token},
            })),
        )
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test]
#[traced_test]
async fn an_api_echoing_the_authorization_header_gets_no_token_into_error_events_logs_or_reasons() {
    const ACCESS: &str = "at-echoed-s3cret-0001";
    let api = echoing_gateway().await;
    let config = json!({
        "oauth": {"access_token": ACCESS, "refresh_token": "rt-s3cret-0002", "token_type": "Bearer"},
        "client_id": "cid", "client_secret": "cs-s3cret-0003",
        "token_uri": "http://127.0.0.1:1/token",
        "api_base_url": api,
    });
    let with = |fields: serde_json::Value| {
        let mut config = config.clone();
        config
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        StepConfig::from_value(config).unwrap()
    };

    let mut printed = Vec::new();
    for (function, fields) in [
        ("request", json!({"method": "GET", "path": "/items/1"})),
        (
            "pollItems",
            json!({"path": "/items", "items_pointer": "/items"}),
        ),
    ] {
        let step = sailor::step::Step::new(
            &component::registry(),
            function,
            with(fields),
            clock::system(),
        )
        .unwrap();
        let sink = CollectingSink::new();
        let outcome = step
            .process(
                &sailor::Message::default(),
                &json!({}),
                &Emitter::new(Arc::new(sink.clone())),
            )
            .await;
        let sailor::step::Outcome::Failed { report, .. } = outcome else {
            panic!("{function}: the 500 fails the step");
        };
        assert_eq!(report.name, "ApiError", "{function}");
        assert!(
            report.message.starts_with("the API answered HTTP 500: "),
            "{function}: {}",
            report.message
        );
        assert!(
            report.message.contains(
                r#""request":{"authorization":"Bearer [redacted]","token":"[redacted]"}"#
            ),
            "{function}: {}",
            report.message
        );
        let events = sink.events();
        assert_eq!(events.len(), 1, "{function}: {events:?}");
        let Event::Error(emitted) = &events[0] else {
            panic!("{function}: an error event, got {events:?}");
        };
        printed.extend([emitted.message.clone(), emitted.stack.clone()]);
    }

    let verification = sailor::verify::verify_credentials(
        &with(json!({"verify_path": "/me"})),
        &sailor::verify::VerifyOptions::default(),
    )
    .await;
    assert!(!verification.is_verified());
    let reason = verification.reason().unwrap().to_owned();
    assert!(reason.contains("[redacted]"), "{reason}");
    printed.push(reason);
    printed.push(verification.service_result().to_string());

    for text in &printed {
        assert!(!text.contains(ACCESS), "{text}");
    }
    assert!(!logs_contain(ACCESS), "the token reached the logs");
    assert!(logs_contain("Function failed."));
    assert!(logs_contain("Credentials not verified."));
}
