//! The component's triggers, one per file, registered here.

pub mod poll_items;

use crate::registry::Registry;

/// Adds every trigger to the registry.
pub fn register(registry: &mut Registry) {
    registry.trigger("pollItems", poll_items::PollItems);
}
