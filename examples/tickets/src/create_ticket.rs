//! `createTicket`: an action creating one ticket per message.
//!
//! The ticket goes to the queue named by the flow variable `queue` (set per flow on the
//! platform), else to `support`; the step id is sent along so the desk can show where the
//! ticket came from.
//!
//! Its service methods feed the platform's UI: `selectModel` with the model method `queues`
//! lists the desk's queues for a select view, and `getMetaModel` gives the input schema with
//! those queues as the choices of a `queue` field.

use sailor::prelude::*;
use sailor::serde_json;

use crate::desk::Desk;

/// The queue a ticket goes to when the flow names none.
pub const DEFAULT_QUEUE: &str = "support";

/// The action.
#[derive(Clone, Copy, Debug)]
pub struct CreateTicket;

#[async_trait]
impl Action for CreateTicket {
    async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let desk = Desk::from_config(config)?;
        let title = message
            .body
            .get("title")
            .and_then(Value::as_str)
            .filter(|title| !title.is_empty())
            .ok_or_else(|| ProcessError::Input("the message has no `title`".into()))?;
        let queue = ctx
            .flow_variables()
            .get("queue")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_QUEUE);
        let ticket = json!({
            "title": title,
            "description": message.body.get("description").cloned().unwrap_or(Value::Null),
            "queue": queue,
            "source_step": ctx.step_id(),
        });
        let created = desk
            .send(
                desk.request(ctx.client(), Method::POST, "/tickets")
                    .json(&ticket),
            )
            .await?;
        ctx.emitter().data(Message::with_body(created)).await?;
        Ok(())
    }

    async fn select_model(
        &self,
        method: &str,
        config: &StepConfig,
        ctx: &Context,
    ) -> Result<Value, ProcessError> {
        match method {
            "queues" => queues(config, ctx).await,
            other => Err(ProcessError::not_provided(other)),
        }
    }

    async fn meta_model(&self, config: &StepConfig, ctx: &Context) -> Result<Value, ProcessError> {
        let queues = queues(config, ctx).await?;
        let names: Vec<&String> = queues
            .as_object()
            .into_iter()
            .flat_map(|q| q.keys())
            .collect();
        Ok(json!({
            "in": {"type": "object", "required": ["title"], "properties": {
                "title": {"type": "string"},
                "description": {"type": "string"},
                "queue": {"type": "string", "enum": names},
            }},
            "out": {"type": "object", "properties": {"id": {"type": "string"}}},
        }))
    }
}

/// The desk's queues as a select view wants them: `{id: name}`.
async fn queues(config: &StepConfig, ctx: &Context) -> Result<Value, ProcessError> {
    let desk = Desk::from_config(config)?;
    let listed = desk
        .send(desk.request(ctx.client(), Method::GET, "/queues"))
        .await?;
    let mut choices = serde_json::Map::new();
    for queue in listed.as_array().into_iter().flatten() {
        if let (Some(id), Some(name)) = (queue["id"].as_str(), queue["name"].as_str()) {
            choices.insert(id.to_owned(), json!(name));
        }
    }
    Ok(Value::Object(choices))
}
