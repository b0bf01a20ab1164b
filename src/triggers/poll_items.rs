//! `pollItems`: emits the items of a list endpoint that are newer than the snapshot.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::StepConfig;
use crate::message::Message;
use crate::module::{Context, ProcessError, Trigger};

/// The `pollItems` trigger.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollItems;

#[async_trait]
impl Trigger for PollItems {
    async fn process(
        &self,
        _message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let path = config
            .str_field("path")
            .ok_or_else(|| ProcessError::Config("`path` is missing".into()))?;
        let pointer = config.str_field("items_pointer").unwrap_or("");
        let modified = config.str_field("modified_field").unwrap_or("updated_at");
        let since = snapshot
            .get("since")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let http = ctx.http()?;
        let mut request = http.request(Method::GET, path)?;
        if let (Some(param), Some(since)) = (config.str_field("since_param"), since.as_deref()) {
            request = request.query(&[(param, since)]);
        }
        let response = http.send(request).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ProcessError::Response)?;
        if !(200..300).contains(&status) {
            return Err(ProcessError::Api {
                status,
                excerpt: crate::template::excerpt(&bytes),
            });
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| ProcessError::Api {
            status,
            excerpt: format!("the body is not JSON: {e}"),
        })?;
        let items = body
            .pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut high_water = since.clone();
        for item in items {
            let stamp = item
                .get(modified)
                .and_then(Value::as_str)
                .map(str::to_owned);
            if since.is_some() && stamp <= since {
                continue;
            }
            if stamp > high_water {
                high_water = stamp;
            }
            ctx.emitter().data(Message::with_body(item)).await?;
        }
        ctx.emitter()
            .snapshot(json!({ "since": high_water }))
            .await?;
        Ok(())
    }
}
