//! A token-endpoint outage through the worker, over the real RabbitMQ: messages that need a
//! new token wait for the endpoint on the account's one backoff schedule; none fails.

mod bed;

use std::time::Duration;

use bed::{Bed, decrypt, routing_keys, start};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_messages_during_a_token_endpoint_outage_are_delayed_not_failed() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let grant = sandbox.issue_grant(GrantState::ExpiredKnown);
    let config = sandbox.step_config(grant, json!({"method": "GET", "path": "/me"}));
    let bed = Bed::new().await;
    bed.send_numbered(1..=50, |n| json!({ "n": n })).await;
    sandbox.fail_token_requests_for(500, Duration::from_secs(2));
    let mut vars = bed.vars("request", &config);
    vars.push(("ELASTICIO_RABBITMQ_PREFETCH_SAILOR".into(), "5".into()));
    let worker = start(vars, component::registry());

    let events = bed.collect(51, Duration::from_secs(60)).await;
    worker.stop().await;
    let keys = routing_keys(&events);
    assert_eq!(keys[0], "keys", "{keys:?}");
    assert_eq!(&keys[1..], ["data"; 50], "no message failed");
    for event in &events[1..] {
        assert_eq!(decrypt(event)["body"]["status"], json!(200));
    }
    // The default schedule (200 ms doubling, jittered) fails 3 to 5 times in 2 s, then
    // succeeds once: not one token request per message.
    let statuses: Vec<u16> = sandbox.token_log().iter().map(|r| r.status).collect();
    let (last, failed) = statuses.split_last().unwrap();
    assert_eq!(*last, 200, "{statuses:?}");
    assert!(failed.iter().all(|status| *status == 500), "{statuses:?}");
    assert!((3..=6).contains(&failed.len()), "{statuses:?}");
    assert_eq!(sandbox.api_rejections(), 0);
    assert_eq!(bed.input_ready().await, 0, "every input was acked");
    bed.cleanup().await;
}
