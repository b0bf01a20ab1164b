//! Token refresh through the worker: the built-in `request` action against a loopback OAuth2
//! provider, over the real RabbitMQ.

mod bed;

use std::time::Duration;

use bed::{Bed, Provider, decrypt, header_text, request_config, routing_keys, start};
use component::registry::Registry;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_gives_exactly_one_update_keys_message_then_data_for_every_message() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    bed.send_numbered([7, 8, 9], |n| json!({ "n": n })).await;
    let worker = start(
        bed.vars("request", &request_config(&base, true)),
        Registry::builtin(),
    );

    let events = bed.collect(4, Duration::from_secs(20)).await;
    assert_eq!(routing_keys(&events), ["keys", "data", "data", "data"]);
    let keys = &events[0];
    assert_eq!(header_text(keys, "accountId").as_deref(), Some("account-1"));
    assert_eq!(
        header_text(keys, "keysEvent").as_deref(),
        Some("updateKeys")
    );
    assert_eq!(header_text(keys, "parentMessageId").as_deref(), Some("m-7"));
    let mut payload = decrypt(keys);
    let expires_at = payload["oauth"]
        .as_object_mut()
        .unwrap()
        .remove("expires_at")
        .and_then(|v| v.as_u64())
        .expect("expires_at is added");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 3590..=now + 3610).contains(&expires_at),
        "{expires_at}"
    );
    assert_eq!(
        payload,
        json!({"oauth": {
            "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600,
            "token_type": "Bearer", "scope": "items.read", "instance_url": "https://eu.example"
        }}),
        "the entire token set, as the provider sent it"
    );
    for (event, n) in events[1..].iter().zip([7, 8, 9]) {
        let message = decrypt(event);
        assert_eq!(message["body"]["status"], json!(200));
        assert_eq!(message["body"]["body"], json!({ "n": n }));
    }
    worker.stop().await;
    let (refreshes, tokens) = {
        let state = provider.state();
        let tokens: Vec<String> = state.calls.iter().map(|(_, t)| t.clone()).collect();
        (state.refreshes, tokens)
    };
    assert_eq!(refreshes, 1, "one refresh served every later message");
    assert_eq!(tokens, ["Bearer at-1"; 3]);
    bed.cleanup().await;
}
