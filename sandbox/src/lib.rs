//! A loopback OAuth2 provider and protected REST API, for the demo and for tests.
//!
//! It behaves like the strict providers users meet in production: access tokens that live a
//! few seconds, refresh tokens rotated on every use, reuse of a rotated refresh token
//! revoking the whole grant, client authentication checked by method. It counts every token
//! request and API call, so tests can assert exact numbers. It binds 127.0.0.1 only.

mod api;
mod server;
mod state;
mod token_endpoint;

pub use api::TrafficRecord;
pub use server::{GrantState, Sandbox, SandboxOptions};
pub use state::TokenRequestRecord;
