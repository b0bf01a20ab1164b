//! Flows that mix steps on elastic.io's own Node.js runtime (elasticio-sailor-nodejs 2.7.8)
//! with steps on ours, on the real RabbitMQ.

#[path = "interop/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_node_step_reads_what_the_harness_encrypts_and_answers_in_kind() {
    let flow = Flow::new().await;
    let api = PlatformApi::start().await;
    let a_in = flow.queue("a", &[]).await;
    let out = flow.queue("out", &[flow.key("step_a", "message")]).await;
    api.set_step(&flow.flow_id, "step_a", json!({}), false);
    let spec = StepSpec {
        step_id: "step_a",
        function: "echo",
        listen: &a_in,
        protocol_version: 1,
        extra_env: vec![],
    };
    let mut node = StepProcess::node("node-a", step_env(&flow, &api, &spec));
    flow.send(
        &a_in,
        &json!({"id": "m-1", "body": {"n": 1}, "headers": {}}),
        1,
        &[("messageId", "m-1"), ("threadId", "thread-1")],
    )
    .await;
    let received = flow
        .next(&out, WAIT)
        .await
        .unwrap_or_else(|| panic!("no output; node log:\n{}", node.output()));
    assert_eq!(received.decrypted()["body"], json!({"n": 1}));
    assert_eq!(received.header_str("threadId").as_deref(), Some("thread-1"));
    assert_eq!(
        received.header_str("parentMessageId").as_deref(),
        Some("m-1")
    );
    node.kill().await;
    flow.cleanup().await;
}
