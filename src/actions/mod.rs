//! The component's actions, one per file, registered here.

pub mod request;

use crate::registry::Registry;

/// Adds every action to the registry.
pub fn register(registry: &mut Registry) {
    registry.action("request", request::Request);
}
