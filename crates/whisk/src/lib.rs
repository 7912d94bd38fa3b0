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

pub mod action;
pub mod activation;
pub mod auth;
pub mod limits;
pub mod name;
pub mod package;
pub mod trigger;
pub mod web;
pub mod web_http;

pub use action::{Action, ActionPut, Exec, JsKind, KeyValue, KeyValues};
pub use activation::{Activation, ActivationId, ActivationResponse, ActivationStatus, now_ms};
pub use auth::{AuthKey, NamespaceRecord};
pub use limits::{ActionLimits, LimitError, NamespaceLimits};
pub use name::{EntityName, FullyQualifiedName, NameError};
pub use package::{Binding, Package, PackagePut};
pub use trigger::{EntityRef, ReducedRule, Rule, RulePut, RuleStatus, Trigger, TriggerPut};

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
