//! `request`: one HTTP call per message, emitting `{status, headers, body}`.
//!
//! `cfg.path` may hold `{field}` placeholders, filled from the message body and
//! percent-encoded as one path segment each. The request never leaves `api_base_url`: a path
//! with a `.` or `..` segment (a body value `..` included) and a URL outside the base (another
//! origin, or a path not under the base's path) are refused before anything is sent, so the
//! bearer token only goes where the account's API lives. The message body goes out as the JSON body of
//! methods that carry one (POST, PUT, PATCH, ...; not GET, HEAD, DELETE, OPTIONS). `headers`
//! and `query` are JSON objects, given as objects or as JSON text (the UI's text areas).
//!
//! Throttling is not failure: 429 and 503 become a rebound carrying the API's `Retry-After`,
//! and the function succeeds, so the platform delivers the message again later. Any other
//! non-2xx is an error naming the status and the start of the body. A body larger than
//! `max_response_bytes` is an error too, after reading no more than that.

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use super::response::{body_json, headers_json};
use super::retry_after::retry_after_ms;
use crate::template::{fill_path, has_dot_segment, is_within};
use sailor::config::StepConfig;
use sailor::event::Rebound;
use sailor::excerpt::excerpt;
use sailor::http::{BodyCap, read_capped, strip_url_secrets};
use sailor::message::Message;
use sailor::module::{Action, Context, ProcessError};

/// Every config field the action reads; a unit test checks `component.json` against it.
pub const FIELDS: &[&str] = &["method", "path", "headers", "query", "max_response_bytes"];

/// The `request` action.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request;

/// A config field that holds a JSON object, given as an object or as JSON text.
fn object_field(config: &StepConfig, field: &str) -> Result<Map<String, Value>, ProcessError> {
    let wrong =
        |detail: String| ProcessError::Config(format!("`{field}` must be a JSON object{detail}"));
    match config.fields.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(wrong(format!("; got {other}"))),
            Err(error) => Err(wrong(format!("; its text is not JSON ({error})"))),
        },
        Some(other) => Err(wrong(format!("; got {other}"))),
    }
}

/// A scalar as the text sent on the wire.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn headers(config: &StepConfig) -> Result<Vec<(HeaderName, HeaderValue)>, ProcessError> {
    let mut out = Vec::new();
    for (name, value) in object_field(config, "headers")? {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ProcessError::Config(format!("`headers`: `{name}` is not a header name"))
        })?;
        if header == AUTHORIZATION {
            return Err(ProcessError::Config(
                "`headers` may not set Authorization: the runtime sends the access token".into(),
            ));
        }
        let value = scalar_text(&value)
            .and_then(|text| HeaderValue::from_str(&text).ok())
            .ok_or_else(|| {
                ProcessError::Config(format!(
                    "`headers`: the value of `{name}` is not a valid header value"
                ))
            })?;
        out.push((header, value));
    }
    Ok(out)
}

fn query(config: &StepConfig) -> Result<Vec<(String, String)>, ProcessError> {
    let mut out = Vec::new();
    for (name, value) in object_field(config, "query")? {
        let values = match &value {
            Value::Array(values) => values.iter().collect(),
            _ => vec![&value],
        };
        for value in values {
            let text = scalar_text(value).ok_or_else(|| {
                ProcessError::Config(format!(
                    "`query`: the value of `{name}` must be text, a number, a boolean or a list of those"
                ))
            })?;
            out.push((name.clone(), text));
        }
    }
    Ok(out)
}

/// `cfg.method`, GET when unset, in any letter case.
fn method(config: &StepConfig) -> Result<Method, ProcessError> {
    let method = config.str_field("method").unwrap_or("GET").trim();
    // Read on every message: an upper-case name, the usual, is parsed without a copy.
    let parsed = if method.bytes().any(|b| b.is_ascii_lowercase()) {
        Method::from_bytes(method.to_ascii_uppercase().as_bytes())
    } else {
        Method::from_bytes(method.as_bytes())
    };
    parsed.map_err(|_| ProcessError::Config(format!("`method` is not an HTTP method: `{method}`")))
}

/// Reads every field of the action's config as a message would, without sending anything:
/// lets `component.json` be checked against the parser that runs in a flow.
pub fn check_config(config: &StepConfig) -> Result<(), ProcessError> {
    method(config)?;
    headers(config)?;
    query(config)?;
    Ok(())
}

/// Refuses a filled path that would take the request, and its bearer token, away from
/// `api_base_url`: a dot-segment anywhere (URL parsers resolve `..` and `%2E%2E` alike), or a
/// resolved URL outside the base.
fn check_target(
    config: &StepConfig,
    parsed_base: Option<&Url>,
    path: &str,
    url: &Url,
) -> Result<(), ProcessError> {
    if has_dot_segment(path) {
        return Err(ProcessError::Input(format!(
            "the path `{path}` has a `.` or `..` segment, which would send the request to \
             another path; nothing was sent"
        )));
    }
    let Some(base) = config.api_base_url.as_deref() else {
        return Ok(());
    };
    let parsed_here;
    let base = match parsed_base {
        Some(parsed) => parsed,
        None => {
            parsed_here = Url::parse(base)
                .map_err(|_| ProcessError::Config("`api_base_url` is not a URL".into()))?;
            &parsed_here
        }
    };
    if is_within(base, url) {
        return Ok(());
    }
    let (mut shown, mut shown_base) = (url.clone(), base.clone());
    strip_url_secrets(&mut shown);
    strip_url_secrets(&mut shown_base);
    Err(ProcessError::Config(format!(
        "`path` resolves to {shown}, outside `api_base_url` ({shown_base}); the access token \
         is not sent there"
    )))
}

fn carries_body(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS].contains(method)
}

#[async_trait]
impl Action for Request {
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let method = method(config)?;
        let path = config
            .str_field("path")
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| ProcessError::Config("`path` is missing".into()))?;
        let path = fill_path(path, &message.body).map_err(ProcessError::Input)?;
        let extra_headers = headers(config)?;
        let cap = BodyCap::from_config(config).map_err(ProcessError::Config)?;
        let query = query(config)?;

        let http = ctx.http()?;
        let url = http.url(&path)?;
        check_target(config, http.base_url(), &path, &url)?;
        let mut request = http.request_url(method.clone(), url);
        // reqwest rewrites the URL for any query, even an empty one.
        if !query.is_empty() {
            request = request.query(&query);
        }
        for (name, value) in extra_headers {
            request = request.header(name, value);
        }
        if carries_body(&method) {
            request = request.json(&message.body);
        }
        let response = http.send(request).await?;
        let status = response.status();
        let headers = headers_json(response.headers());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_ms(v, SystemTime::now()));
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            let reason = format!(
                "the API answered HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned();
            tracing::info!(
                message = "API asked to retry later; rebounding the message.",
                status = status.as_u16(),
                retry_after_ms = retry_after
            );
            ctx.emitter()
                .rebound(Rebound {
                    reason,
                    retry_after_ms: retry_after,
                })
                .await?;
            return Ok(());
        }
        // Read only now: a rebound needs no body, so a throttled answer is never refused for
        // its size.
        let bytes = read_capped(response, cap)
            .await
            .map_err(|error| ProcessError::reading_body(status.as_u16(), error))?;
        if !status.is_success() {
            return Err(ProcessError::Api {
                status: status.as_u16(),
                excerpt: excerpt(&bytes, ctx.redactor()),
            });
        }
        // Built from its parts, which move in: `json!` would copy the headers and the body
        // through `to_value`.
        let mut output = Map::with_capacity(3);
        output.insert("status".to_owned(), status.as_u16().into());
        output.insert("headers".to_owned(), Value::Object(headers));
        output.insert(
            "body".to_owned(),
            body_json(content_type.as_deref(), &bytes),
        );
        ctx.emitter()
            .data(Message::with_body(Value::Object(output)))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(fields: Value) -> StepConfig {
        StepConfig::from_value(fields).unwrap()
    }

    #[test]
    fn headers_and_query_accept_objects_or_json_text() {
        let from_object =
            config(json!({"headers": {"X-A": "1", "X-N": 2}, "query": {"q": ["a", "b"], "n": 3}}));
        let from_text = config(
            json!({"headers": "{\"X-A\": \"1\", \"X-N\": 2}", "query": "{\"q\": [\"a\", \"b\"], \"n\": 3}"}),
        );
        for config in [from_object, from_text] {
            let h = headers(&config).unwrap();
            assert_eq!(
                h.iter()
                    .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                    .collect::<Vec<_>>(),
                vec![("x-a", "1"), ("x-n", "2")]
            );
            assert_eq!(
                query(&config).unwrap(),
                vec![
                    ("q".to_owned(), "a".to_owned()),
                    ("q".to_owned(), "b".to_owned()),
                    ("n".to_owned(), "3".to_owned())
                ]
            );
        }
        assert!(headers(&config(json!({"headers": ""}))).unwrap().is_empty());
    }

    #[test]
    fn bad_headers_and_query_name_their_field() {
        for (fields, field) in [
            (json!({"headers": "[1]"}), "`headers`"),
            (json!({"headers": "{oops"}), "`headers`"),
            (json!({"headers": {"bad name": "x"}}), "`headers`"),
            (
                json!({"headers": {"authorization": "Bearer x"}}),
                "`headers`",
            ),
            (json!({"headers": {"x": {"nested": 1}}}), "`headers`"),
        ] {
            let error = headers(&config(fields)).unwrap_err();
            assert!(error.to_string().contains(field), "{error}");
        }
        let error = query(&config(json!({"query": {"q": {"a": 1}}}))).unwrap_err();
        assert!(error.to_string().contains("`query`"), "{error}");
        let error = query(&config(json!({"query": 5}))).unwrap_err();
        assert!(error.to_string().contains("`query`"), "{error}");
    }

    #[test]
    fn methods_are_read_in_any_letter_case() {
        let purge = Method::from_bytes(b"PURGE").unwrap();
        for (given, read) in [
            (json!({}), Method::GET),
            (json!({"method": "POST"}), Method::POST),
            (json!({"method": "post"}), Method::POST),
            (json!({"method": " Patch "}), Method::PATCH),
            (json!({"method": "purge"}), purge.clone()),
            (json!({"method": "PURGE"}), purge),
        ] {
            assert_eq!(method(&config(given.clone())).unwrap(), read, "{given}");
        }
        let error = method(&config(json!({"method": "no such"}))).unwrap_err();
        assert!(error.to_string().contains("`no such`"), "{error}");
    }

    #[test]
    fn only_methods_with_a_body_send_the_message() {
        assert!(carries_body(&Method::POST) && carries_body(&Method::PATCH));
        assert!(!carries_body(&Method::GET) && !carries_body(&Method::DELETE));
    }

    #[test]
    fn component_json_declares_every_field_the_action_reads() {
        let descriptor: Value = serde_json::from_str(include_str!("../../component.json")).unwrap();
        let declared = descriptor["actions"]["request"]["fields"]
            .as_object()
            .unwrap();
        let mut names: Vec<&str> = declared.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }
}
