//! The sandbox server: its options, how it starts, and the handles tests and the demo use to
//! script it and count what reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::api::{self, TrafficRecord};
use super::state::{Grant, ProviderState, TokenRequestRecord};
use super::token_endpoint;

use sailor::clock::{Clock as _, SystemClock};
use sailor::config::TokenAuthMethod;

/// How the sandbox provider behaves.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// How long an access token is accepted.
    pub access_token_ttl: Duration,
    /// Issue a new refresh token on every refresh.
    pub rotate_refresh_tokens: bool,
    /// Presenting a rotated-away refresh token revokes the whole grant (as real providers do).
    pub revoke_grant_on_reuse: bool,
    /// The client the token endpoint accepts.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The only client authentication accepted; `None` accepts both methods.
    pub required_auth_method: Option<TokenAuthMethod>,
    /// Answer token requests form-encoded instead of JSON.
    pub form_encoded_responses: bool,
    /// Extra fields in every token response (e.g. `instance_url`, `id_token`).
    pub extras: Map<String, Value>,
    /// Time the token endpoint takes to answer, to widen race windows in tests.
    pub token_delay: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            revoke_grant_on_reuse: true,
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            required_auth_method: None,
            form_encoded_responses: false,
            extras: Map::new(),
            token_delay: Duration::ZERO,
        }
    }
}

/// Whether the access token of a newly issued grant still works, and whether the token set
/// says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantState {
    /// A working access token.
    Valid,
    /// The access token is already dead, but the token set has no `expires_at`: the client
    /// learns it from the API's 401.
    ExpiredUnknown,
    /// The access token is dead and the token set's `expires_at` is in the past: the client
    /// refreshes before calling.
    ExpiredKnown,
}

/// A running sandbox provider and API.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<Mutex<ProviderState>>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sandbox {
    /// Starts the sandbox on an ephemeral loopback port.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(ProviderState::new(options)));
        let router = token_endpoint::routes()
            .merge(api::routes())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                api::record_traffic,
            ))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(message = "Sandbox server stopped.", %error);
            }
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProviderState> {
        self.state
            .lock()
            .expect("no sandbox handler panics while holding the lock")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint.
    pub fn token_uri(&self) -> String {
        format!("{}/oauth/token", self.url())
    }

    /// The protected API's base URL.
    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// Issues a new grant, as the platform would store it after the user signed in.
    pub fn issue_grant(&self, grant_state: GrantState) -> Value {
        let mut state = self.state();
        let Grant {
            mut fields,
            access_token,
        } = state.issue_grant();
        if grant_state != GrantState::Valid {
            state.expire_access_token(&access_token);
        }
        if grant_state == GrantState::ExpiredKnown {
            fields.insert(
                "expires_at".into(),
                json!(SystemClock.now_unix().saturating_sub(10)),
            );
        } else if grant_state == GrantState::ExpiredUnknown {
            fields.remove("expires_at");
        }
        Value::Object(fields)
    }

    /// A step config for this sandbox around `oauth`, with the given component fields.
    pub fn step_config(&self, oauth: Value, fields: Value) -> Value {
        let options = &self.state().options;
        let mut config = json!({
            "oauth": oauth,
            "client_id": options.client_id,
            "client_secret": options.client_secret,
            "token_uri": self.token_uri(),
            "api_base_url": self.api_base_url(),
            "_account": "sandbox-account",
        });
        if let (Some(config), Some(fields)) = (config.as_object_mut(), fields.as_object()) {
            config.extend(fields.clone());
        }
        config
    }

    /// Makes every access token issued so far invalid.
    pub fn expire_access_tokens(&self) {
        self.state().expire_all_access_tokens();
    }

    /// Every access token issued so far dies right after the next `calls` API calls that
    /// it passes: a deterministic way to expire tokens in the middle of a pagination.
    pub fn expire_access_tokens_after(&self, calls: usize) {
        self.state().expire_after_api_calls = Some(calls).filter(|n| *n > 0);
    }

    /// Every exchange so far (token endpoint and API), in order.
    pub fn traffic(&self) -> Vec<TrafficRecord> {
        self.state().traffic.clone()
    }

    /// Revokes every grant: refresh tokens answer `invalid_grant` from now on.
    pub fn revoke_all(&self) {
        self.state().revoke_all();
    }

    /// The next token requests fail with these statuses (503, 429, ...), in order.
    pub fn fail_token_requests(&self, statuses: &[u16]) {
        self.state().token_failures.extend(statuses.iter().copied());
    }

    /// Every token request fails with `status` for the next `duration`: an outage.
    pub fn fail_token_requests_for(&self, status: u16, duration: Duration) {
        self.state().token_outage = Some((std::time::Instant::now() + duration, status));
    }

    /// The next API calls fail with these statuses, in order, before any token check.
    pub fn fail_api_calls(&self, statuses: &[u16]) {
        self.state().api_failures.extend(statuses.iter().copied());
    }

    /// Replaces the items the list endpoint serves.
    pub fn set_items(&self, items: Vec<Value>) {
        self.state().items = items;
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.state().token_log.len()
    }

    /// Every token request, in order.
    pub fn token_log(&self) -> Vec<TokenRequestRecord> {
        self.state().token_log.clone()
    }

    /// How many requests reached the API, rejected ones included.
    pub fn api_calls(&self) -> usize {
        self.state().api_calls
    }

    /// How many API requests were rejected for their access token.
    pub fn api_rejections(&self) -> usize {
        self.state().api_rejections
    }
}
