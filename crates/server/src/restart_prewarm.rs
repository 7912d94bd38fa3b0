//! After a restart, provision the enclaves the node would still hold had it
//! not stopped: those of the confidential actions invoked within the fixed
//! keep-alive before the stop, newest first, as many as the pool may bind.
//! Their next invoke then finds the key and the compiled code ready instead
//! of paying a cold start (~12 ms). The activation records say which
//! actions those are; a node's keep-alive histories are not kept.

use std::sync::Arc;

use clemmys_invoker::pool::EnclavePool;
use clemmys_store::{ActivationFilter, EntityStore, StoreError};
use clemmys_whisk::Exec;

/// Actions read from the store at a time.
const ACTIONS_PER_PAGE: usize = 1000;

/// The confidential code actions invoked since `since_ms` (epoch ms),
/// newest activation first, at most `limit`, as (namespace, name). One
/// indexed lookup of the newest activation per confidential action, so a
/// busy action does not hide the others.
pub async fn recently_invoked_confidential(
    store: &dyn EntityStore,
    since_ms: u64,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    // (start of its newest activation, namespace, name)
    let mut recent = Vec::new();
    for namespace in store.list_namespaces().await? {
        let mut skip = 0;
        loop {
            let page = store
                .list_actions(&namespace.name, skip, ACTIONS_PER_PAGE)
                .await?;
            for action in &page {
                if !action.is_confidential() || !matches!(action.exec, Exec::Wasm { .. }) {
                    continue;
                }
                let newest = ActivationFilter {
                    name: Some(action.name.to_string()),
                    since: Some(since_ms),
                    limit: 1,
                    ..ActivationFilter::default()
                };
                if let Some(record) = store
                    .list_activations(namespace.name.as_str(), &newest)
                    .await?
                    .first()
                {
                    recent.push((
                        record.start,
                        namespace.name.to_string(),
                        action.name.to_string(),
                    ));
                }
            }
            if page.len() < ACTIONS_PER_PAGE {
                break;
            }
            skip += page.len();
        }
    }
    recent.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    Ok(recent
        .into_iter()
        .take(limit)
        .map(|(_, namespace, name)| (namespace, name))
        .collect())
}

/// Provisions, in the background, the enclaves of the confidential actions
/// invoked within the pool's fixed keep-alive before now (see the module
/// docs).
pub fn spawn(store: Arc<dyn EntityStore>, enclaves: Arc<EnclavePool>) {
    let config = enclaves.config();
    let keep_alive = config.keep_alive.fixed_keep_alive;
    if !config.prewarm || keep_alive.is_zero() {
        return;
    }
    let limit = config.max_bound;
    let since_ms = clemmys_whisk::now_ms()
        .saturating_sub(u64::try_from(keep_alive.as_millis()).unwrap_or(u64::MAX));
    tokio::spawn(async move {
        let actions = match recently_invoked_confidential(store.as_ref(), since_ms, limit).await {
            Ok(actions) => actions,
            Err(error) => {
                tracing::warn!(%error, "finding the actions to provision after the restart failed");
                return;
            }
        };
        // Provisioning compiles and attests: off the runtime's workers.
        if let Err(error) =
            tokio::task::spawn_blocking(move || provision(&enclaves, &actions)).await
        {
            tracing::warn!(%error, "the provisioning thread failed");
        }
    });
}

/// Provisions the enclaves of `actions`, in order.
fn provision(enclaves: &EnclavePool, actions: &[(String, String)]) {
    let mut provisioned = 0;
    for (namespace, name) in actions {
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
}
