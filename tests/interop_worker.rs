//! Our worker between two steps on elastic.io's own Node.js runtime (sailor-nodejs 2.7.8),
//! on the real RabbitMQ: Node step A (protocol 1) → our step B (`request`, protocol 2, with
//! an expired token) → Node step C. Each side decrypts what the other encrypted.

#[path = "interop/harness.rs"]
mod harness;

mod bed;

use std::time::Duration;

use harness::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_to_rust_to_node_carries_the_message_lineage_and_the_refreshed_keys() {
    let provider = bed::Provider::default();
    let base = provider.serve().await;
    let flow = Flow::new().await;
    let api = PlatformApi::start().await;
    let a_in = flow.queue("a", &[]).await;
    let b_in = flow.queue("b", &[flow.key("step_a", "message")]).await;
    let c_in = flow.queue("c", &[flow.key("step_b", "message")]).await;
    let out = flow.queue("out", &[flow.key("step_c", "message")]).await;
    let keys = flow
        .queue("keys", &[flow.key("step_b", "updateKeys")])
        .await;
    let errors = ["step_a", "step_b", "step_c"].map(|s| flow.key(s, "error"));
    let errors = flow.queue("errors", &errors).await;
    api.set_step(&flow.flow_id, "step_a", json!({}), false);
    api.set_step(
        &flow.flow_id,
        "step_b",
        bed::request_config(&base, true),
        true,
    );
    api.set_step(&flow.flow_id, "step_c", json!({}), true);
    let spec = |step_id, function, listen, protocol_version| StepSpec {
        step_id,
        function,
        listen,
        protocol_version,
        extra_env: vec![],
    };
    let mut a = StepProcess::node(
        "node-a",
        step_env(&flow, &api, &spec("step_a", "echo", &a_in, 1)),
    );
    let mut b = StepProcess::ours(
        "ours-b",
        step_env(&flow, &api, &spec("step_b", "request", &b_in, 2)),
    );
    let mut c = StepProcess::node(
        "node-c",
        step_env(&flow, &api, &spec("step_c", "echo", &c_in, 1)),
    );

    flow.send(
        &a_in,
        &json!({"id": "m-1", "body": {"n": 5}, "headers": {}}),
        1,
        &[("messageId", "m-1"), ("threadId", "thread-1")],
    )
    .await;
    let received = flow.next(&out, WAIT).await.unwrap_or_else(|| {
        panic!(
            "no output\nA:\n{}\nB:\n{}\nC:\n{}",
            a.output(),
            b.output(),
            c.output()
        )
    });
    let message = received.decrypted();
    assert_eq!(message["body"]["status"], json!(200));
    assert_eq!(message["body"]["body"], json!({"n": 5}));
    assert_eq!(received.header_str("threadId").as_deref(), Some("thread-1"));
    assert_eq!(received.header_str("stepId").as_deref(), Some("step_c"));
    // Step B (ours) added itself to the passthrough; step C (Node) read it and added itself.
    let passthrough = message["passthrough"].as_object().unwrap();
    assert_eq!(passthrough["step_b"]["body"]["body"], json!({"n": 5}));
    assert!(passthrough.contains_key("step_c"), "{message}");

    let update = flow
        .next(&keys, WAIT)
        .await
        .expect("one updateKeys message");
    assert_eq!(update.header_int("protocolVersion"), Some(2));
    assert_eq!(update.header_str("accountId").as_deref(), Some("account-1"));
    let payload = update.decrypted();
    assert_eq!(payload["oauth"]["access_token"], json!("at-1"));
    assert_eq!(payload["oauth"]["refresh_token"], json!("rt-1"));
    assert_eq!(flow.depth(&keys).await, 0, "exactly one updateKeys");
    assert_eq!(flow.depth(&errors).await, 0, "no step reported an error");
    assert_eq!(flow.depth(&b_in).await, 0, "our step acked its input");
    for step in [&mut a, &mut b, &mut c] {
        assert!(step.is_running(), "{} still runs", step.name);
        step.kill().await;
    }
    flow.cleanup().await;
}
