//! `fetchProfile`: an action calling an OAuth2-protected API.
//!
//! All the OAuth2 work is the runtime's: [`Context::http`] adds the bearer token, refreshes it
//! when the API answers 401, emits `updateKeys` with the provider's whole answer, and replays
//! the call. The action only asks for `/me`.

use sailor::http::{BodyCap, read_capped};
use sailor::prelude::*;

/// The most of a profile the action reads.
const PROFILE_CAP: BodyCap = BodyCap::new(1024 * 1024, "for a profile (fixed)");

/// The action.
#[derive(Clone, Copy, Debug)]
pub struct FetchProfile;

#[async_trait]
impl Action for FetchProfile {
    async fn process(
        &self,
        message: &Message,
        _config: &StepConfig,
        _snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        let api = ctx.http()?;
        let response = api.send(api.request(Method::GET, "/me")?).await?;
        let status = response.status().as_u16();
        let body = read_capped(response, PROFILE_CAP)
            .await
            .map_err(|error| ProcessError::reading_body(status, error))?;
        if !(200..300).contains(&status) {
            return Err(ProcessError::Api {
                status,
                excerpt: sailor::excerpt::excerpt(&body, ctx.redactor()),
            });
        }
        let profile: Value = serde_json_from(&body)?;
        ctx.emitter()
            .data(Message::with_body(
                json!({ "profile": profile, "input": message.body }),
            ))
            .await?;
        Ok(())
    }
}

fn serde_json_from(body: &[u8]) -> Result<Value, ProcessError> {
    sailor::serde_json::from_slice(body).map_err(|error| {
        ProcessError::named_with_source("UnexpectedAnswer", "the profile is not JSON", error)
    })
}
