//! A REST API component with OAuth2 key rotation, built on the [`sailor`] runtime.
//!
//! It has one trigger and one action, both calling an OAuth2-protected REST API through the
//! runtime's authenticated client (which refreshes on 401, emits `updateKeys` and replays):
//!
//! - [`triggers::poll_items`] (`pollItems`) pages through a list and emits the items newer
//!   than the snapshot's high-water mark ([`triggers::high_water`], [`triggers::pagination`],
//!   [`triggers::link_header`]);
//! - [`actions::request`] (`request`) sends one request per message, its path filled from the
//!   message body by [`template`], and emits the answer.
//!
//! [`registry`] names them for the runtime and [`DESCRIPTOR`] is their component.json. The
//! `component` binary is [`sailor::entry`] with these and one more subcommand, `demo`
//! ([`demo`]), which runs the component against the loopback [`sandbox`] provider and checks
//! what happened. The credential check is the runtime's default, [`sailor::OAuth2Verifier`]
//! (`GET verify_path`), behind both `component verify` and the `verify_credentials` binary.

pub mod actions;
pub mod demo;
pub mod template;
pub mod triggers;

use sailor::registry::Registry;

/// This component's component.json, compiled in: `component validate` checks it when no file
/// is named.
pub const DESCRIPTOR: &str = include_str!("../component.json");

/// Every trigger and action of this component, by the names component.json gives them.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    triggers::register(&mut registry);
    actions::register(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sailor::descriptor::{Descriptor, Field};
    use serde_json::Value;

    use super::*;

    fn descriptor() -> Descriptor {
        Descriptor::parse(DESCRIPTOR, "component.json").unwrap()
    }

    #[test]
    fn the_embedded_descriptor_matches_the_compiled_functions() {
        let problems = descriptor().problems(&registry());
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(descriptor().uses_oauth2());
    }

    /// Every value each select field of `fields` offers, as `(field, value)`.
    fn select_values(fields: &BTreeMap<String, Field>) -> Vec<(String, String)> {
        let mut values = Vec::new();
        for (name, field) in fields {
            if !matches!(field.view_class.as_str(), "SelectView" | "MultiSelectView") {
                continue;
            }
            let model = field.model.as_ref().and_then(Value::as_object);
            let model = model.unwrap_or_else(|| panic!("select field `{name}` has a model"));
            assert!(!model.is_empty(), "select field `{name}` offers no value");
            values.extend(model.keys().map(|value| (name.clone(), value.clone())));
        }
        values
    }

    #[test]
    fn every_value_offered_by_a_select_field_parses_through_the_real_config_parsers() {
        use sailor::config::StepConfig;
        use serde_json::json;

        let descriptor = descriptor();
        let mut checked = 0;
        let credentials = &descriptor.credentials.as_ref().unwrap().fields;
        for (field, value) in select_values(credentials) {
            let mut config = json!({"oauth": {"access_token": "at"},
                                    "api_base_url": "http://127.0.0.1:1/api"});
            config[&field] = json!(value);
            let parsed = StepConfig::from_value(config.clone());
            assert!(
                parsed.is_ok(),
                "credentials `{field}`: `{value}`: {parsed:?}"
            );
            let verified = sailor::verify::parse_config(config);
            assert!(
                verified.is_ok(),
                "credentials `{field}`: `{value}`: {verified:?}"
            );
            checked += 1;
        }
        for (name, function) in descriptor.triggers.iter().chain(&descriptor.actions) {
            for (field, value) in select_values(&function.fields) {
                let mut config = json!({"path": "/items"});
                config[&field] = json!(value);
                let config = StepConfig::from_value(config);
                let config = config.unwrap_or_else(|e| panic!("`{name}` `{field}`: {e}"));
                let parsed = match name.as_str() {
                    "pollItems" => crate::triggers::poll_items::check_config(&config),
                    "request" => crate::actions::request::check_config(&config),
                    other => panic!("no config parser is known for `{other}`; add it here"),
                };
                assert!(parsed.is_ok(), "`{name}` `{field}`: `{value}`: {parsed:?}");
                checked += 1;
            }
        }
        // token_auth_method 2, refresh 2, pagination 4, order 3, method 5.
        assert_eq!(checked, 16);
    }
}
