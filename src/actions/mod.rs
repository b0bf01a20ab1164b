//! The component's actions, one per file, registered here, with the helpers `request` splits
//! out: reading the response and `Retry-After`.

pub mod request;
pub mod response;
pub mod retry_after;

use sailor::registry::Registry;

/// Adds every action to the registry.
pub fn register(registry: &mut Registry) {
    registry.action("request", request::Request);
}
