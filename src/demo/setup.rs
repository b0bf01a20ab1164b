//! The sandbox and the account's two steps, built the same way for both modes: `pollItems`
//! and `request` on one token cache and one clock held still (see the module docs of
//! [`super`] for why).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{DemoError, DemoOptions};
use sailor::auth::TokenCache;
use sailor::clock::{Clock as _, ManualClock, SystemClock};
use sailor::config::StepConfig;
use sailor::step::Step;
use sandbox::{GrantState, Sandbox, SandboxOptions};

/// The provider extra the demo expects to survive every refresh.
pub const INSTANCE_URL: &str = "https://eu42.sandbox.example";

/// The sandbox and the two steps of one account, built the same way for both modes.
pub struct Setup {
    pub sandbox: Sandbox,
    pub poll: Step,
    pub request: Step,
    pub tokens: TokenCache,
    pub original_refresh_token: String,
}

impl Setup {
    /// Starts the sandbox with one valid grant and builds both steps on it.
    pub async fn start(options: &DemoOptions) -> Result<Self, DemoError> {
        let mut extras = Map::new();
        extras.insert("instance_url".into(), json!(INSTANCE_URL));
        let sandbox = Sandbox::start(SandboxOptions {
            access_token_ttl: options.access_token_ttl,
            rotate_refresh_tokens: options.rotate_refresh_tokens,
            revoke_grant_on_reuse: true,
            extras,
            ..SandboxOptions::default()
        })
        .await
        .map_err(DemoError::Sandbox)?;
        let grant = sandbox.issue_grant(GrantState::Valid);
        let original_refresh_token = grant["refresh_token"].as_str().unwrap_or("").to_owned();
        let clock = Arc::new(ManualClock::at(SystemClock.now_unix()));
        let config = |fields: Value| {
            StepConfig::from_value(sandbox.step_config(grant.clone(), fields))
                .map_err(|e| DemoError::Setup(e.to_string()))
        };
        let registry = crate::registry();
        let poll = Step::new(
            &registry,
            "pollItems",
            config(json!({
                "path": "/items",
                "items_pointer": "/items",
                "modified_field": "updated_at",
                "id_field": "id",
                "since_param": "since",
                "pagination": "page",
                "page_size": options.page_size,
                "has_more_pointer": "/has_more",
                "expiry_skew_s": 0,
            }))?,
            clock.clone(),
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?;
        let tokens = poll
            .tokens()
            .cloned()
            .ok_or_else(|| DemoError::Setup("the poll step has no token set".into()))?;
        let request = Step::new(
            &registry,
            "request",
            config(json!({
                "method": "POST",
                "path": "/echo/items/{id}/notes",
                "expiry_skew_s": 0,
            }))?,
            clock,
        )
        .map_err(|e| DemoError::Setup(e.to_string()))?
        .with_token_cache(tokens.clone());
        Ok(Self {
            sandbox,
            poll,
            request,
            tokens,
            original_refresh_token,
        })
    }
}
