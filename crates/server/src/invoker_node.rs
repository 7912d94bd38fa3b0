//! An invoker in a process of its own (`clemmys serve --role invoker`): it
//! takes activations off the NATS bus, runs them, stores their records in
//! the shared PostgreSQL store and reports their completions on the bus.
//! It serves no API and creates no namespace; it never settles the stand-ins
//! of interrupted activations either, which belong to the controller.

use std::sync::Arc;

use anyhow::Context;
use clemmys_bus::nats::{NatsBus, NatsInvoker};
use clemmys_invoker::Invoker;
use clemmys_store::EntityStore;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::{BusLocation, NodeRole, Runtimes, ServerConfig, bootstrap, restart_prewarm};

/// An invoker process that is running.
pub struct RunningInvoker {
    /// Its name on the bus.
    pub id: String,
    /// Its invoker (operators and tests read its counters).
    pub invoker: Arc<Invoker>,
    /// The shared store.
    pub store: Arc<dyn EntityStore>,
    link: NatsInvoker,
    dispatching: JoinHandle<()>,
    activations: TaskTracker,
    shutdown_grace: std::time::Duration,
}

impl RunningInvoker {
    /// Opens the shared store, starts the sandbox and enclaves, and joins
    /// the bus.
    pub async fn start(mut config: ServerConfig) -> anyhow::Result<Self> {
        config.role = NodeRole::Invoker;
        crate::check_scale_out(&config)?;
        let BusLocation::Nats(nats) = &config.bus else {
            anyhow::bail!("an invoker on its own needs the NATS bus (--bus nats://HOST:PORT)");
        };
        let store = crate::open_store(&config).await?;
        let Runtimes {
            sandbox,
            js_engine,
            trusted,
        } = crate::start_runtimes(&config, &store).await?;
        let enclaves = trusted
            .enclaves
            .context("the trusted parts of an invoker have enclaves")?;
        let bus = NatsBus::connect(nats)
            .await
            .context("connecting to the NATS bus")?;
        let id = config
            .invoker_id
            .clone()
            .unwrap_or_else(|| crate::random_token("i"));
        let (link, feed, completions) = NatsInvoker::join(bus, &id)
            .await
            .context("joining the NATS bus as an invoker")?;
        let mut invoker_config = config.invoker.clone();
        let slots = usize::try_from(config.sandbox.total_core_instances).unwrap_or(usize::MAX);
        invoker_config.concurrency = invoker_config.concurrency.min(slots);
        invoker_config.javascript = js_engine;
        let invoker = Invoker::with_enclave(
            sandbox,
            store.clone(),
            completions,
            invoker_config,
            enclaves.clone(),
        );
        let activations = invoker.activations();
        let dispatching = tokio::spawn(invoker.clone().consume_deliveries(feed));
        restart_prewarm::spawn(store.clone(), enclaves);
        tracing::info!(invoker = id, "taking activations off the NATS bus");
        Ok(Self {
            id,
            invoker,
            store,
            link,
            dispatching,
            activations,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// Runs until ctrl-c or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        bootstrap::shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }

    /// Stops taking messages, waits (at most the grace period) for those
    /// taken to finish and be recorded, and leaves the bus. A message still
    /// running then is delivered again elsewhere and recorded as lost.
    pub async fn shutdown(self) {
        self.link.stop_taking();
        let activations = self.activations;
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            let _ = self.dispatching.await;
            activations.close();
            activations.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = activations.len(),
                "stopping with activations still running: they will be recorded as lost"
            );
        }
        self.link.leave().await;
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "committing the last activation records failed");
        }
    }
}
