//! Token refresh through the worker: the built-in `request` action against a loopback OAuth2
//! provider, over the real RabbitMQ.

mod bed;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bed::{Bed, Provider, decrypt, header_text, request_config, routing_keys, start};
use sailor::registry::Registry;
use sailor::{Action, Context, Message, ProcessError, StepConfig};
use serde_json::{Value, json};

/// Calls the API and gives up on the call as soon as the refresh it started reaches the token
/// endpoint, succeeding either way: a function that leaves while that refresh still runs.
/// (Giving up after a fixed time instead was flaky: the call may still be waiting for the
/// account's keys on the broker then, before any refresh.)
struct Impatient {
    returned: Arc<AtomicBool>,
    provider: Provider,
}

#[async_trait]
impl Action for Impatient {
    async fn process(
        &self,
        _message: &Message,
        _config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let http = ctx.http()?;
        let request = http
            .request(reqwest::Method::GET, "/items/1")
            .map_err(ProcessError::Auth)?;
        let refresh_started = async {
            while self.provider.state().token_requests_received == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            _ = http.send(request) => panic!("the refresh takes a second; the call cannot end first"),
            () = refresh_started => {}
        }
        self.returned.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_refresh_that_outlived_its_delivery_so_the_rotated_keys_are_published()
{
    let provider = Provider::default();
    provider.state().token_delay_ms = 1_000;
    let base = provider.serve().await;
    let bed = Bed::new().await;
    bed.send_numbered([1], |n| json!({ "n": n })).await;
    let returned = Arc::new(AtomicBool::new(false));
    let mut registry = Registry::new();
    registry.action(
        "impatient",
        Impatient {
            returned: returned.clone(),
            provider: provider.clone(),
        },
    );
    let worker = start(
        bed.vars("impatient", &request_config(&base, true)),
        registry,
    );
    while !returned.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.stop().await;
    let events = bed.collect(1, Duration::from_millis(200)).await;
    assert_eq!(
        routing_keys(&events),
        ["keys"],
        "the rotated keys were confirmed before the worker stopped"
    );
    assert_eq!(provider.state().refreshes, 1);
    assert_eq!(bed.input_ready().await, 0, "the delivery was acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_gives_exactly_one_update_keys_message_then_data_for_every_message() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    bed.send_numbered([7, 8, 9], |n| json!({ "n": n })).await;
    let worker = start(
        bed.vars("request", &request_config(&base, true)),
        component::registry(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_whose_publish_failed_are_flushed_at_shutdown_not_lost() {
    let provider = Provider::default();
    let base = provider.serve().await;
    let bed = Bed::new().await;
    bed.send_numbered([1], |n| json!({ "n": n })).await;
    // Nothing is bound to the keys' routing key yet: the broker returns the updateKeys.
    let late = bed.key("late-keys");
    let mut vars = bed.vars("request", &request_config(&base, true));
    vars.retain(|(name, _)| name != "ELASTICIO_UPDATE_KEYS_ROUTING_KEY");
    vars.push(("ELASTICIO_UPDATE_KEYS_ROUTING_KEY".into(), late.clone()));
    let worker = start(vars, component::registry());
    let events = bed.collect(2, Duration::from_secs(20)).await;
    assert_eq!(
        routing_keys(&events),
        ["error", "dead"],
        "the call fails while its refresh's keys are unpublished"
    );
    assert_eq!(provider.state().refreshes, 1);
    // The platform's binding appears; no further message comes, only the shutdown.
    bed.channel
        .queue_bind(
            bed.events.as_str().into(),
            bed.exchange.as_str().into(),
            late.as_str().into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    worker.stop().await;
    let flushed = bed.collect(1, Duration::from_millis(500)).await;
    assert_eq!(flushed.len(), 1, "the keys went out at shutdown");
    assert_eq!(flushed[0].routing_key.as_str(), late);
    assert_eq!(
        decrypt(&flushed[0])["oauth"]["refresh_token"],
        json!("rt-1")
    );
    assert_eq!(
        provider.state().refreshes,
        1,
        "flushed, not refreshed again"
    );
    bed.cleanup().await;
}
