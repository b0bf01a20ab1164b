//! `component run`: one message through one trigger or action, without a broker.
//!
//! Every event is printed as one JSON line on stdout; logs go to stderr. Bad input is an
//! [`InputError`] naming the file and the problem.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::clock;
use crate::config::StepConfig;
use crate::emitter::{EmitError, Emitter, EventSink};
use crate::event::{Event, EventKind};
use crate::message::Message;
use crate::registry::Registry;
use crate::step::{Outcome, Step, UnknownFunction};

/// What `component run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The trigger or action.
    pub function: String,
    /// The step config file.
    pub config: PathBuf,
    /// The message file; `-` for stdin; none for an empty message.
    pub message: Option<PathBuf>,
    /// The snapshot file; none for `{}`.
    pub snapshot: Option<PathBuf>,
}

/// Input that `component run` cannot use. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid JSON, or not the JSON expected.
    #[error("{path}: {problem} at line {line}, column {column}")]
    Json {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// The function is not compiled in.
    #[error(transparent)]
    UnknownFunction(#[from] UnknownFunction),
}

impl InputError {
    fn json(path: &str, error: &serde_json::Error) -> Self {
        let problem = match error.classify() {
            serde_json::error::Category::Data => format!("unexpected content: {error}"),
            _ => "invalid JSON".to_owned(),
        };
        // serde_json appends " at line L column C" to data errors; we say it ourselves.
        let problem = problem
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        Self::Json {
            path: path.to_owned(),
            problem,
            line: error.line(),
            column: error.column(),
        }
    }
}

/// How the run ended, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// No error event. Exit 0.
    Succeeded,
    /// An error event was emitted. Exit 1.
    Failed,
}

/// Prints each event as a JSON line on the given writer (stdout in the binary).
pub struct JsonLinesSink {
    out: Mutex<Box<dyn std::io::Write + Send>>,
    errors: Mutex<usize>,
}

impl JsonLinesSink {
    /// A sink writing to `out`.
    pub fn new(out: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            out: Mutex::new(out),
            errors: Mutex::new(0),
        }
    }

    fn error_count(&self) -> usize {
        *self
            .errors
            .lock()
            .expect("no code panics while holding this lock")
    }
}

#[async_trait]
impl EventSink for JsonLinesSink {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        if event.kind() == EventKind::Error {
            *self
                .errors
                .lock()
                .expect("no code panics while holding this lock") += 1;
        }
        let mut out = self
            .out
            .lock()
            .expect("no code panics while holding this lock");
        writeln!(out, "{}", event.to_json_line())
            .and_then(|()| out.flush())
            .map_err(|source| EmitError::Transport {
                kind: event.kind(),
                source: Box::new(source),
            })
    }
}

fn read_input(path: &Path) -> Result<(String, String), InputError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| InputError::Read {
                path: "standard input".into(),
                source,
            })?;
        return Ok(("standard input".into(), text));
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: name.clone(),
        source,
    })?;
    Ok((name, text))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, InputError> {
    let (name, text) = read_input(path)?;
    serde_json::from_str(&text).map_err(|error| InputError::json(&name, &error))
}

/// Runs one message through `request.function`, writing events to `sink`.
pub async fn run(
    registry: &Registry,
    request: &RunRequest,
    out: Box<dyn std::io::Write + Send>,
) -> Result<RunStatus, InputError> {
    let config: StepConfig = read_json(&request.config)?;
    let message: Message = match &request.message {
        Some(path) => read_json(path)?,
        None => Message::default(),
    };
    let snapshot: Value = match &request.snapshot {
        Some(path) => read_json(path)?,
        None => Value::Object(Default::default()),
    };
    let step = Step::new(registry, &request.function, config, clock::system())?;
    let sink = Arc::new(JsonLinesSink::new(out));
    let emitter = Emitter::new(sink.clone());
    let outcome = step.process(&message, &snapshot, &emitter).await;
    Ok(match outcome {
        Outcome::Completed if sink.error_count() == 0 => RunStatus::Succeeded,
        _ => RunStatus::Failed,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::HttpReply;

    /// A writer whose bytes a test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_http_reply_is_printed_as_one_json_line_like_every_event() {
        let out = Shared::default();
        let emitter = Emitter::new(Arc::new(JsonLinesSink::new(Box::new(out.clone()))));
        emitter
            .http_reply(HttpReply::new(202, serde_json::json!({"accepted": true})))
            .await
            .unwrap();
        emitter
            .data(Message::with_body(serde_json::json!({})))
            .await
            .unwrap();
        let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"event":"httpReply","payload":{"statusCode":202,"body":{"accepted":true},"headers":{}}}"#
        );
    }

    #[tokio::test]
    async fn update_snapshot_is_printed_as_its_own_line_and_a_bad_one_is_not_printed() {
        let out = Shared::default();
        let emitter = Emitter::new(Arc::new(JsonLinesSink::new(Box::new(out.clone()))));
        emitter.snapshot(json!({"a": 1})).await.unwrap();
        emitter.update_snapshot(json!({"b": 2})).await.unwrap();
        assert!(emitter.update_snapshot(json!("no")).await.is_err());
        let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            printed,
            "{\"event\":\"snapshot\",\"payload\":{\"a\":1}}\n\
             {\"event\":\"updateSnapshot\",\"payload\":{\"b\":2}}\n"
        );
    }
}
