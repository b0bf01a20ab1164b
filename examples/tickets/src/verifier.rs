//! The desk's credential check: the API key when the config holds one, else the runtime's
//! OAuth2 check.

use sailor::OAuth2Verifier;
use sailor::prelude::*;

use crate::desk::Desk;

/// Checks the API key with one `GET /tickets?limit=1`; a config without one (an OAuth2-only
/// account) goes to [`OAuth2Verifier`].
#[derive(Clone, Copy, Debug)]
pub struct DeskVerifier;

#[async_trait]
impl Verifier for DeskVerifier {
    async fn verify(&self, config: &StepConfig, options: &VerifyOptions) -> Verification {
        if config.str_field("api_key").is_none() {
            return OAuth2Verifier.verify(config, options).await;
        }
        let desk = match Desk::from_config(config) {
            Ok(desk) => desk,
            Err(error) => {
                return Verification::not_verified(format!("The config is incomplete: {error}."));
            }
        };
        let client = sailor::http::api_http_client();
        let request = desk
            .request(&client, Method::GET, "/tickets")
            .query(&[("limit", 1)]);
        match request.send().await {
            Ok(response) if response.status().is_success() => Verification::verified(),
            Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
                Verification::not_verified(
                    "The desk refused the API key: check it in the desk's settings.",
                )
            }
            Ok(response) => Verification::not_verified(format!(
                "The desk answered HTTP {}; try again later.",
                response.status().as_u16()
            )),
            Err(error) => Verification::not_verified(format!(
                "The desk could not be reached ({}).",
                sailor::event::error_chain(&error)
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
        }
    }
}
