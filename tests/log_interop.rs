//! The bunyan log lines (`COMPONENT_LOG_FORMAT=bunyan`) have the shape of the lines
//! elastic.io's own Node.js runtime writes (elasticio-sailor-nodejs 2.7.8, run from the
//! interop fixture), so a pipeline built for sailor's logs parses ours.

use std::path::Path;
use std::sync::{Arc, Mutex};

use sailor::telemetry::logs::{LineFormat, LogFormat, subscriber};
use serde_json::{Map, Value};
use tracing_subscriber::fmt::MakeWriter;

const VARS: [(&str, &str); 6] = [
    ("ELASTICIO_FLOW_ID", "flow-1"),
    ("ELASTICIO_STEP_ID", "step_2"),
    ("ELASTICIO_FUNCTION", "request"),
    ("ELASTICIO_API_USERNAME", "user@example.com"),
    ("ELASTICIO_EXEC_ID", "exec-1"),
    ("ELASTICIO_WORKSPACE_ID", "workspace-1"),
];

/// What sailor-nodejs writes for a message's log line, through its own `lib/logging.js`.
fn sailor_line() -> Map<String, Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node-component");
    assert!(
        dir.join("node_modules/elasticio-sailor-nodejs/lib/logging.js")
            .exists(),
        "run `npm ci` in {} (scripts/test does)",
        dir.display()
    );
    let script = "require('elasticio-sailor-nodejs/lib/logging.js')\
        .child({threadId: 't-1', messageId: 'm-1', parentMessageId: 'p-1'})\
        .info('Message settled.')";
    let output = std::process::Command::new("node")
        .args(["-e", script])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(VARS)
        .output()
        .expect("node runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("not one JSON line: {text}"))
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Lines {
    type Writer = Lines;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

/// Ours, for the same message: logged in the worker's delivery span.
fn our_line() -> Map<String, Value> {
    let lines = Lines::default();
    let subscriber = subscriber(
        LineFormat::new(LogFormat::Bunyan, VARS),
        tracing_subscriber::EnvFilter::new("info"),
        lines.clone(),
    );
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "delivery",
            messageId = "m-1",
            parentMessageId = "p-1",
            threadId = "t-1",
            function = "request",
            stepId = "step_2"
        );
        let _entered = span.enter();
        tracing::info!(message = "Message settled.", decision = "Ack");
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("not one JSON line: {text}"))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[test]
fn a_bunyan_line_has_every_field_of_sailors_line_with_the_same_type_and_value() {
    let sailor = sailor_line();
    let ours = our_line();
    for (key, theirs) in &sailor {
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from ours: {ours:?}"));
        assert_eq!(kind(mine), kind(theirs), "{key}: {mine} vs {theirs}");
        match key.as_str() {
            // Whose line it is, when and where: same shape, not the same value.
            "name" | "pid" => {}
            "time" => assert_eq!(
                mine.as_str().unwrap().len(),
                theirs.as_str().unwrap().len(),
                "{mine} vs {theirs}"
            ),
            _ => assert_eq!(mine, theirs, "{key}"),
        }
    }
    assert_eq!(sailor["name"], "sailor");
    assert_eq!(ours["name"], "component");
}
