//! The authenticated HTTP client that triggers and actions use to call the protected API, the
//! capped body reader every response from an outside server goes through, and the TLS set-up
//! every client of the process shares.

pub mod base_url;
pub mod body;
pub mod client;
pub mod tls;

pub use base_url::BaseUrl;
pub use body::{BodyCap, BodyError, BodyTooLarge, read_capped};
pub use client::{AuthClient, AuthError, api_http_client, strip_url_secrets, without_url_secrets};
