//! The component's triggers, one per file, registered here, with the helpers `pollItems`
//! splits out: pagination, the `Link` header parser and the high-water mark.

pub mod high_water;
pub mod link_header;
pub mod pagination;
pub mod poll_items;

use sailor::registry::Registry;

/// Adds every trigger to the registry.
pub fn register(registry: &mut Registry) {
    registry.trigger("pollItems", poll_items::PollItems);
}
