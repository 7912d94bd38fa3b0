//! After a restart, provision the enclaves the node would still hold had it
//! not stopped: those of the confidential actions invoked within the fixed
//! keep-alive before the stop, newest first, as many as the pool may bind.
//! Their next invoke then finds the key and the compiled code ready instead
//! of paying a cold start (~12 ms). The activation records say which
//! actions those are; a node's keep-alive histories are not kept.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use clemmys_enclave::EnclavePool;
use clemmys_store::{ActivationFilter, EntityStore, StoreError};
use clemmys_whisk::{EntityName, Exec};

/// Activation records read per namespace to find the recent actions.
const RECORDS_PER_NAMESPACE: usize = 2000;

/// The confidential code actions invoked since `since_ms` (epoch ms),
/// newest first, at most `limit`, as (namespace, name).
pub fn recently_invoked_confidential(
    store: &dyn EntityStore,
    since_ms: u64,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let filter = ActivationFilter {
        since: Some(since_ms),
        limit: RECORDS_PER_NAMESPACE,
        ..ActivationFilter::default()
    };
    // (start, namespace, name) of each action's newest activation.
    let mut newest = Vec::new();
    let mut seen = HashSet::new();
    for namespace in store.list_namespaces()? {
        for record in store.list_activations(namespace.name.as_str(), &filter)? {
            let key = (namespace.name.to_string(), record.name.to_string());
            if seen.insert(key.clone()) {
                newest.push((record.start, key));
            }
        }
    }
    newest.sort_by_key(|(start, _)| std::cmp::Reverse(*start));
    let mut found = Vec::new();
    for (_, (namespace, name)) in newest {
        if found.len() >= limit {
            break;
        }
        let (Ok(ns), Ok(action_name)) = (EntityName::new(&namespace), EntityName::new(&name))
        else {
            continue;
        };
        let Some(action) = store.get_action(&ns, &action_name)? else {
            continue; // deleted since
        };
        if action.is_confidential() && matches!(action.exec, Exec::Wasm { .. }) {
            found.push((namespace, name));
        }
    }
    Ok(found)
}

/// Provisions, in the background, the enclaves of the confidential actions
/// invoked within `keep_alive` before now (see the module docs).
pub fn spawn(store: Arc<dyn EntityStore>, enclaves: Arc<EnclavePool>, keep_alive: Duration) {
    let config = enclaves.config();
    if !config.prewarm || keep_alive.is_zero() {
        return;
    }
    let limit = config.max_bound;
    let since_ms = clemmys_whisk::now_ms()
        .saturating_sub(u64::try_from(keep_alive.as_millis()).unwrap_or(u64::MAX));
    tokio::task::spawn_blocking(move || {
        let actions = match recently_invoked_confidential(store.as_ref(), since_ms, limit) {
            Ok(actions) => actions,
            Err(error) => {
                tracing::warn!(%error, "finding the actions to provision after the restart failed");
                return;
            }
        };
        let mut provisioned = 0;
        for (namespace, name) in &actions {
            match enclaves.prewarm(namespace, name) {
                Ok(true) => provisioned += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(action = %format!("{namespace}/{name}"), %error, "provisioning after the restart failed")
                }
            }
        }
        if provisioned > 0 {
            tracing::info!(
                provisioned,
                "provisioned the enclaves of recently invoked confidential actions"
            );
        }
    });
}
