//! The credential check as a library: the extra `updateKeys` sink the worker's AMQP publisher
//! plugs into, against the loopback sandbox.

use std::sync::Arc;

use async_trait::async_trait;
use sailor::config::StepConfig;
use sailor::emitter::{CollectingSink, EmitError, EventSink};
use sailor::event::{Event, EventKind};
use sailor::verify::{VerifyOptions, verify_credentials};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::json;

/// A sink standing in for a broker that refuses the publish.
struct RefusingSink;

#[async_trait]
impl EventSink for RefusingSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        Err(EmitError::Refused {
            kind: event.kind(),
            reason: "the broker is gone".into(),
        })
    }
}

async fn expired_config(sandbox: &Sandbox) -> StepConfig {
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    StepConfig::from_value(config).unwrap()
}

#[tokio::test]
async fn the_extra_keys_sink_receives_the_same_keys_as_updated_keys() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = expired_config(&sandbox).await;
    let amqp = CollectingSink::new();
    let options = VerifyOptions::default().with_keys_sink(Arc::new(amqp.clone()));

    let verification = verify_credentials(&config, &options).await;

    assert!(verification.is_verified(), "{verification:?}");
    let published = amqp.of_kind(EventKind::UpdateKeys);
    assert_eq!(published.len(), 1);
    assert_eq!(
        &published[0].payload(),
        verification.updated_keys().unwrap().expose_json()
    );
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test]
async fn keys_the_extra_sink_refuses_are_still_returned_and_the_check_fails() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = expired_config(&sandbox).await;
    let options = VerifyOptions::default().with_keys_sink(Arc::new(RefusingSink));

    let verification = verify_credentials(&config, &options).await;

    assert!(!verification.is_verified());
    assert_eq!(
        verification.reason(),
        Some(
            "The access token was renewed, but the new keys could not be published (the \
             updateKeys event was refused: the broker is gone). Store the token set from \
             `updatedKeys`, or the account stops working."
        )
    );
    let keys = verification
        .updated_keys()
        .expect("the rotated token set is kept");
    assert!(keys.expose_json()["oauth"]["refresh_token"].is_string());
    assert_eq!(sandbox.token_requests(), 1);
}
