//! `newTickets`: a polling trigger emitting each ticket changed since the last poll.
//!
//! The snapshot holds `since`, the newest `updated` emitted so far; a ticket the desk sends
//! without an `id` is reported with [`Context::emit_error`] and skipped, so one bad record
//! does not hold back the rest.
//!
//! Its lifecycle hooks show what sailor-nodejs' `startup`/`shutdown` are for: when the flow
//! starts, `startup` subscribes to the desk's change events and returns the subscription,
//! which the platform stores; when the flow stops, `shutdown` gets it back and unsubscribes.

use sailor::prelude::*;

use crate::desk::Desk;

/// The trigger.
#[derive(Clone, Copy, Debug)]
pub struct NewTickets;

#[async_trait]
impl Trigger for NewTickets {
    async fn process(
        &self,
        _message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let desk = Desk::from_config(config)?;
        let since = snapshot.get("since").and_then(Value::as_i64).unwrap_or(0);
        let answer = desk
            .send(
                desk.request(ctx.client(), Method::GET, "/tickets")
                    .query(&[("since", since)]),
            )
            .await?;
        let tickets = answer.as_array().ok_or_else(|| {
            ProcessError::named("UnexpectedAnswer", "the desk's list is not an array")
        })?;
        let mut newest = since;
        for ticket in tickets {
            if ticket.get("id").and_then(Value::as_str).is_none() {
                let error =
                    ProcessError::named("MalformedTicket", "the desk sent a ticket without an id");
                ctx.emit_error(&error).await?;
                continue;
            }
            newest = newest.max(
                ticket
                    .get("updated")
                    .and_then(Value::as_i64)
                    .unwrap_or(since),
            );
            ctx.emitter()
                .data(Message::with_body(ticket.clone()))
                .await?;
        }
        if newest > since {
            ctx.emitter().snapshot(json!({ "since": newest })).await?;
        }
        Ok(())
    }

    async fn startup(&self, config: &StepConfig, ctx: &Context) -> Result<Value, ProcessError> {
        let desk = Desk::from_config(config)?;
        let subscription = desk
            .send(
                desk.request(ctx.client(), Method::POST, "/subscriptions")
                    .json(&json!({"event": "ticket.changed", "flow": ctx.flow_id()})),
            )
            .await?;
        Ok(json!({ "subscription": subscription["id"] }))
    }

    async fn shutdown(
        &self,
        config: &StepConfig,
        startup_state: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let desk = Desk::from_config(config)?;
        let Some(id) = startup_state["subscription"].as_str() else {
            return Ok(());
        };
        let path = format!("/subscriptions/{id}");
        desk.send(desk.request(ctx.client(), Method::DELETE, &path))
            .await
            .map(drop)
    }
}
