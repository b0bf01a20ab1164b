//! `createTicket`: an action creating one ticket per message.
//!
//! The ticket goes to the queue named by the flow variable `queue` (set per flow on the
//! platform), else to `support`; the step id is sent along so the desk can show where the
//! ticket came from.

use sailor::prelude::*;

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
}
