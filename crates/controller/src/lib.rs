//! The controller: Apache OpenWhisk's REST API (`/api/v1`) over axum.
//!
//! It authenticates callers, keeps actions, packages, triggers, rules and
//! activation records in the [`EntityStore`], fires triggers through their
//! active rules, and hands activations to invokers: a blocking one to
//! the invoker in its own process directly when there is one
//! ([`Controller::with_local_invoker`]), running it on the request's task;
//! the others through the bus, waiting for blocking ones. Web actions
//! ([`web`]) are served without credentials, on their owner's account,
//! and built-in packages ([`catalog`]) are installed at start. It is
//! untrusted: for a confidential action it stores and forwards only
//! sealed bytes (code, parameters, results, logs) and never holds a key
//! that could open them.

mod actions;
mod activations;
mod admin;
mod alarms;
mod api_docs;
mod auth;
mod body;
mod broker;
pub mod catalog;
mod error;
mod feeds;
mod ids;
mod invoke;
mod namespaces;
mod package_actions;
mod packages;
mod query;
mod routes;
mod rules;
mod sequence;
mod throttle;
mod triggers;
pub mod web;

#[cfg(test)]
mod acknowledge_tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clemmys_bus::{ActivationQueue, ActivationRunner, CompletionRegistry};
use clemmys_store::{EntityStore, StoreError};
use clemmys_whisk::{Action, EntityName, NamespaceRecord};

pub use alarms::{ALARM_FEED, AlarmError, INTERVAL_FEED, ONCE_FEED};
pub use broker::BrokerGateway;
pub use error::ApiError;
pub use routes::router;
pub use throttle::{COMPLETION_MARGIN, Completions, OverdueActivation, Throttle};

/// Checks the code of an action before it is stored.
pub trait CodeCheck: Send + Sync + 'static {
    /// `Ok` if `code` can run; for confidential actions `code` is a sealed
    /// envelope and only its framing can be checked. The error message is
    /// shown to the caller.
    fn check(&self, code: &[u8], confidential: bool) -> Result<(), String>;

    /// Whether the node can run JavaScript actions (it has the engine).
    fn runs_javascript(&self) -> bool {
        false
    }
}

/// Tunables of the controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Longest a blocking invoke waits before answering 202.
    pub max_blocking_wait: Duration,
    /// The bearer token of `/admin/v1` (no admin routes when `None`).
    pub admin_token: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            max_blocking_wait: Duration::from_millis(clemmys_whisk::limits::MAX_BLOCKING_WAIT_MS),
            admin_token: None,
        }
    }
}

/// Shared state of every request.
pub struct Controller {
    store: Arc<dyn EntityStore>,
    queue: Arc<dyn ActivationQueue>,
    completions: Arc<CompletionRegistry>,
    throttle: Arc<Throttle>,
    code_check: Arc<dyn CodeCheck>,
    config: ControllerConfig,
    broker: Option<Arc<dyn BrokerGateway>>,
    /// The invoker in this process, which runs blocking activations on the
    /// request's task; without one they go through the bus.
    local_invoker: Option<Arc<dyn ActivationRunner>>,
    /// API key UUID → namespace, filled on first use.
    namespaces: RwLock<HashMap<String, Arc<NamespaceRecord>>>,
    /// `namespace/name` → action; this process is the only writer of the
    /// store's actions, so the cache is kept coherent on every write.
    actions: RwLock<HashMap<String, Arc<Action>>>,
    /// Held while a rule or trigger is written: a trigger keeps its rules'
    /// links, so writing one means reading, changing and writing the
    /// other, and two such writes must not interleave and lose a link.
    links: tokio::sync::Mutex<()>,
    /// The scheduled alarms of triggers with an alarms feed.
    alarms: alarms::Alarms,
}

impl Controller {
    /// A controller over these parts.
    pub fn new(
        store: Arc<dyn EntityStore>,
        queue: Arc<dyn ActivationQueue>,
        completions: Arc<CompletionRegistry>,
        throttle: Arc<Throttle>,
        code_check: Arc<dyn CodeCheck>,
        config: ControllerConfig,
    ) -> Self {
        Self {
            store,
            queue,
            completions,
            throttle,
            code_check,
            config,
            broker: None,
            local_invoker: None,
            namespaces: RwLock::default(),
            actions: RwLock::default(),
            links: tokio::sync::Mutex::new(()),
            alarms: alarms::Alarms::default(),
        }
    }

    /// Serves the key broker's routes through `broker`.
    pub fn with_broker(mut self, broker: Arc<dyn BrokerGateway>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Runs blocking activations (sequence components included) with
    /// `invoker`, in this process, instead of through the bus. Non-blocking
    /// ones still go through the bus, whose bounded queue pushes back.
    pub fn with_local_invoker(mut self, invoker: Arc<dyn ActivationRunner>) -> Self {
        self.local_invoker = Some(invoker);
        self
    }

    /// The action `namespace/name`, from the cache or the store.
    async fn action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Arc<Action>>, StoreError> {
        let key = format!("{namespace}/{name}");
        if let Some(action) = read(&self.actions).get(&key) {
            return Ok(Some(action.clone()));
        }
        let Some(action) = self.store.get_action(namespace, name).await? else {
            return Ok(None);
        };
        let action = Arc::new(action);
        write(&self.actions).insert(key, action.clone());
        Ok(Some(action))
    }

    fn cache_action(&self, action: Arc<Action>) {
        write(&self.actions).insert(action.path(), action);
    }

    fn forget_action(&self, namespace: &EntityName, name: &EntityName) {
        write(&self.actions).remove(&format!("{namespace}/{name}"));
    }
}

/// Lock helpers: the maps hold plain values, so a panic elsewhere cannot
/// leave them half-updated; recover the guard instead of propagating poison.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
