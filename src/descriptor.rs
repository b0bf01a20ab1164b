//! The component descriptor, `component.json`, in elastic.io's schema, and its validation
//! against the functions compiled into the binary.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::registry::Registry;

/// The descriptor compiled into the binary.
pub const EMBEDDED: &str = include_str!("../component.json");

/// The view classes elastic.io documents, plus those seen in its own components.
const VIEW_CLASSES: [&str; 12] = [
    "TextFieldView",
    "TextAreaView",
    "CheckBoxView",
    "SelectView",
    "MultiSelectView",
    "PasswordFieldView",
    "OAuthFieldView",
    "HTTPAuthView",
    "RESTAPIView",
    "TextFieldWithNoteView",
    "SelectPropertyView",
    "WebhookAuthView",
];

/// `component.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Shown in the platform's UI.
    pub title: String,
    /// Shown in the platform's UI.
    pub description: String,
    /// The component's version.
    #[serde(default)]
    pub version: Option<String>,
    /// Env vars the platform injects, by name.
    #[serde(default)]
    pub env_vars: BTreeMap<String, EnvVar>,
    /// The credential form and OAuth2 client.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Triggers by name.
    #[serde(default)]
    pub triggers: BTreeMap<String, FunctionDescriptor>,
    /// Actions by name.
    #[serde(default)]
    pub actions: BTreeMap<String, FunctionDescriptor>,
    /// Everything else (`buildType`, `docsUrl`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `envVars`.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvVar {
    /// Whether the platform must set it.
    #[serde(default)]
    pub required: bool,
    /// What it holds.
    #[serde(default)]
    pub description: Option<String>,
}

/// `credentials`: the form fields and the OAuth2 client.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// Form fields by name.
    #[serde(default)]
    pub fields: BTreeMap<String, Field>,
    /// The OAuth2 client the platform uses for the authorisation dance.
    #[serde(default)]
    pub oauth2: Option<Map<String, Value>>,
}

/// A form field.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// How the UI renders it.
    pub view_class: String,
    /// Whether it must be filled in.
    #[serde(default)]
    pub required: bool,
    /// Choices for select views.
    #[serde(default)]
    pub model: Option<Value>,
}

/// A trigger or action.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDescriptor {
    /// Shown in the UI.
    pub title: String,
    /// Shown in the UI.
    #[serde(default)]
    pub description: Option<String>,
    /// The implementation's name.
    #[serde(default)]
    pub main: Option<String>,
    /// `polling` or `webhook` (triggers).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The step's form fields.
    #[serde(default)]
    pub fields: BTreeMap<String, Field>,
    /// `{in, out}` JSON schemas.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// Why a descriptor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a descriptor.
    #[error("{path}: not a valid component descriptor at line {line}, column {column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
        /// What.
        message: String,
    },
}

impl Descriptor {
    /// Parses descriptor text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, DescriptorError> {
        serde_json::from_str(text).map_err(|error| DescriptorError::Parse {
            path: origin.to_owned(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })
    }

    /// Reads a descriptor file.
    pub fn load(path: &Path) -> Result<Self, DescriptorError> {
        let text = std::fs::read_to_string(path).map_err(|source| DescriptorError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The descriptor compiled into the binary.
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "component.json")
            .expect("the embedded component.json is checked by a unit test")
    }

    /// Every problem found when checking the descriptor against `registry`, both ways, and
    /// against the schema this runtime relies on. Empty when all is well.
    pub fn problems(&self, registry: &Registry) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, function) in self.triggers.iter().chain(&self.actions) {
            let is_trigger = self.triggers.contains_key(name);
            let kind = if is_trigger { "trigger" } else { "action" };
            match registry.get(name) {
                None => problems.push(format!("{kind} `{name}` is declared but not compiled in")),
                Some(f) if f.is_trigger() != is_trigger => {
                    problems.push(format!(
                        "`{name}` is declared as a {kind} but compiled in as the other kind"
                    ));
                }
                Some(_) => {}
            }
            if self.triggers.contains_key(name) && self.actions.contains_key(name) {
                problems.push(format!(
                    "`{name}` is declared both as a trigger and as an action"
                ));
            }
            if is_trigger && !matches!(function.kind.as_deref(), Some("polling" | "webhook")) {
                problems.push(format!(
                    "trigger `{name}` needs \"type\": \"polling\" or \"webhook\""
                ));
            }
            if function.metadata.is_none() {
                problems.push(format!("{kind} `{name}` has no metadata"));
            }
            problems.extend(field_problems(
                &format!("{kind} `{name}`"),
                &function.fields,
            ));
        }
        for name in registry.names() {
            if !self.triggers.contains_key(name) && !self.actions.contains_key(name) {
                problems.push(format!("function `{name}` is compiled in but not declared"));
            }
        }
        for required in [
            crate::config::CLIENT_ID_ENV,
            crate::config::CLIENT_SECRET_ENV,
        ] {
            if !self.env_vars.contains_key(required) {
                problems.push(format!("envVars lacks {required}"));
            }
        }
        match &self.credentials {
            None => problems.push("credentials are missing".to_owned()),
            Some(credentials) => {
                if !credentials
                    .fields
                    .values()
                    .any(|f| f.view_class == "OAuthFieldView")
                {
                    problems.push("credentials have no OAuthFieldView field".to_owned());
                }
                if !credentials.fields.contains_key("oauth") {
                    problems.push(
                        "credentials have no `oauth` field, where the runtime reads the token set"
                            .to_owned(),
                    );
                }
                problems.extend(field_problems("credentials", &credentials.fields));
                match &credentials.oauth2 {
                    None => problems.push("credentials have no oauth2 section".to_owned()),
                    Some(oauth2) => {
                        for key in ["client_id", "client_secret", "auth_uri", "token_uri"] {
                            if !oauth2.get(key).is_some_and(Value::is_string) {
                                problems.push(format!("credentials.oauth2 lacks `{key}`"));
                            }
                        }
                    }
                }
            }
        }
        problems
    }
}

fn field_problems(owner: &str, fields: &BTreeMap<String, Field>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, field) in fields {
        if !VIEW_CLASSES.contains(&field.view_class.as_str()) {
            problems.push(format!(
                "{owner}: field `{name}` has unknown viewClass `{}`",
                field.view_class
            ));
        }
        if field.label.as_deref().is_none_or(str::is_empty) {
            problems.push(format!("{owner}: field `{name}` has no label"));
        }
        if matches!(field.view_class.as_str(), "SelectView" | "MultiSelectView")
            && field.model.is_none()
        {
            problems.push(format!("{owner}: select field `{name}` has no model"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_descriptor_matches_the_compiled_functions() {
        let problems = Descriptor::embedded().problems(&Registry::builtin());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_function_missing_either_way_is_reported() {
        let mut descriptor = Descriptor::embedded();
        let request = descriptor.actions.remove("request").unwrap();
        descriptor.actions.insert("ghost".into(), request);
        let problems = descriptor.problems(&Registry::builtin());
        assert!(
            problems.contains(&"action `ghost` is declared but not compiled in".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"function `request` is compiled in but not declared".to_owned()),
            "{problems:?}"
        );
    }

    #[test]
    fn schema_problems_are_listed() {
        let text = r#"{"title": "t", "description": "d", "triggers": {"pollItems": {"title": "p", "fields": {"x": {"viewClass": "Nope"}}}}}"#;
        let problems = Descriptor::parse(text, "c.json")
            .unwrap()
            .problems(&Registry::builtin());
        for expected in [
            "trigger `pollItems` needs \"type\": \"polling\" or \"webhook\"",
            "trigger `pollItems`: field `x` has unknown viewClass `Nope`",
            "credentials are missing",
            "envVars lacks OAUTH_CLIENT_ID",
        ] {
            assert!(
                problems.contains(&expected.to_owned()),
                "{expected} not in {problems:#?}"
            );
        }
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
        use crate::config::StepConfig;
        use serde_json::json;

        let descriptor = Descriptor::embedded();
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
            let verified = crate::verify::parse_config(config);
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

    #[test]
    fn parse_errors_name_the_file_and_position() {
        let error = Descriptor::parse("{\n\"title\": }", "x/component.json").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("x/component.json: not a valid component descriptor at line 2"),
            "{error}"
        );
    }
}
