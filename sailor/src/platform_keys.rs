//! Rotated keys to the platform API: `PUT {ELASTICIO_API_URI}/v1/accounts/{_account}` with
//! body `{"keys": <keys>}`, as both of elastic.io's sailors persist them, beside (or instead
//! of) the `updateKeys` message on the broker.
//!
//! [`KeysDestination`] is the setting (`COMPONENT_KEYS_DESTINATION`), [`KeysRoute`] what it
//! resolves to once the step's `_account` is known, [`AccountsApi`] the PUT, and
//! [`KeysRouter`] the [`EventSink`] that sends an `updateKeys` event to the chosen
//! destinations. The router sits under the token cache's emitter, so the cache's guarantees
//! hold for the PUT too: a refresh is complete only once every destination has the keys,
//! keys that could not be delivered are sent again before the next call and at shutdown
//! (`TokenCache::flush_unpublished`), and keys go out one generation at a time, in order, so
//! older keys are never PUT over newer ones. A destination that already confirmed a set of
//! keys is not sent it again when only the other one failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use crate::amqp::keys::KeysPublisher;
use crate::emitter::{EmitError, EventSink};
use crate::event::{Event, EventKind, Keys};
use crate::http::BodyCap;
use crate::platform_api::PlatformApiError;
use crate::settings::{KeysApiSettings, KeysSettings, PlatformApi};

/// The most of the platform's answer to a PUT that is read: only its status matters.
const ANSWER_CAP: BodyCap =
    BodyCap::new(64 * 1024, "for the platform's answer to a keys PUT (fixed)");

/// `COMPONENT_KEYS_DESTINATION`: where rotated keys go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeysDestination {
    /// Unset: the broker when the process has one, and the platform API too when
    /// `ELASTICIO_API_URI` and its credentials are set and the config has `_account`.
    #[default]
    Auto,
    /// `amqp`: the `updateKeys` message only.
    Amqp,
    /// `api`: the platform API only.
    Api,
    /// `both`: the message and the API.
    Both,
}

impl KeysDestination {
    /// Reads the variable's value; `None` is [`KeysDestination::Auto`].
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        match text.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => Ok(Self::Auto),
            Some("amqp") => Ok(Self::Amqp),
            Some("api") => Ok(Self::Api),
            Some("both") => Ok(Self::Both),
            Some(other) => Err(format!("must be amqp, api or both, not {other:?}")),
        }
    }

    /// A problem when the choice names a destination the environment does not configure.
    pub fn check(self, has_api: bool, has_broker: bool) -> Result<(), String> {
        if matches!(self, Self::Api | Self::Both) && !has_api {
            return Err(format!(
                "COMPONENT_KEYS_DESTINATION={} needs ELASTICIO_API_URI, ELASTICIO_API_USERNAME \
                 and ELASTICIO_API_KEY",
                self.name()
            ));
        }
        if matches!(self, Self::Amqp | Self::Both) && !has_broker {
            return Err(format!(
                "COMPONENT_KEYS_DESTINATION={} needs the ELASTICIO_AMQP_* variables",
                self.name()
            ));
        }
        Ok(())
    }

    /// The destinations, once the step's `_account` is known.
    pub fn resolve(
        self,
        has_api: bool,
        has_broker: bool,
        account: Option<&str>,
    ) -> Result<KeysRoute, String> {
        let has_account = account.is_some_and(|a| !a.is_empty());
        let route = match self {
            Self::Auto => KeysRoute {
                amqp: has_broker,
                api: has_api && has_account,
            },
            Self::Amqp => KeysRoute {
                amqp: true,
                api: false,
            },
            Self::Api => KeysRoute {
                amqp: false,
                api: true,
            },
            Self::Both => KeysRoute {
                amqp: true,
                api: true,
            },
        };
        if route.api && !has_account {
            return Err(format!(
                "COMPONENT_KEYS_DESTINATION={} needs `_account` in the step config, to name the \
                 account whose keys are PUT",
                self.name()
            ));
        }
        Ok(route)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Auto => "",
            Self::Amqp => "amqp",
            Self::Api => "api",
            Self::Both => "both",
        }
    }
}

/// Where one process's rotated keys go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeysRoute {
    /// The `updateKeys` message on the broker.
    pub amqp: bool,
    /// `PUT /v1/accounts/{id}` on the platform API.
    pub api: bool,
}

/// Why the platform API did not take the keys. Never holds the keys or the API key.
#[derive(Debug, thiserror::Error)]
pub enum AccountsApiError {
    /// The API answered with a status that another try would not change (4xx).
    #[error("the platform API refused the account's keys: HTTP {status}")]
    Refused {
        /// The status.
        status: u16,
    },
    /// The API kept failing (5xx, 408, 429, network) for every attempt.
    #[error("the platform API did not take the account's keys after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// `PUT /v1/accounts/{id}` on the platform API, for one account.
#[derive(Clone)]
pub struct AccountsApi {
    api: PlatformApi,
    account: String,
}

impl std::fmt::Debug for AccountsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsApi")
            .field("api", &self.api)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AccountsApi {
    /// The endpoint of `account` on `api`.
    pub fn new(api: PlatformApi, account: impl Into<String>) -> Self {
        Self {
            api,
            account: account.into(),
        }
    }

    /// The account's URL: `{ELASTICIO_API_URI}/v1/accounts/{id}`, the id one path segment.
    pub fn url(&self) -> String {
        self.api.url(&self.path())
    }

    fn path(&self) -> String {
        let id = percent_encoding::utf8_percent_encode(
            &self.account,
            percent_encoding::NON_ALPHANUMERIC,
        );
        format!("/v1/accounts/{id}")
    }

    /// PUTs `{"keys": keys}` with the API's basic auth, as patiently as
    /// [`crate::platform_api`] asks. Dropping the future stops it.
    pub async fn put_keys(&self, keys: &Keys) -> Result<(), AccountsApiError> {
        // The token set leaves the process here, for the platform to persist it.
        let body = json!({ "keys": keys.expose_json() });
        let answer = self
            .api
            .send(Method::PUT, &self.path(), Some(&body), ANSWER_CAP)
            .await
            .map_err(|error| match error {
                PlatformApiError::Failed {
                    attempts, failure, ..
                } => AccountsApiError::Unavailable {
                    attempts,
                    last: failure,
                },
                PlatformApiError::Body { problem, .. } => AccountsApiError::Unavailable {
                    attempts: 1,
                    last: problem,
                },
            })?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(AccountsApiError::Refused {
                status: answer.status.as_u16(),
            })
        }
    }
}

/// The keys each destination confirmed last: a re-send after a partial failure goes only
/// where the keys are missing.
#[derive(Default)]
struct Confirmed {
    amqp: Option<Value>,
    api: Option<Value>,
}

/// Where a process's `updateKeys` events go, shared by every emitter of the process.
pub struct KeysDelivery {
    route: KeysRoute,
    api: Option<AccountsApi>,
    confirmed: Mutex<Confirmed>,
}

impl std::fmt::Debug for KeysDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysDelivery")
            .field("route", &self.route)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl KeysDelivery {
    /// Delivery along `route`; `api` is needed when the route includes the API.
    pub fn new(route: KeysRoute, api: Option<AccountsApi>) -> Arc<Self> {
        Arc::new(Self {
            route: KeysRoute {
                api: route.api && api.is_some(),
                ..route
            },
            api,
            confirmed: Mutex::new(Confirmed::default()),
        })
    }

    /// The route as configured.
    pub fn route(&self) -> KeysRoute {
        self.route
    }

    /// The sink that sends `updateKeys` along the route and every other event to `inner`
    /// (`None` refuses them: a process that publishes keys only).
    pub fn router(self: &Arc<Self>, inner: Option<Arc<dyn EventSink>>) -> Arc<KeysRouter> {
        Arc::new(KeysRouter {
            inner,
            delivery: self.clone(),
        })
    }

    fn confirmed(&self) -> std::sync::MutexGuard<'_, Confirmed> {
        self.confirmed
            .lock()
            .expect("no code panics while holding this lock")
    }

    /// Sends `keys` to every destination that does not have them yet; `Ok` once all have.
    async fn deliver(&self, keys: Keys, inner: Option<&dyn EventSink>) -> Result<(), EmitError> {
        let mut first_error = None;
        let broker_has_them = self.confirmed().amqp.as_ref() == Some(keys.expose_json());
        if self.route.amqp && !broker_has_them {
            let published = match inner {
                Some(inner) => inner.publish(Event::UpdateKeys(keys.clone())).await,
                None => Err(EmitError::Refused {
                    kind: EventKind::UpdateKeys,
                    reason: "no broker to publish updateKeys on".to_owned(),
                }),
            };
            match published {
                Ok(()) => self.confirmed().amqp = Some(keys.expose_json().clone()),
                Err(error) => first_error = Some(error),
            }
        }
        let api_has_them = self.confirmed().api.as_ref() == Some(keys.expose_json());
        if let Some(api) = self
            .api
            .as_ref()
            .filter(|_| self.route.api && !api_has_them)
        {
            match api.put_keys(&keys).await {
                Ok(()) => {
                    tracing::info!(message = "Refreshed keys stored through the platform API.");
                    self.confirmed().api = Some(keys.expose_json().clone());
                }
                Err(error) => {
                    tracing::error!(message = "Refreshed keys could not be stored through the platform API.", %error);
                    first_error.get_or_insert(EmitError::Transport {
                        kind: EventKind::UpdateKeys,
                        source: Box::new(error),
                    });
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }
}

/// An [`EventSink`] over another: `updateKeys` goes where the [`KeysDelivery`] says, every
/// other event to the sink below.
pub struct KeysRouter {
    inner: Option<Arc<dyn EventSink>>,
    delivery: Arc<KeysDelivery>,
}

impl std::fmt::Debug for KeysRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysRouter")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// Written out rather than with `#[async_trait]`: every other event is handed to the inner
/// sink's future, already boxed, instead of being boxed once more around it.
impl EventSink for KeysRouter {
    fn publish<'life0, 'async_trait>(
        &'life0 self,
        event: Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), EmitError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        match (event, &self.inner) {
            (Event::UpdateKeys(keys), inner) => {
                Box::pin(self.delivery.deliver(keys, inner.as_deref()))
            }
            (event, Some(inner)) => inner.publish(event),
            (event, None) => Box::pin(std::future::ready(Err(EmitError::Refused {
                kind: event.kind(),
                reason: "this process publishes updateKeys only".to_owned(),
            }))),
        }
    }
}

/// Where the rotated keys of a process that handles no delivery go (the credential check,
/// the service methods, the shutdown hook): to the broker as a standalone `updateKeys` when the
/// `ELASTICIO_AMQP_*` variables are set, to the platform API when its variables and `_account`
/// are, as `COMPONENT_KEYS_DESTINATION` chooses.
pub struct StandaloneKeys {
    /// The broker's settings, when the `ELASTICIO_AMQP_*` variables are set.
    pub settings: Option<KeysSettings>,
    publisher: Option<Arc<KeysPublisher>>,
    sink: Option<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for StandaloneKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneKeys")
            .field("amqp", &self.publisher.is_some())
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl StandaloneKeys {
    /// Reads the environment, for the account `account`; keys published on the broker name
    /// `function` in their `function` header. An error names what is wrong with the variables.
    pub fn from_env(account: Option<&str>, function: &str) -> Result<Self, String> {
        let settings = KeysSettings::from_env().map_err(|error| error.to_string())?;
        let api =
            KeysApiSettings::from_env(settings.is_some()).map_err(|error| error.to_string())?;
        let route = api.keys_destination.resolve(
            api.platform_api.is_some(),
            settings.is_some(),
            account,
        )?;
        let publisher = settings.clone().filter(|_| route.amqp).map(|settings| {
            Arc::new(
                KeysPublisher::new(settings, account.map(str::to_owned)).for_function(function),
            )
        });
        let accounts_api = api
            .platform_api
            .zip(account)
            .map(|(api, account)| AccountsApi::new(api, account));
        let sink = (route.amqp || route.api).then(|| {
            let inner = publisher
                .clone()
                .map(|publisher| publisher as Arc<dyn EventSink>);
            KeysDelivery::new(route, accounts_api).router(inner) as Arc<dyn EventSink>
        });
        Ok(Self {
            settings,
            publisher,
            sink,
        })
    }

    /// Where `updateKeys` events go; `None` when the environment names no destination.
    pub fn sink(&self) -> Option<Arc<dyn EventSink>> {
        self.sink.clone()
    }

    /// Closes the broker connection, once nothing more is to be published.
    pub async fn close(&self) {
        if let Some(publisher) = &self.publisher {
            publisher.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_is_read_in_any_case_and_typos_are_refused() {
        assert_eq!(KeysDestination::parse(None), Ok(KeysDestination::Auto));
        assert_eq!(
            KeysDestination::parse(Some("API")),
            Ok(KeysDestination::Api)
        );
        assert_eq!(
            KeysDestination::parse(Some("both")),
            Ok(KeysDestination::Both)
        );
        assert_eq!(
            KeysDestination::parse(Some("amqp")),
            Ok(KeysDestination::Amqp)
        );
        assert_eq!(
            KeysDestination::parse(Some("rest")),
            Err("must be amqp, api or both, not \"rest\"".to_owned())
        );
    }

    #[test]
    fn unset_means_both_when_the_api_and_an_account_are_there() {
        let auto = KeysDestination::Auto;
        let both = KeysRoute {
            amqp: true,
            api: true,
        };
        let amqp = KeysRoute {
            amqp: true,
            api: false,
        };
        assert_eq!(auto.resolve(true, true, Some("acc")), Ok(both));
        assert_eq!(auto.resolve(true, true, None), Ok(amqp));
        assert_eq!(auto.resolve(false, true, Some("acc")), Ok(amqp));
        assert_eq!(
            auto.resolve(true, false, Some("acc")),
            Ok(KeysRoute {
                amqp: false,
                api: true
            })
        );
        assert!(
            KeysDestination::Api
                .resolve(true, true, None)
                .unwrap_err()
                .contains("`_account`")
        );
        assert!(KeysDestination::Both.check(false, true).is_err());
        assert!(KeysDestination::Amqp.check(true, false).is_err());
        assert!(KeysDestination::Auto.check(false, false).is_ok());
    }

    #[test]
    fn the_account_is_one_path_segment_and_the_base_loses_its_trailing_slash() {
        let api = AccountsApi::new(
            PlatformApi {
                base_uri: "http://api.example/".into(),
                username: "u".into(),
                key: crate::secret::Password::new("k"),
                retry: crate::settings::ApiRetry {
                    attempts: 1,
                    delay: std::time::Duration::ZERO,
                },
            },
            "a/b",
        );
        assert_eq!(api.url(), "http://api.example/v1/accounts/a%2Fb");
        assert!(!format!("{api:?}").contains("\"k\""));
    }
}
