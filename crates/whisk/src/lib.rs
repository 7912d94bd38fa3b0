//! The OpenWhisk entity model: names, limits, actions, packages, triggers,
//! rules, activations and credentials, with the exact JSON shapes of Apache
//! OpenWhisk's REST API.
//!
//! This crate is pure data and validation: no I/O, no clocks, no randomness
//! (callers pass times and ids in). Every other part of Clemmys (controller,
//! invoker, store, client) speaks in these types, so the JSON a user sees is
//! decided here and nowhere else.
//!
//! Confidential actions use the same types: their `exec.code`, parameters and
//! results simply carry sealed envelopes that this crate never interprets.
//!
//! Where the stored document and the API's JSON differ (an action's `exec`
//! keeps a code digest but shows code, a package's `binding` is `{}` or
//! `false`, …), the JSON is a typed `Api…` view (`ApiAction`, `ApiPackage`,
//! …) that the `to_api_json` methods serialise. With the `openapi` feature
//! those views, the `PUT` bodies and the records the API answers as stored
//! derive `utoipa::ToSchema`, so the controller's OpenAPI document describes
//! exactly the JSON that is served.

pub mod action;
pub mod activation;
pub mod auth;
pub mod limits;
pub mod name;
pub mod package;
pub mod trigger;
pub mod web;
pub mod web_http;

use serde::Serialize;

pub use action::{
    Action, ActionPut, ApiAction, ApiActionCount, ApiActionSummary, Exec, ExecPut, JsKind,
    KeyValue, KeyValues,
};
pub use activation::{
    Activation, ActivationId, ActivationResponse, ActivationStatus, ApiActivationCount,
    ApiActivationLogs, ApiActivationResult, ApiActivationStarted, ApiActivationSummary, now_ms,
};
pub use auth::{AuthKey, NamespaceRecord};
pub use limits::{ActionLimits, ApiNamespaceLimits, LimitError, NamespaceLimits};
pub use name::{EntityName, FullyQualifiedName, NameError};
pub use package::{ApiPackage, ApiPackageCount, ApiPackageSummary, Binding, Package, PackagePut};
pub use trigger::{
    ApiRule, ApiRuleCount, ApiTrigger, ApiTriggerCount, ApiTriggerSummary, EntityRef, ReducedRule,
    Rule, RulePut, RuleStatus, RuleStatusPut, Trigger, TriggerPut,
};

/// A view of the API's JSON as a JSON value. The views are structs of
/// strings, numbers, lists and string-keyed maps, which always serialise.
pub(crate) fn api_json<T: Serialize>(view: &T) -> serde_json::Value {
    // Only maps with non-string keys (or failing `Serialize` impls) fail,
    // and the views have neither.
    serde_json::to_value(view).expect("an API view has string keys only")
}

/// Annotation marking an action whose code, inputs and outputs are sealed.
pub const CONFIDENTIAL_ANNOTATION: &str = "confidential";

/// The one runtime kind for code actions: a WASI preview-1 command module.
pub const WASM_KIND: &str = "wasm";
/// The JavaScript kinds, run by the node's JavaScript engine (QuickJS in
/// the wasm sandbox, not Node.js): the Node version names only say which
/// OpenWhisk kinds the source was written for.
pub const JAVASCRIPT_KINDS: [&str; 3] = ["nodejs:20", "nodejs:18", "nodejs:default"];
/// The kind of OpenWhisk sequences.
pub const SEQUENCE_KIND: &str = "sequence";
