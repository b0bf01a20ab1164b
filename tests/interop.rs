//! Flows that mix steps on elastic.io's own Node.js runtime (elasticio-sailor-nodejs 2.7.8)
//! with steps on ours, on the real RabbitMQ.

#[path = "interop/harness.rs"]
mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};

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

#[tokio::test]
async fn a_node_step_stores_keys_and_sends_update_snapshot_as_ours_does() {
    let flow = Flow::new().await;
    let api = PlatformApi::start().await;
    let a_in = flow.queue("a", &[]).await;
    let out = flow.queue("out", &[flow.key("step_a", "message")]).await;
    let snapshots = flow
        .queue("snapshots", &[flow.key("step_a", "snapshot")])
        .await;
    let keys = flow
        .queue("keys", &[flow.key("step_a", "updateKeys")])
        .await;
    api.set_step(
        &flow.flow_id,
        "step_a",
        json!({"_account": "account-7"}),
        false,
    );
    let spec = StepSpec {
        step_id: "step_a",
        function: "echo",
        listen: &a_in,
        protocol_version: 1,
        extra_env: vec![
            (
                "ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS".into(),
                "ELASTICIO_TENANT_ID, region_NAME2x,NOT_SET".into(),
            ),
            ("ELASTICIO_TENANT_ID".into(), "tenant-7".into()),
            ("region_NAME2x".into(), "eu".into()),
        ],
    };
    let mut node = StepProcess::node("node-a", step_env(&flow, &api, &spec));
    let emitted = json!({"oauth": {"access_token": "at-9", "refresh_token": "rt-9"}});
    flow.send(
        &a_in,
        &json!({"id": "m-1", "body": {"updateKeys": emitted, "updateSnapshot": {"b": 2}}}),
        1,
        &[("messageId", "m-1")],
    )
    .await;
    let data = flow
        .next(&out, WAIT)
        .await
        .unwrap_or_else(|| panic!("no output; node log:\n{}", node.output()));
    // ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS: the names sailor-nodejs gives, which ours gives.
    let tenant = sailor::amqp::headers::camel_case("TENANT_ID");
    let region = sailor::amqp::headers::camel_case("region_NAME2x");
    assert_eq!(
        (tenant.as_str(), region.as_str()),
        ("tenantId", "regionName2X")
    );
    assert_eq!(data.header_str(&tenant).as_deref(), Some("tenant-7"));
    assert_eq!(data.header_str(&region).as_deref(), Some("eu"));
    assert!(!data.headers.contains_key("notSet"));

    // updateKeys: PUT /v1/accounts/{_account} with {"keys": <emitted>}, the body ours sends
    // (see the chain tests), and no updateKeys message.
    let stored = api.accounts.lock().unwrap().clone();
    assert_eq!(
        stored,
        [("account-7".to_owned(), json!({ "keys": emitted }))]
    );
    assert!(flow.next(&keys, Duration::from_millis(300)).await.is_none());
    // updateSnapshot: the partial snapshot as plain JSON on the snapshot key, with
    // `snapshotEvent: updateSnapshot`, as ours sends it (tests/worker_env.rs).
    let snapshot = flow.next(&snapshots, WAIT).await.expect("updateSnapshot");
    assert_eq!(snapshot.json(), json!({"b": 2}));
    assert_eq!(
        snapshot.header_str("snapshotEvent").as_deref(),
        Some("updateSnapshot")
    );
    node.kill().await;
    flow.cleanup().await;
}

/// A flow of three steps, A (Node) → B (ours, the `request` action) → C (Node), with taps on
/// A's and B's output, B's updateKeys and every error key.
struct Chain {
    flow: Flow,
    api: PlatformApi,
    sandbox: sandbox::Sandbox,
    grant: serde_json::Value,
    a_in: String,
    b_in: String,
    c_in: String,
    out: String,
    tap_a: String,
    tap_b: String,
    keys: String,
    errors: String,
}

impl Chain {
    async fn new(passthrough: bool, b_path: &str) -> Self {
        use sandbox::{GrantState, Sandbox, SandboxOptions};
        let flow = Flow::new().await;
        let api = PlatformApi::start().await;
        let extras = json!({"instance_url": "https://eu7.example.test"});
        let sandbox = Sandbox::start(SandboxOptions {
            extras: extras.as_object().cloned().unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
        let grant = sandbox.issue_grant(GrantState::ExpiredUnknown);
        let b_config =
            sandbox.step_config(grant.clone(), json!({"method": "POST", "path": b_path}));
        api.set_step(&flow.flow_id, "step_a", json!({}), passthrough);
        api.set_step(&flow.flow_id, "step_b", b_config, passthrough);
        api.set_step(&flow.flow_id, "step_c", json!({}), passthrough);
        let a_in = flow.queue("a", &[]).await;
        let b_in = flow.queue("b", &[flow.key("step_a", "message")]).await;
        let c_in = flow.queue("c", &[flow.key("step_b", "message")]).await;
        let out = flow.queue("out", &[flow.key("step_c", "message")]).await;
        let tap_a = flow.queue("tap-a", &[flow.key("step_a", "message")]).await;
        let tap_b = flow.queue("tap-b", &[flow.key("step_b", "message")]).await;
        let keys = flow
            .queue("keys", &[flow.key("step_b", "updateKeys")])
            .await;
        let error_keys: Vec<String> = ["step_a", "step_b", "step_c"]
            .iter()
            .map(|s| flow.key(s, "error"))
            .collect();
        let errors = flow.queue("errors", &error_keys).await;
        Self {
            flow,
            api,
            sandbox,
            grant,
            a_in,
            b_in,
            c_in,
            out,
            tap_a,
            tap_b,
            keys,
            errors,
        }
    }

    fn step(&self, step_id: &str, listen: &str, protocol_version: i64) -> Vec<(String, String)> {
        let function = if step_id == "step_b" {
            "request"
        } else {
            "echo"
        };
        let spec = StepSpec {
            step_id,
            function,
            listen,
            protocol_version,
            extra_env: vec![],
        };
        step_env(&self.flow, &self.api, &spec)
    }

    fn start_a(&self, protocol_version: i64) -> StepProcess {
        StepProcess::node("node-a", self.step("step_a", &self.a_in, protocol_version))
    }

    fn start_b(&self, protocol_version: i64) -> StepProcess {
        StepProcess::ours("rust-b", self.step("step_b", &self.b_in, protocol_version))
    }

    fn start_c(&self, protocol_version: i64) -> StepProcess {
        StepProcess::node("node-c", self.step("step_c", &self.c_in, protocol_version))
    }

    async fn send_inputs(&self, n: usize, protocol_version: i64) {
        for i in 0..n {
            let message = json!({"id": format!("in-{i}"), "body": {"n": i}, "headers": {}});
            let (id, thread) = (format!("in-{i}"), format!("thread-{i}"));
            self.flow
                .send(
                    &self.a_in,
                    &message,
                    protocol_version,
                    &[("messageId", &id), ("threadId", &thread)],
                )
                .await;
        }
    }
}

fn logs(steps: &[&StepProcess]) -> String {
    steps
        .iter()
        .map(|s| format!("--- {} ---\n{}", s.name, s.output()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs three inputs through A → B → C and checks everything that crosses the wire.
async fn run_chain(protocols: [i64; 3], passthrough: bool) {
    const N: usize = 3;
    let chain = Chain::new(passthrough, "/echo/{n}").await;
    let [pa, pb, pc] = protocols;
    let (mut a, mut b, mut c) = (chain.start_a(pa), chain.start_b(pb), chain.start_c(pc));
    chain.send_inputs(N, 1).await;

    let outputs = chain.flow.take(&chain.out, N, WAIT).await;
    let taps_a = chain.flow.take(&chain.tap_a, N, WAIT).await;
    let taps_b = chain.flow.take(&chain.tap_b, N, WAIT).await;
    for output in &outputs {
        assert_eq!(
            output.header_int("protocolVersion"),
            Some(pc),
            "C writes its own protocol version"
        );
        let message = output.decrypted();
        let result = &message["body"];
        let n = result["body"]["body"]["n"]
            .as_u64()
            .unwrap_or_else(|| panic!("unexpected {message}\n{}", logs(&[&a, &b, &c])));
        assert_eq!(result["status"], json!(200));
        assert_eq!(result["body"]["method"], json!("POST"));
        assert_eq!(result["body"]["path"], json!(format!("/api/echo/{n}")));
        assert_eq!(
            output.header_str("threadId"),
            Some(format!("thread-{n}")),
            "threadId is carried from A to C"
        );

        let hop_b = taps_b
            .iter()
            .find(|t| t.decrypted()["body"]["body"]["body"]["n"] == json!(n))
            .unwrap();
        assert_eq!(hop_b.header_int("protocolVersion"), Some(pb));
        assert_eq!(hop_b.header_str("threadId"), Some(format!("thread-{n}")));
        let hop_a = taps_a
            .iter()
            .find(|t| t.decrypted()["body"]["n"] == json!(n))
            .unwrap();
        assert_eq!(hop_a.header_str("parentMessageId"), Some(format!("in-{n}")));
        assert_eq!(
            hop_b.header_str("parentMessageId"),
            hop_a.header_str("messageId"),
            "B's parent is A's message"
        );
        assert_eq!(
            output.header_str("parentMessageId"),
            hop_b.header_str("messageId"),
            "C's parent is B's message"
        );
        assert_eq!(hop_b.header_str("stepId").as_deref(), Some("step_b"));

        if passthrough {
            let carried = &message["passthrough"];
            assert_eq!(carried["step_a"]["body"], json!({"n": n}), "{message}");
            assert_eq!(carried["step_b"]["body"]["status"], json!(200), "{message}");
        }
    }

    // Exactly one refresh for the whole run, published once, whole, on B's updateKeys key.
    let keys = chain.flow.take(&chain.keys, 1, WAIT).await.remove(0);
    assert!(
        chain
            .flow
            .next(&chain.keys, Duration::from_millis(500))
            .await
            .is_none(),
        "one updateKeys only"
    );
    assert_eq!(chain.sandbox.token_requests(), 1);
    assert_eq!(
        keys.header_str("accountId").as_deref(),
        Some("sandbox-account")
    );
    assert_eq!(keys.header_str("keysEvent").as_deref(), Some("updateKeys"));
    let oauth = &keys.decrypted()["oauth"];
    assert_ne!(oauth["access_token"], chain.grant["access_token"]);
    assert_ne!(oauth["refresh_token"], chain.grant["refresh_token"]);
    assert_eq!(oauth["instance_url"], json!("https://eu7.example.test"));
    // And stored through the platform API once, as sailor-nodejs stores them, the same keys.
    let stored = chain.api.accounts.lock().unwrap().clone();
    assert_eq!(
        stored,
        [(
            "sandbox-account".to_owned(),
            json!({ "keys": keys.decrypted() })
        )]
    );
    assert!(
        chain
            .flow
            .next(&chain.errors, Duration::from_millis(100))
            .await
            .is_none(),
        "no errors"
    );

    for step in [&mut a, &mut b, &mut c] {
        step.kill().await;
    }
    chain.flow.cleanup().await;
}

#[tokio::test]
async fn node_then_ours_then_node_with_protocol_v1() {
    run_chain([1, 1, 1], false).await;
}

#[tokio::test]
async fn node_then_ours_then_node_with_protocol_v2() {
    run_chain([2, 2, 2], false).await;
}

#[tokio::test]
async fn node_then_ours_then_node_with_mixed_protocol_versions() {
    run_chain([2, 1, 2], false).await;
    run_chain([1, 2, 1], false).await;
}

#[tokio::test]
async fn node_then_ours_then_node_with_passthrough() {
    run_chain([1, 2, 1], true).await;
}

#[tokio::test]
async fn an_error_in_our_step_is_read_by_a_node_error_handler() {
    let chain = Chain::new(false, "/missing/{n}").await;
    let (mut a, mut b) = (chain.start_a(2), chain.start_b(2));
    chain.send_inputs(1, 1).await;
    let error = chain.flow.take(&chain.errors, 1, WAIT).await.remove(0);
    assert_eq!(error.routing_key, chain.flow.key("step_b", "error"));

    // The platform's error queue feeds a custom error-handler step: a Node step with
    // ELASTICIO_INPUT_FORMAT=error, which decrypts `error` and `errorInput`.
    let handler_in = chain.flow.queue("handler", &[]).await;
    let handler_out = chain
        .flow
        .queue("handler-out", &[chain.flow.key("step_h", "message")])
        .await;
    chain
        .api
        .set_step(&chain.flow.flow_id, "step_h", json!({}), false);
    let spec = StepSpec {
        step_id: "step_h",
        function: "echo",
        listen: &handler_in,
        protocol_version: 1,
        extra_env: vec![("ELASTICIO_INPUT_FORMAT".into(), "error".into())],
    };
    let mut handler = StepProcess::node(
        "node-error-handler",
        step_env(&chain.flow, &chain.api, &spec),
    );
    chain.flow.send_raw(&handler_in, &error).await;
    let handled = chain
        .flow
        .next(&handler_out, WAIT)
        .await
        .unwrap_or_else(|| panic!("the handler read nothing\n{}", logs(&[&a, &b, &handler])))
        .decrypted();
    let body = &handled["body"];
    assert_eq!(body["error"]["name"], json!("ApiError"), "{handled}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("404"),
        "{handled}"
    );
    assert_eq!(
        body["errorInput"]["body"],
        json!({"n": 0}),
        "errorInput is the message B received: {handled}"
    );
    for step in [&mut a, &mut b, &mut handler] {
        step.kill().await;
    }
    chain.flow.cleanup().await;
}

#[tokio::test]
async fn a_node_error_is_read_by_our_error_handler_as_a_node_handler_reads_it() {
    let chain = Chain::new(false, "/echo/{n}").await;
    let mut a = chain.start_a(1);
    let input = json!({"id": "in-0", "body": {"fail": "boom", "n": 0}, "headers": {}});
    chain
        .flow
        .send(&chain.a_in, &input, 1, &[("messageId", "in-0")])
        .await;
    let error = chain.flow.take(&chain.errors, 1, WAIT).await.remove(0);
    assert_eq!(error.routing_key, chain.flow.key("step_a", "error"));

    // Our `request` action as the error handler: it POSTs the message body it gets to the
    // sandbox's echo endpoint, so its output shows that body.
    let handler_in = chain.flow.queue("handler", &[]).await;
    let handler_out = chain
        .flow
        .queue("handler-out", &[chain.flow.key("step_h", "message")])
        .await;
    // The handler's refresh publishes updateKeys, which must find a queue (mandatory).
    let handler_keys = chain
        .flow
        .queue("handler-keys", &[chain.flow.key("step_h", "updateKeys")])
        .await;
    let config = chain.sandbox.step_config(
        chain.grant.clone(),
        json!({"method": "POST", "path": "/echo/handler"}),
    );
    chain
        .api
        .set_step(&chain.flow.flow_id, "step_h", config, false);
    let spec = StepSpec {
        step_id: "step_h",
        function: "request",
        listen: &handler_in,
        protocol_version: 1,
        extra_env: vec![("ELASTICIO_INPUT_FORMAT".into(), "error".into())],
    };
    let mut handler = StepProcess::ours("rust-h", step_env(&chain.flow, &chain.api, &spec));
    chain.flow.send_raw(&handler_in, &error).await;
    let handled = chain
        .flow
        .next(&handler_out, WAIT)
        .await
        .unwrap_or_else(|| panic!("the handler read nothing\n{}", logs(&[&a, &handler])))
        .decrypted();
    let got = &handled["body"]["body"]["body"];
    assert_eq!(got["error"]["name"], json!("Error"), "{handled}");
    assert_eq!(got["error"]["message"], json!("boom"), "{handled}");
    assert!(got["error"]["stack"].is_string(), "{handled}");
    assert_eq!(
        got["errorInput"]["body"],
        json!({"fail": "boom", "n": 0}),
        "errorInput is the message A received: {handled}"
    );
    assert!(chain.flow.next(&handler_keys, WAIT).await.is_some());
    for step in [&mut a, &mut handler] {
        step.kill().await;
    }
    chain.flow.cleanup().await;
}

#[tokio::test]
async fn outputs_wait_on_a_stopped_step_and_none_is_lost_when_it_starts() {
    const N: usize = 5;
    let chain = Chain::new(false, "/echo/{n}").await;
    let (mut a, mut b) = (chain.start_a(1), chain.start_b(2));
    chain.send_inputs(N, 1).await;
    let deadline = std::time::Instant::now() + WAIT;
    while chain.flow.depth(&chain.c_in).await < N as u32 {
        assert!(
            std::time::Instant::now() < deadline,
            "B's outputs never reached C's queue\n{}",
            logs(&[&a, &b])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = chain.start_c(1);
    let outputs = chain.flow.take(&chain.out, N, WAIT).await;
    let mut seen: Vec<u64> = outputs
        .iter()
        .map(|o| o.decrypted()["body"]["body"]["body"]["n"].as_u64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..N as u64).collect::<Vec<_>>());
    assert_eq!(chain.flow.depth(&chain.c_in).await, 0);
    for step in [&mut a, &mut b, &mut c] {
        step.kill().await;
    }
    chain.flow.cleanup().await;
}

#[path = "object_store/mod.rs"]
mod object_store;

/// The fixture's `reply` action (tests/interop/node-component/lib/actions/reply.js), in Rust.
struct Reply;

#[async_trait::async_trait]
impl sailor::Action for Reply {
    async fn process(
        &self,
        message: &sailor::Message,
        _config: &sailor::StepConfig,
        _snapshot: &serde_json::Value,
        ctx: &sailor::Context,
    ) -> Result<(), sailor::ProcessError> {
        if message.body.get("fail").is_some() {
            return Err(sailor::ProcessError::Input("asked to fail".into()));
        }
        let mut reply = sailor::event::HttpReply::new(201, json!({ "got": message.body }));
        reply
            .headers
            .insert("content-type".into(), json!("application/json"));
        ctx.emitter().http_reply(reply).await?;
        ctx.emitter()
            .data(sailor::Message::with_body(message.body.clone()))
            .await?;
        Ok(())
    }
}

/// The fixture's `echo` action, in Rust.
struct Echo;

#[async_trait::async_trait]
impl sailor::Action for Echo {
    async fn process(
        &self,
        message: &sailor::Message,
        _config: &sailor::StepConfig,
        _snapshot: &serde_json::Value,
        ctx: &sailor::Context,
    ) -> Result<(), sailor::ProcessError> {
        ctx.emitter()
            .data(sailor::Message::with_body(message.body.clone()))
            .await?;
        Ok(())
    }
}

/// Our worker in this process, with the test actions `reply` and `echo` (the binary has only
/// the REST component's); stopped through the sender.
fn ours_in_process(
    env: Vec<(String, String)>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let settings = sailor::settings::Settings::from_vars(env).unwrap();
    let mut registry = sailor::Registry::new();
    registry.action("reply", Reply);
    registry.action("echo", Echo);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        sailor::worker::run(settings, &registry, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (stop, running)
}

async fn stop_ours(
    ours: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
) {
    let _ = ours.0.send(());
    tokio::time::timeout(Duration::from_secs(40), ours.1)
        .await
        .expect("our worker stops")
        .unwrap();
}

fn header_names(message: &Received) -> std::collections::BTreeSet<String> {
    message.headers.keys().cloned().collect()
}

/// A flow with one Node step (`step_n`) and one of ours (`step_r`) running `function`, both
/// answering to the `caller` reply queue; returns the flow, the API stand-in, the two input
/// queues, the reply queue and its routing key, and a queue of both steps' data and errors.
struct ReplyFlow {
    flow: Flow,
    api: PlatformApi,
    node_in: String,
    ours_in: String,
    replies: String,
    reply_to: String,
    events: String,
}

impl ReplyFlow {
    async fn new() -> Self {
        let flow = Flow::new().await;
        let api = PlatformApi::start().await;
        for step in ["step_n", "step_r"] {
            api.set_step(&flow.flow_id, step, json!({}), false);
        }
        let reply_to = flow.key("caller", "reply");
        let replies = flow.queue("replies", std::slice::from_ref(&reply_to)).await;
        let event_keys: Vec<String> = ["step_n", "step_r"]
            .iter()
            .flat_map(|s| [flow.key(s, "message"), flow.key(s, "error")])
            .collect();
        let events = flow.queue("events", &event_keys).await;
        Self {
            node_in: flow.queue("node-in", &[]).await,
            ours_in: flow.queue("ours-in", &[]).await,
            flow,
            api,
            replies,
            reply_to,
            events,
        }
    }

    fn env(
        &self,
        step_id: &str,
        listen: &str,
        extra_env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let spec = StepSpec {
            step_id,
            function: "reply",
            listen,
            protocol_version: 2,
            extra_env,
        };
        step_env(&self.flow, &self.api, &spec)
    }

    /// Sends `body` to both steps, with `reply_to`.
    async fn send_both(&self, body: serde_json::Value) {
        for queue in [&self.node_in, &self.ours_in] {
            self.flow
                .send(
                    queue,
                    &json!({"id": "m-1", "body": body, "headers": {}}),
                    1,
                    &[
                        ("messageId", "m-1"),
                        ("threadId", "thread-1"),
                        ("reply_to", &self.reply_to),
                    ],
                )
                .await;
        }
    }

    /// `n` messages of `queue`, as (Node's, ours) by their `stepId`.
    async fn by_step(&self, queue: &str, n: usize, node: &StepProcess) -> Vec<Received> {
        let mut got = Vec::new();
        while got.len() < n {
            match self.flow.next(queue, WAIT).await {
                Some(message) => got.push(message),
                None => panic!(
                    "only {} of {n} arrived; node log:\n{}",
                    got.len(),
                    node.output()
                ),
            }
        }
        got.sort_by_key(|m| m.header_str("stepId"));
        got
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_reply_of_a_node_step_and_of_ours_read_the_same() {
    let rf = ReplyFlow::new().await;
    let mut node = StepProcess::node("node-reply", rf.env("step_n", &rf.node_in, vec![]));
    let ours = ours_in_process(rf.env("step_r", &rf.ours_in, vec![]));
    rf.send_both(json!({"q": 1})).await;

    let replies = rf.by_step(&rf.replies, 2, &node).await;
    let (theirs, mine) = (&replies[0], &replies[1]);
    assert_eq!(theirs.header_str("stepId").as_deref(), Some("step_n"));
    assert_eq!(mine.header_str("stepId").as_deref(), Some("step_r"));
    let expected = json!({
        "statusCode": 201,
        "body": {"got": {"q": 1}},
        "headers": {"content-type": "application/json"}
    });
    for reply in [theirs, mine] {
        assert_eq!(reply.routing_key, rf.reply_to);
        // Protocol 1 whatever ELASTICIO_PROTOCOL_VERSION (2 here) says, in both runtimes.
        assert_eq!(reply.header_int("protocolVersion"), Some(1));
        assert_eq!(reply.decrypted(), expected);
        for (name, value) in [
            ("reply_to", rf.reply_to.as_str()),
            ("threadId", "thread-1"),
            ("parentMessageId", "m-1"),
        ] {
            assert_eq!(reply.header_str(name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(header_names(theirs), header_names(mine), "the same headers");
    let events = rf.by_step(&rf.events, 2, &node).await;
    for (event, step) in events.iter().zip(["step_n", "step_r"]) {
        assert_eq!(
            event.routing_key,
            rf.flow.key(step, "message"),
            "data, no error"
        );
    }
    stop_ours(ours).await;
    node.kill().await;
    rf.flow.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_reply_of_a_node_step_and_of_ours_read_the_same() {
    let rf = ReplyFlow::new().await;
    let mut node = StepProcess::node("node-reply", rf.env("step_n", &rf.node_in, vec![]));
    let ours = ours_in_process(rf.env("step_r", &rf.ours_in, vec![]));
    rf.send_both(json!({"fail": true})).await;

    let replies = rf.by_step(&rf.replies, 2, &node).await;
    let errors = rf.by_step(&rf.events, 2, &node).await;
    for ((reply, error), step) in replies.iter().zip(&errors).zip(["step_n", "step_r"]) {
        assert_eq!(reply.header_str("stepId").as_deref(), Some(step));
        assert_eq!(error.routing_key, rf.flow.key(step, "error"));
        assert_eq!(
            reply.headers.get("x-eio-error-response"),
            Some(&lapin::types::AMQPValue::Boolean(true)),
            "{step}"
        );
        assert_eq!(
            reply.body,
            error.json()["error"].as_str().unwrap().as_bytes(),
            "{step}: the reply is the error's encrypted report"
        );
        let report = decode(&reply.body, 1);
        let keys: Vec<&str> = report
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["name", "message", "stack"], "{step}");
        assert!(
            report["message"]
                .as_str()
                .unwrap()
                .contains("asked to fail"),
            "{step}: {report}"
        );
        let mut reply_headers = header_names(reply);
        reply_headers.remove("x-eio-error-response");
        assert_eq!(reply_headers, header_names(error), "{step}");
    }
    assert_eq!(
        header_names(&replies[0]),
        header_names(&replies[1]),
        "the same headers"
    );
    stop_ours(ours).await;
    node.kill().await;
    rf.flow.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightweight_message_stored_by_either_runtime_is_read_by_the_other() {
    let store = object_store::ObjectStore::default();
    let url = store.serve().await;
    let flow = Flow::new().await;
    let api = PlatformApi::start().await;
    for step in ["step_n", "step_r", "step_m"] {
        api.set_step(&flow.flow_id, step, json!({}), false);
    }
    let storage_env = |emit: bool| {
        let mut env = vec![
            ("ELASTICIO_OBJECT_STORAGE_URI".to_owned(), url.clone()),
            (
                "ELASTICIO_OBJECT_STORAGE_TOKEN".to_owned(),
                object_store::TOKEN.to_owned(),
            ),
        ];
        if emit {
            env.push(("ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE".into(), "true".into()));
            env.push((
                "ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD".into(),
                "10".into(),
            ));
        }
        env
    };
    let node_in = flow.queue("node-in", &[]).await;
    let ours_in = flow.queue("ours-in", &[]).await;
    let node_out = flow
        .queue("node-out", &[flow.key("step_n", "message")])
        .await;
    let ours_out = flow
        .queue("ours-out", &[flow.key("step_r", "message")])
        .await;
    let spec = |step_id, function, listen, emit| StepSpec {
        step_id,
        function,
        listen,
        protocol_version: 1,
        extra_env: storage_env(emit),
    };
    let body = json!({"text": "a body longer than ten bytes", "n": [1, 2, 3]});

    // sailor-nodejs stores its output; ours reads it.
    let mut node = StepProcess::node(
        "node-lightweight",
        step_env(&flow, &api, &spec("step_n", "echo", &node_in, true)),
    );
    flow.send(
        &node_in,
        &json!({"id": "m-1", "body": body, "headers": {}}),
        1,
        &[("messageId", "m-1")],
    )
    .await;
    let stored = flow
        .next(&node_out, WAIT)
        .await
        .unwrap_or_else(|| panic!("no output; node log:\n{}", node.output()));
    let message = stored.decrypted();
    assert_eq!(message["body"], json!({}));
    let id = message["headers"]["x-ipaas-object-storage-id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!((store.count("POST"), store.count("GET")), (1, 0));
    assert_eq!(
        decrypt(&store.get(&id).unwrap()),
        body.to_string().as_bytes(),
        "sailor-nodejs stores the body's JSON, encrypted, raw"
    );
    node.kill().await;
    let ours = ours_in_process(step_env(
        &flow,
        &api,
        &spec("step_r", "echo", &ours_in, false),
    ));
    flow.send_raw(&ours_in, &stored).await;
    let read = flow.next(&ours_out, WAIT).await.expect("our step read it");
    assert_eq!(read.decrypted()["body"], body);
    assert_eq!((store.count("POST"), store.count("GET")), (1, 1));
    stop_ours(ours).await;

    // Ours stores its output; sailor-nodejs (a function with autoResolveObjectReferences) reads it.
    let ours = ours_in_process(step_env(
        &flow,
        &api,
        &spec("step_r", "echo", &ours_in, true),
    ));
    flow.send(
        &ours_in,
        &json!({"id": "m-2", "body": body, "headers": {}}),
        1,
        &[("messageId", "m-2")],
    )
    .await;
    let stored = flow
        .next(&ours_out, WAIT)
        .await
        .expect("our step stored it");
    assert_eq!(stored.decrypted()["body"], json!({}));
    assert_eq!((store.count("POST"), store.count("GET")), (2, 1));
    stop_ours(ours).await;
    let reader_in = flow.queue("reader-in", &[]).await;
    let reader_out = flow
        .queue("reader-out", &[flow.key("step_m", "message")])
        .await;
    let mut reader = StepProcess::node(
        "node-resolve",
        step_env(&flow, &api, &spec("step_m", "resolve", &reader_in, false)),
    );
    flow.send_raw(&reader_in, &stored).await;
    let read = flow
        .next(&reader_out, WAIT)
        .await
        .unwrap_or_else(|| panic!("no output; node log:\n{}", reader.output()));
    assert_eq!(read.decrypted()["body"], body);
    assert_eq!((store.count("POST"), store.count("GET")), (2, 2));
    let gets: Vec<_> = store
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET")
        .collect();
    assert_eq!(
        gets[0].request_id,
        gets[1]
            .request_id
            .as_ref()
            .map(|id| id.replace("step_m", "step_r"))
    );
    reader.kill().await;
    flow.cleanup().await;
}

/// What a service-mode run POSTed to the result URL: the body and its Authorization header.
type Posted = Arc<Mutex<Vec<(Value, Option<String>)>>>;

async fn result_url_stand_in() -> (String, Posted) {
    let posted: Posted = Arc::default();
    let app = axum::Router::new()
        .route(
            "/result",
            axum::routing::post(
                |axum::extract::State(posted): axum::extract::State<Posted>,
                 headers: axum::http::HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    posted.lock().unwrap().push((body, auth));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(posted.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://svc-user:svc-pass@{addr}/result"), posted)
}

#[tokio::test]
async fn service_mode_answers_a_missing_model_method_as_sailor_nodejs_does() {
    let (url, posted) = result_url_stand_in().await;
    let dir = harness::node_component_dir();
    let env = |function: &str| {
        vec![
            ("ELASTICIO_POST_RESULT_URL", url.clone()),
            ("ELASTICIO_CFG", "{}".to_owned()),
            ("ELASTICIO_API_URI", "http://127.0.0.1:1".to_owned()),
            ("ELASTICIO_API_USERNAME", "u".to_owned()),
            ("ELASTICIO_API_KEY", "k".to_owned()),
            ("ELASTICIO_ACTION_OR_TRIGGER", function.to_owned()),
            ("ELASTICIO_GET_MODEL_METHOD", "listThings".to_owned()),
            ("ELASTICIO_COMPONENT_PATH", ".".to_owned()),
        ]
    };
    let node = tokio::process::Command::new("node")
        .args([
            "node_modules/elasticio-sailor-nodejs/runService.js",
            "selectModel",
        ])
        .current_dir(&dir)
        .envs(env("echo"))
        .output()
        .await
        .expect("node runs");
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let ours = tokio::process::Command::new(env!("CARGO_BIN_EXE_component"))
        .args(["service", "selectModel"])
        .envs(env("request"))
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("ours runs");
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );

    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 2, "{posted:?}");
    let (node_body, node_auth) = &posted[0];
    let (our_body, our_auth) = &posted[1];
    assert_eq!(
        node_body,
        &json!({"status": "error", "data": {"message":
            "Method \"listThings\" is not found in \"echo\" action or trigger"}})
    );
    assert_eq!(
        our_body
            .to_string()
            .replace("\\\"request\\\"", "\\\"echo\\\""),
        node_body.to_string(),
        "the same answer, the function's name aside"
    );
    assert_eq!(
        our_auth, node_auth,
        "user:pass of the URL as basic auth, both"
    );
    assert!(
        node_auth
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
}
