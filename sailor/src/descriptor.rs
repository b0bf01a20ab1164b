//! The component descriptor, `component.json`, in elastic.io's schema, and its validation
//! against the functions compiled into the binary.
//!
//! A component embeds its descriptor (`include_str!("../component.json")`) and hands it to
//! the entry point, so that `validate` works wherever the binary is. The OAuth2 parts of the
//! schema (an `oauth` field the runtime reads the token set from, the `oauth2` client, the
//! client's env vars) are asked for only when the credentials use OAuth2.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::registry::Registry;

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

    /// True when the credentials use OAuth2: an `OAuthFieldView` field, an `oauth` field or an
    /// `oauth2` client section.
    pub fn uses_oauth2(&self) -> bool {
        self.credentials.as_ref().is_some_and(|credentials| {
            credentials.oauth2.is_some()
                || credentials.fields.contains_key("oauth")
                || credentials
                    .fields
                    .values()
                    .any(|field| field.view_class == "OAuthFieldView")
        })
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
        if let Some(credentials) = &self.credentials {
            problems.extend(field_problems("credentials", &credentials.fields));
            if self.uses_oauth2() {
                problems.extend(self.oauth2_problems(credentials));
            }
        }
        problems
    }
}

impl Descriptor {
    /// What an OAuth2 component must declare for the runtime to find its token set and client.
    fn oauth2_problems(&self, credentials: &Credentials) -> Vec<String> {
        let mut problems = Vec::new();
        for required in [
            crate::config::CLIENT_ID_ENV,
            crate::config::CLIENT_SECRET_ENV,
        ] {
            if !self.env_vars.contains_key(required) {
                problems.push(format!("envVars lacks {required}"));
            }
        }
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
    use crate::message::Message;
    use crate::module::{Action, Context, ProcessError, Trigger};
    use async_trait::async_trait;

    struct Nothing;

    #[async_trait]
    impl Trigger for Nothing {
        async fn process(
            &self,
            _: &Message,
            _: &crate::config::StepConfig,
            _: &Value,
            _: &Context,
        ) -> Result<(), ProcessError> {
            Ok(())
        }
    }

    #[async_trait]
    impl Action for Nothing {
        async fn process(
            &self,
            _: &Message,
            _: &crate::config::StepConfig,
            _: &Value,
            _: &Context,
        ) -> Result<(), ProcessError> {
            Ok(())
        }
    }

    fn registry() -> Registry {
        let mut registry = Registry::new();
        registry.trigger("poll", Nothing).action("send", Nothing);
        registry
    }

    const API_KEY_COMPONENT: &str = r#"{
        "title": "t", "description": "d",
        "credentials": {"fields": {"api_key": {"label": "API key", "viewClass": "PasswordFieldView", "required": true}}},
        "triggers": {"poll": {"title": "p", "type": "polling", "metadata": {"out": {}}}},
        "actions": {"send": {"title": "s", "metadata": {"in": {}}}}
    }"#;

    #[test]
    fn a_component_without_oauth2_is_not_asked_for_oauth2_fields() {
        let descriptor = Descriptor::parse(API_KEY_COMPONENT, "c.json").unwrap();
        assert!(!descriptor.uses_oauth2());
        assert_eq!(descriptor.problems(&registry()), Vec::<String>::new());
        let mut no_credentials = descriptor.clone();
        no_credentials.credentials = None;
        assert_eq!(no_credentials.problems(&registry()), Vec::<String>::new());
    }

    #[test]
    fn an_oauth2_component_must_declare_what_the_runtime_reads() {
        let mut descriptor = Descriptor::parse(API_KEY_COMPONENT, "c.json").unwrap();
        let credentials = descriptor.credentials.as_mut().unwrap();
        credentials.fields.insert(
            "oauth".into(),
            Field {
                label: Some("Sign in".into()),
                view_class: "OAuthFieldView".into(),
                required: true,
                model: None,
            },
        );
        assert!(descriptor.uses_oauth2());
        assert_eq!(
            descriptor.problems(&registry()),
            [
                "envVars lacks OAUTH_CLIENT_ID",
                "envVars lacks OAUTH_CLIENT_SECRET",
                "credentials have no oauth2 section",
            ]
        );
    }

    #[test]
    fn a_function_missing_either_way_is_reported() {
        let mut descriptor = Descriptor::parse(API_KEY_COMPONENT, "c.json").unwrap();
        let send = descriptor.actions.remove("send").unwrap();
        descriptor.actions.insert("ghost".into(), send);
        assert_eq!(
            descriptor.problems(&registry()),
            [
                "action `ghost` is declared but not compiled in",
                "function `send` is compiled in but not declared",
            ]
        );
    }

    #[test]
    fn schema_problems_are_listed() {
        let text = r#"{"title": "t", "description": "d", "triggers": {"poll": {"title": "p", "fields": {"x": {"viewClass": "Nope"}}}},
                       "actions": {"send": {"title": "s", "metadata": {}}}}"#;
        let problems = Descriptor::parse(text, "c.json")
            .unwrap()
            .problems(&registry());
        assert_eq!(
            problems,
            [
                "trigger `poll` needs \"type\": \"polling\" or \"webhook\"",
                "trigger `poll` has no metadata",
                "trigger `poll`: field `x` has unknown viewClass `Nope`",
                "trigger `poll`: field `x` has no label",
            ]
        );
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
