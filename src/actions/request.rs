//! `request`: one HTTP call per message, emitting `{status, headers, body}`.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::config::StepConfig;
use crate::message::Message;
use crate::module::{Action, Context, ProcessError};

/// The `request` action.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request;

#[async_trait]
impl Action for Request {
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let method = config.str_field("method").unwrap_or("GET");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            ProcessError::Config(format!("`method` is not an HTTP method: {method}"))
        })?;
        let path = config
            .str_field("path")
            .ok_or_else(|| ProcessError::Config("`path` is missing".into()))?;
        let path = crate::template::fill_path(path, &message.body).map_err(ProcessError::Input)?;
        let http = ctx.http()?;
        let mut request = http.request(method.clone(), &path)?;
        if method != Method::GET && method != Method::HEAD {
            request = request.json(&message.body);
        }
        let response = http.send(request).await?;
        let status = response.status().as_u16();
        let headers: Map<String, Value> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), Value::from(value.to_str().ok()?))))
            .collect();
        let bytes = response.bytes().await.map_err(ProcessError::Response)?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&bytes)));
        if !(200..300).contains(&status) {
            return Err(ProcessError::Api {
                status,
                excerpt: crate::template::excerpt(&bytes),
            });
        }
        ctx.emitter()
            .data(Message::with_body(
                json!({"status": status, "headers": headers, "body": body}),
            ))
            .await?;
        Ok(())
    }
}
