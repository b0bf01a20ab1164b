//! An example component on the sailor-rs runtime: a ticket desk.
//!
//! Two kinds of credential, to show both paths a component takes:
//!
//! - The desk's own API takes an API key (`X-Api-Key`). [`new_tickets`] (a polling trigger)
//!   and [`create_ticket`] (an action) call it through the step's plain HTTP client,
//!   [`sailor::Context::client`], adding the key themselves ([`desk`]).
//! - The profile API takes OAuth2. [`fetch_profile`] calls it through
//!   [`sailor::Context::http`], which adds the bearer token and, when the API answers 401,
//!   refreshes it, emits `updateKeys` and replays the call, so the action never sees the
//!   expiry.
//!
//! [`verifier::DeskVerifier`] checks whichever credential a config holds. `main.rs` hands the
//! [`registry`], [`DESCRIPTOR`] and the verifier to [`sailor::entry::Component`].

pub mod create_ticket;
pub mod desk;
pub mod fetch_profile;
pub mod new_tickets;
pub mod verifier;

use sailor::Registry;

/// The component.json, compiled in.
pub const DESCRIPTOR: &str = include_str!("../component.json");

/// Every function, by its name in component.json.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .trigger("newTickets", new_tickets::NewTickets)
        .action("createTicket", create_ticket::CreateTicket)
        .action("fetchProfile", fetch_profile::FetchProfile);
    registry
}
