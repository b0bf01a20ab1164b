//! The one place where trigger and action names map to their implementations.
//!
//! A component builds one registry in its `main`, naming each function as component.json
//! does; `validate` checks the two against each other, and the worker runs the function
//! `ELASTICIO_FUNCTION` names.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::StepConfig;
use crate::message::Message;
use crate::module::{Action, Context, ProcessError, Trigger};

/// A compiled-in function: a trigger or an action.
#[derive(Clone)]
pub enum Function {
    /// Declared under `triggers` in component.json.
    Trigger(Arc<dyn Trigger>),
    /// Declared under `actions` in component.json.
    Action(Arc<dyn Action>),
}

impl Function {
    /// Runs the function on one message.
    pub async fn process(
        &self,
        message: &Message,
        config: &StepConfig,
        snapshot: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.process(message, config, snapshot, ctx).await,
            Self::Action(action) => action.process(message, config, snapshot, ctx).await,
        }
    }

    /// Runs the function's `startup` hook.
    pub async fn startup(&self, config: &StepConfig, ctx: &Context) -> Result<Value, ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.startup(config, ctx).await,
            Self::Action(action) => action.startup(config, ctx).await,
        }
    }

    /// Runs the function's `init` hook.
    pub async fn init(&self, config: &StepConfig, ctx: &Context) -> Result<(), ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.init(config, ctx).await,
            Self::Action(action) => action.init(config, ctx).await,
        }
    }

    /// Runs the function's `shutdown` hook with the state `startup` returned.
    pub async fn shutdown(
        &self,
        config: &StepConfig,
        startup_state: &Value,
        ctx: &Context,
    ) -> Result<(), ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.shutdown(config, startup_state, ctx).await,
            Self::Action(action) => action.shutdown(config, startup_state, ctx).await,
        }
    }

    /// Runs `getMetaModel`.
    pub async fn meta_model(
        &self,
        config: &StepConfig,
        ctx: &Context,
    ) -> Result<Value, ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.meta_model(config, ctx).await,
            Self::Action(action) => action.meta_model(config, ctx).await,
        }
    }

    /// Runs the select-model method `method`.
    pub async fn select_model(
        &self,
        method: &str,
        config: &StepConfig,
        ctx: &Context,
    ) -> Result<Value, ProcessError> {
        match self {
            Self::Trigger(trigger) => trigger.select_model(method, config, ctx).await,
            Self::Action(action) => action.select_model(method, config, ctx).await,
        }
    }

    /// True for triggers.
    pub fn is_trigger(&self) -> bool {
        matches!(self, Self::Trigger(_))
    }
}

/// Function names and implementations.
#[derive(Clone, Default)]
pub struct Registry {
    functions: BTreeMap<String, Function>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.functions.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a trigger.
    pub fn trigger(&mut self, name: &str, trigger: impl Trigger) -> &mut Self {
        self.functions
            .insert(name.to_owned(), Function::Trigger(Arc::new(trigger)));
        self
    }

    /// Adds an action.
    pub fn action(&mut self, name: &str, action: impl Action) -> &mut Self {
        self.functions
            .insert(name.to_owned(), Function::Action(Arc::new(action)));
        self
    }

    /// The function of that name.
    pub fn get(&self, name: &str) -> Option<&Function> {
        self.functions.get(name)
    }

    /// Every name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// Every function with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Function)> {
        self.functions.iter().map(|(name, f)| (name.as_str(), f))
    }
}
