//! Cold starts with and without the enclave pool, and with and without the
//! module cache, each setting on a node of its own, in the same run.
//!
//! * **Enclave pool** (confidential `noop`). With the pool (the default):
//!   idle enclaves are started and attested ahead of time and an action is
//!   provisioned when it is deployed (key granted, code decrypted and
//!   compiled). Without it (`idle_target = 0`, `prewarm = false`) the first
//!   invoke starts an enclave, attests it, gets the key, decrypts and
//!   compiles. With the pool, a first invoke right after the create may
//!   still wait for the provisioning the create started, so two figures:
//!   create + invoke at once, and the invoke once the pool says the action
//!   is ready (polled, untimed).
//! * **Module cache** (plain `noop`). With it, the module compiled at
//!   create is found by the first invoke (measured after a pause that lets
//!   that compile finish). Without it, the invoke compiles. The cache keeps
//!   at least one module whatever its capacity, so the node without a cache
//!   has capacity 0 (kept as 1) and each run invokes another action between
//!   the pause and the timed invoke, which evicts the new action's module.

use std::time::Duration;

use serde::Serialize;

use super::progress::Progress;
use super::scenarios::{BeforeInvoke, Modules, Node, Plan, cold_with, on_fresh_node};
use crate::model::{ColdRow, Mode};

/// Long enough for a module compiled at create to be ready (noop compiles
/// in tens of milliseconds here).
const COMPILE_PAUSE: Duration = Duration::from_millis(300);
/// The plain action the node without a cache invokes to evict a module.
const EVICTOR: &str = "bench-cache-evictor";

/// Cold starts of one setting, measured one way.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdVariant {
    /// The node's setting (`enclave pool`, `no enclave pool`, …).
    pub setting: String,
    /// What the first invoke follows (`create`, `provisioned`, …).
    pub measure: String,
    /// The runs.
    #[serde(flatten)]
    pub row: ColdRow,
}

/// Labels of the pool rows, as the goals and the plot find them.
pub const POOL: &str = "enclave pool";
/// Without the pool.
pub const NO_POOL: &str = "no enclave pool";
/// The module cache.
pub const CACHE: &str = "module cache";
/// Without it.
pub const NO_CACHE: &str = "no module cache";
/// Measured right after create.
pub const AFTER_CREATE: &str = "invoke right after create";
/// Measured once provisioned.
pub const AFTER_READY: &str = "invoke once provisioned";
/// Measured once compiled.
pub const AFTER_COMPILE: &str = "invoke once compiled (cached)";
/// Measured when not cached.
pub const NOT_CACHED: &str = "invoke, module not cached";

/// With and without the enclave pool.
pub async fn pool(
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<Vec<ColdVariant>> {
    let mut rows = on_fresh_node(
        |_| {},
        async |node| {
            let mut rows = Vec::new();
            for (measure, before) in [
                (AFTER_CREATE, BeforeInvoke::Nothing),
                (AFTER_READY, BeforeInvoke::EnclaveReady),
            ] {
                let row = variant(
                    node,
                    plan,
                    modules,
                    (POOL, measure),
                    Mode::Confidential,
                    &before,
                    progress,
                )
                .await?;
                rows.push(row);
            }
            Ok(rows)
        },
    )
    .await?;
    let without = on_fresh_node(
        |config| {
            config.enclave_pool.idle_target = 0;
            config.enclave_pool.prewarm = false;
        },
        async |node| {
            variant(
                node,
                plan,
                modules,
                (NO_POOL, AFTER_CREATE),
                Mode::Confidential,
                &BeforeInvoke::Nothing,
                progress,
            )
            .await
        },
    )
    .await?;
    rows.push(without);
    Ok(rows)
}

/// With and without the module cache.
pub async fn cache(
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<Vec<ColdVariant>> {
    let mut rows = on_fresh_node(
        |_| {},
        async |node| {
            let mut rows = Vec::new();
            for (measure, before) in [
                (AFTER_CREATE, BeforeInvoke::Nothing),
                (
                    AFTER_COMPILE,
                    BeforeInvoke::Pause {
                        pause: COMPILE_PAUSE,
                        then_invoke: None,
                    },
                ),
            ] {
                let row = variant(
                    node,
                    plan,
                    modules,
                    (CACHE, measure),
                    Mode::Plain,
                    &before,
                    progress,
                )
                .await?;
                rows.push(row);
            }
            Ok(rows)
        },
    )
    .await?;
    let without = on_fresh_node(
        |config| config.sandbox.module_cache_capacity = 0,
        async |node| {
            // Other code than the runs' (whose custom sections differ anyway).
            let evictor = super::scenarios::with_custom_section(
                &modules.noop,
                "clemmys-bench-evictor",
                b"evictor",
            );
            node.put_plain(EVICTOR, &evictor, true).await?;
            let before = BeforeInvoke::Pause {
                pause: COMPILE_PAUSE,
                then_invoke: Some(EVICTOR.into()),
            };
            variant(
                node,
                plan,
                modules,
                (NO_CACHE, NOT_CACHED),
                Mode::Plain,
                &before,
                progress,
            )
            .await
        },
    )
    .await?;
    rows.push(without);
    Ok(rows)
}

async fn variant(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    (setting, measure): (&str, &str),
    mode: Mode,
    before: &BeforeInvoke,
    progress: &Progress,
) -> anyhow::Result<ColdVariant> {
    let label = format!("cold {} noop, {setting}: {measure}", mode.name());
    let row = cold_with(
        node,
        plan,
        modules,
        ("noop", mode),
        before,
        &label,
        progress,
    )
    .await?;
    Ok(ColdVariant {
        setting: setting.into(),
        measure: measure.into(),
        row,
    })
}
