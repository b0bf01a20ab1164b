//! Publishing `updateKeys` outside a delivery: the AMQP side of `verify_credentials`, the
//! service methods and the lifecycle hooks.
//!
//! A credential check runs in no step and handles no message, yet a refresh during the check
//! rotates the refresh token all the same; when the `ELASTICIO_AMQP_*` variables are set, the
//! new keys go to the platform as an `updateKeys` message, in the same wire form a worker
//! uses, with identity headers from the environment.

use async_trait::async_trait;

use super::headers::standalone_headers;
use super::publisher::Publisher;
use super::sink::update_keys_message;
use crate::emitter::{EmitError, EventSink};
use crate::event::{Event, EventKind};
use crate::settings::KeysSettings;

/// The `function` header of keys published by a credential check, as elastic.io names the
/// service method.
pub const VERIFY_FUNCTION: &str = "verifyCredentials";

/// An [`EventSink`] that publishes `updateKeys` events and refuses every other kind.
#[derive(Debug)]
pub struct KeysPublisher {
    settings: KeysSettings,
    account: Option<String>,
    function: String,
    publisher: Publisher,
}

impl KeysPublisher {
    /// A publisher for the account `account` (the config's `_account`).
    pub fn new(settings: KeysSettings, account: Option<String>) -> Self {
        let publisher = Publisher::new(
            settings.amqp_uri.clone(),
            settings.publish_messages_to.clone(),
            settings.publish_retry,
            settings.persistent_messages,
        );
        Self {
            settings,
            account,
            function: VERIFY_FUNCTION.to_owned(),
            publisher,
        }
    }

    /// The same publisher, naming `function` in the `function` header (a hook's keys carry
    /// the step's function).
    pub fn for_function(mut self, function: &str) -> Self {
        self.function = function.to_owned();
        self
    }

    /// Closes the connection, once nothing more is to be published.
    pub async fn close(&self) {
        self.publisher.close().await;
    }
}

#[async_trait]
impl EventSink for KeysPublisher {
    async fn publish(&self, event: Event) -> Result<(), EmitError> {
        let Event::UpdateKeys(keys) = event else {
            return Err(EmitError::Refused {
                kind: event.kind(),
                reason: "outside a delivery, only updateKeys are published".to_owned(),
            });
        };
        let headers = standalone_headers(&self.settings.identity, &self.function);
        let outgoing = update_keys_message(
            &keys,
            &self.settings.cipher,
            self.settings.protocol,
            &self.settings.update_keys_routing_key,
            self.account.as_deref(),
            headers,
        );
        self.publisher
            .publish(&outgoing)
            .await
            .map_err(|source| EmitError::Transport {
                kind: EventKind::UpdateKeys,
                source: Box::new(source),
            })?;
        tracing::info!(message = "Refreshed keys published.", routing_key = %outgoing.routing_key);
        Ok(())
    }
}
