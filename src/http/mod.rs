//! The authenticated HTTP client that triggers and actions use to call the protected API.

pub mod client;

pub use client::{AuthClient, AuthError, api_http_client, strip_url_secrets, without_url_secrets};
