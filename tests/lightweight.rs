//! Lightweight messages through the worker on the real RabbitMQ, against a loopback stand-in
//! for elastic.io's object storage (maester): bodies read back before the function runs, and
//! outgoing bodies over the threshold stored.

mod bed;
#[path = "object_store/mod.rs"]
mod object_store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bed::{Bed, Running, decrypt, decrypt_field, routing_keys, start, text};
use lapin::types::FieldTable;
use object_store::{ObjectStore, TOKEN};
use sailor::crypto::Encoding;
use sailor::{Action, Context, Message, ProcessError, Registry, StepConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const OBJECT_ID_HEADER: &str = "x-ipaas-object-storage-id";

/// Emits `{"echo": body}`, counting its calls.
#[derive(Clone, Default)]
struct Echo {
    calls: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl Action for Echo {
    async fn process(
        &self,
        message: &Message,
        _config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        self.calls.lock().unwrap().push(message.body.clone());
        ctx.emitter()
            .data(Message::with_body(json!({ "echo": message.body })))
            .await?;
        Ok(())
    }
}

fn start_echo(bed: &Bed, echo: &Echo, extra: &[(&str, String)]) -> Running {
    let mut vars = bed.vars("echo", &json!({}));
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let mut registry = Registry::new();
    registry.action("echo", echo.clone());
    start(vars, registry)
}

fn storage_vars(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ELASTICIO_OBJECT_STORAGE_URI", url.to_owned()),
        ("ELASTICIO_OBJECT_STORAGE_TOKEN", TOKEN.to_owned()),
    ]
}

async fn send(bed: &Bed, message: &Value, id: &str) {
    let body = bed::cipher().encode(message.to_string().as_bytes(), Encoding::Base64);
    let mut headers = FieldTable::default();
    headers.insert("messageId".into(), text(id));
    bed.send_raw(&body, headers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightweight_input_is_read_from_object_storage_once_before_the_function_runs() {
    let storage = ObjectStore::default();
    let url = storage.serve().await;
    let stored = json!({"big": "x".repeat(2000), "n": [1, 2, 3]});
    storage.put(
        "obj-in",
        bed::cipher().encrypt(stored.to_string().as_bytes()),
    );
    let bed = Bed::new().await;
    send(
        &bed,
        &json!({"body": {}, "headers": {OBJECT_ID_HEADER: "obj-in"}}),
        "in-l",
    )
    .await;
    let echo = Echo::default();
    let worker = start_echo(&bed, &echo, &storage_vars(&url));

    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    assert_eq!(decrypt(&events[0])["body"], json!({ "echo": stored }));
    assert_eq!(
        *echo.calls.lock().unwrap(),
        [stored],
        "the function saw the stored body"
    );
    let seen = storage.seen();
    assert_eq!(seen.len(), 1, "one request: {seen:?}");
    assert_eq!(
        (seen[0].method, seen[0].path.as_str()),
        ("GET", "/objects/obj-in")
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen[0].request_id.as_deref(), Some("f:flow-1;s:step_2;m:"));
    worker.stop().await;
    assert_eq!(bed.input_ready().await, 0, "acked");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightweight_input_without_object_storage_is_an_error_naming_the_header_and_the_variable()
{
    let bed = Bed::new().await;
    let input = json!({"body": {}, "headers": {OBJECT_ID_HEADER: "obj-x"}});
    send(&bed, &input, "in-x").await;
    let echo = Echo::default();
    let worker = start_echo(&bed, &echo, &[]);

    let events = bed.collect(2, WAIT).await;
    assert_eq!(
        routing_keys(&events),
        ["error", "dead"],
        "error, then rejection"
    );
    let error: Value = serde_json::from_slice(&events[0].data).unwrap();
    let report = decrypt_field(error["error"].as_str().unwrap());
    assert_eq!(report["name"], "ObjectStorageError");
    assert_eq!(
        report["message"],
        "the input message's body is in object storage (message header \
         `x-ipaas-object-storage-id`: \"obj-x\") and cannot be read: \
         ELASTICIO_OBJECT_STORAGE_URI is not set"
    );
    assert_eq!(decrypt_field(error["errorInput"].as_str().unwrap()), input);
    assert!(
        echo.calls.lock().unwrap().is_empty(),
        "never run on an empty body"
    );
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightweight_input_whose_object_is_gone_is_an_error_and_is_not_retried() {
    let storage = ObjectStore::default();
    let url = storage.serve().await;
    let bed = Bed::new().await;
    send(
        &bed,
        &json!({"body": {}, "headers": {OBJECT_ID_HEADER: "missing"}}),
        "in-g",
    )
    .await;
    let echo = Echo::default();
    let worker = start_echo(&bed, &echo, &storage_vars(&url));

    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    let report = decrypt_field(
        serde_json::from_slice::<Value>(&events[0].data).unwrap()["error"]
            .as_str()
            .unwrap(),
    );
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .ends_with("cannot be read: object storage answered HTTP 404 to GET /objects/missing"),
        "{report}"
    );
    assert_eq!(storage.count("GET"), 1, "a 4xx is final");
    assert!(echo.calls.lock().unwrap().is_empty());
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_threshold_is_stored_one_at_it_is_not_and_the_stored_one_reads_back() {
    let storage = ObjectStore::default();
    let url = storage.serve().await;
    let bed = Bed::new().await;
    // The echo's body is `{"echo":"xx..."}`: 11 bytes of JSON around the string.
    let threshold = 100;
    send(&bed, &json!({"body": "x".repeat(89)}), "at").await;
    send(&bed, &json!({"body": "x".repeat(90)}), "over").await;
    let echo = Echo::default();
    let mut vars = storage_vars(&url);
    vars.extend([
        ("ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE", "true".to_owned()),
        (
            "ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD",
            threshold.to_string(),
        ),
    ]);
    let worker = start_echo(&bed, &echo, &vars);

    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["data", "data"]);
    let (at, over) = (decrypt(&events[0]), decrypt(&events[1]));
    assert_eq!(
        at["body"],
        json!({"echo": "x".repeat(89)}),
        "100 bytes stay inline"
    );
    assert!(at["headers"].get(OBJECT_ID_HEADER).is_none());
    assert_eq!(over["body"], json!({}), "101 bytes go to object storage");
    let id = over["headers"][OBJECT_ID_HEADER]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(storage.count("POST"), 1, "{:?}", storage.seen());
    assert_eq!(storage.count("GET"), 0);
    let post = &storage.seen()[0];
    assert_eq!(
        post.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(post.content_type.as_deref(), Some("application/json"));
    let expected = format!(r#"{{"echo":"{}"}}"#, "x".repeat(90));
    assert_eq!(
        bed::cipher().decrypt(&storage.get(&id).unwrap()).unwrap(),
        expected.as_bytes(),
        "the body's JSON, encrypted"
    );
    worker.stop().await;

    // The lightweight output is the next step's input: read back, byte for byte.
    let reader = Echo::default();
    bed.send_raw(
        &events[1].data,
        events[1].properties.headers().clone().unwrap_or_default(),
    )
    .await;
    let worker = start_echo(&bed, &reader, &storage_vars(&url));
    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    assert_eq!(
        *reader.calls.lock().unwrap(),
        [json!({"echo": "x".repeat(90)})]
    );
    assert_eq!((storage.count("POST"), storage.count("GET")), (1, 1));
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_5xx_is_retried_twice_then_the_input_fails() {
    let storage = ObjectStore::default();
    let url = storage.serve().await;
    storage.put(
        "obj",
        bed::cipher().encrypt(json!({"k": "v"}).to_string().as_bytes()),
    );
    let bed = Bed::new().await;
    let input = json!({"body": {}, "headers": {OBJECT_ID_HEADER: "obj"}});
    let echo = Echo::default();
    // Two 503s: the third request reads the body.
    storage.fail_next(2);
    send(&bed, &input, "in-2").await;
    let worker = start_echo(&bed, &echo, &storage_vars(&url));
    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    assert_eq!(decrypt(&events[0])["body"], json!({"echo": {"k": "v"}}));
    assert_eq!(storage.count("GET"), 3);

    // Three 503s: the retries are spent, and the input fails.
    storage.fail_next(3);
    send(&bed, &input, "in-3").await;
    let events = bed.collect(2, WAIT).await;
    assert_eq!(routing_keys(&events), ["error", "dead"]);
    let report = decrypt_field(
        serde_json::from_slice::<Value>(&events[0].data).unwrap()["error"]
            .as_str()
            .unwrap(),
    );
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .ends_with("object storage answered HTTP 503 to GET /objects/obj"),
        "{report}"
    );
    assert_eq!(storage.count("GET"), 6, "three more: one and two retries");
    assert_eq!(echo.calls.lock().unwrap().len(), 1);
    worker.stop().await;
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_bodies_are_stored_with_the_body_and_one_already_stored_keeps_its_id() {
    use sailor::clock;
    use sailor::settings::Settings;
    use sailor::step::Step;

    let storage = ObjectStore::default();
    let url = storage.serve().await;
    storage.put(
        "pre-stored",
        bed::cipher().encrypt(json!({"old": true}).to_string().as_bytes()),
    );
    let bed = Bed::new().await;
    let big = json!({"big": "y".repeat(200)});
    send(
        &bed,
        &json!({
            "body": {"small": 1},
            "passthrough": {
                "step_0": {"body": {}, "headers": {OBJECT_ID_HEADER: "pre-stored"}},
                "step_1": {"body": big, "headers": {}}
            }
        }),
        "in-p",
    )
    .await;
    let mut vars = bed.vars("echo", &json!({}));
    vars.extend(
        storage_vars(&url)
            .into_iter()
            .chain([
                ("ELASTICIO_EMIT_LIGHTWEIGHT_MESSAGE", "true".to_owned()),
                ("ELASTICIO_OBJECT_STORAGE_SIZE_THRESHOLD", "100".to_owned()),
            ])
            .map(|(k, v)| (k.to_owned(), v)),
    );
    let settings = Settings::from_vars(vars).unwrap();
    let echo = Echo::default();
    let mut registry = Registry::new();
    registry.action("echo", echo.clone());
    let step = Step::new(&registry, "echo", StepConfig::default(), clock::system()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // A passthrough step, as the platform's step JSON would say.
    let worker = tokio::spawn(sailor::worker::serve(
        settings,
        step,
        json!({}),
        true,
        async {
            let _ = stopped.await;
        },
    ));

    let events = bed.collect(1, WAIT).await;
    assert_eq!(routing_keys(&events), ["data"]);
    let out = decrypt(&events[0]);
    assert_eq!(
        *echo.calls.lock().unwrap(),
        [json!({"small": 1})],
        "the function's own body"
    );
    assert_eq!(out["body"], json!({}));
    let own_id = out["headers"][OBJECT_ID_HEADER].as_str().unwrap();
    let passthrough = &out["passthrough"];
    assert_eq!(passthrough["step_0"]["body"], json!({}));
    assert_eq!(
        passthrough["step_0"]["headers"][OBJECT_ID_HEADER], "pre-stored",
        "already stored: not stored again"
    );
    assert_eq!(passthrough["step_1"]["body"], json!({}));
    let step_1_id = passthrough["step_1"]["headers"][OBJECT_ID_HEADER]
        .as_str()
        .unwrap();
    assert_eq!(
        passthrough["step_2"]["body"],
        json!({}),
        "this step's own entry is the lightened message"
    );
    assert_eq!(passthrough["step_2"]["headers"][OBJECT_ID_HEADER], own_id);
    assert_eq!((storage.count("GET"), storage.count("POST")), (1, 2));
    let plain = |id: &str| {
        serde_json::from_slice::<Value>(&bed::cipher().decrypt(&storage.get(id).unwrap()).unwrap())
            .unwrap()
    };
    assert_eq!(plain(own_id), json!({"echo": {"small": 1}}));
    assert_eq!(plain(step_1_id), big);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(40), worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    bed.cleanup().await;
}
