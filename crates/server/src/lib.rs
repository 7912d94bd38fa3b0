//! Assembles one Clemmys node: controller, in-process bus, invoker and the
//! embedded store, serving the OpenWhisk API over HTTP. The invoker is
//! local, so the controller runs blocking activations with it directly;
//! non-blocking ones go through the in-process bus.
//!
//! Scaled out ([`NodeRole`], [`BusLocation::Nats`]), a controller and
//! invokers run in processes of their own, share a PostgreSQL store and
//! talk over NATS JetStream; every activation then goes through the bus.
//! An invoker on its own is an [`invoker_node::RunningInvoker`].
//!
//! `clemmys serve` runs this; integration tests start it on `127.0.0.1:0`
//! with a temporary data directory.

pub mod bootstrap;
pub mod broker_link;
pub mod broker_node;
pub mod broker_service;
pub mod catalog;
pub mod confidential;
pub mod gateway_node;
pub mod in_process;
pub mod invoker_node;
pub mod listener;
mod restart_prewarm;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
pub use clemmys_bus::nats::NatsConfig;
use clemmys_bus::nats::{NatsBus, NatsInvoker, NatsQueue};
use clemmys_bus::{ActivationQueue, CompletionRegistry, CompletionSink};
use clemmys_controller::{CodeCheck, Completions, Controller, ControllerConfig, Throttle};
use clemmys_invoker::pool::{EnclavePool, EnclavePoolConfig};
use clemmys_invoker::{Invoker, InvokerConfig};
use clemmys_sandbox::{Sandbox, SandboxConfig};
use clemmys_store::{EntityStore, PostgresConfig, PostgresStore, RedbStore, StoreConfig};
use clemmys_whisk::AuthKey;
pub use confidential::BrokerLocation;
pub use listener::HttpLimits;
pub use tls::{CertificateSource, ListenerTls};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// Messages the in-process bus holds before answering 503.
const QUEUE_CAPACITY: usize = 16_384;

/// Where a node keeps its entities and activation records.
#[derive(Debug, Clone, Default)]
pub enum StoreLocation {
    /// The embedded store, `DATA_DIR/store.redb`.
    #[default]
    DataDir,
    /// A PostgreSQL database (`--store postgres://…`).
    Postgres(PostgresConfig),
}

/// The bus between controller and invokers.
#[derive(Debug, Clone, Default)]
pub enum BusLocation {
    /// A channel in this process (one node does everything).
    #[default]
    InProcess,
    /// NATS JetStream (`--bus nats://…`).
    Nats(NatsConfig),
}

/// What a process of a node does (`--role`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NodeRole {
    /// Controller and invoker.
    #[default]
    All,
    /// The API and scheduling only; invokers run elsewhere, on the bus.
    Controller,
    /// Runs what the bus brings; serves no API.
    Invoker,
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Directory holding the store, keys and `wskprops`.
    pub data_dir: PathBuf,
    /// How the store persists: record durability, commit interval,
    /// activation retention.
    pub store: StoreConfig,
    /// Where the store is: the embedded file in the data directory, or a
    /// PostgreSQL database.
    pub store_location: StoreLocation,
    /// Sizing of the wasm sandbox.
    pub sandbox: SandboxConfig,
    /// Sizing of the invoker: its memory budget and its concurrency (at
    /// most the sandbox's instance slots).
    pub invoker: InvokerConfig,
    /// The invoker's enclaves: how many wait idle, how many stay bound,
    /// their keep-alive, and whether actions are provisioned ahead of time.
    pub enclave_pool: EnclavePoolConfig,
    /// Controller tunables.
    pub controller: ControllerConfig,
    /// Where the key broker runs.
    pub broker: BrokerLocation,
    /// The simulated platform key of this host (default
    /// `DATA_DIR/sim-platform.key`); a broker in its own process on the same
    /// host must use the same file.
    pub sim_platform_key: Option<PathBuf>,
    /// How long a stopping node waits for the activations it accepted to
    /// finish and be recorded; those still running then are recorded as
    /// interrupted at the next start. Default [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// The HTTP listener's limits against clients that hold connections.
    pub http: HttpLimits,
    /// The JavaScript engine module (`clemmys-js.wasm`, built by
    /// scripts/build-runtimes.sh); without one, JavaScript actions are
    /// refused at create.
    pub js_engine: Option<PathBuf>,
    /// TLS on the listener; `None` serves plain HTTP.
    pub tls: Option<ListenerTls>,
    /// The bus between controller and invokers.
    pub bus: BusLocation,
    /// What this process does.
    pub role: NodeRole,
    /// This invoker's name on the bus (letters, digits, `-`, `_`);
    /// default: a random one.
    pub invoker_id: Option<String>,
}

/// How long a stopping node waits for accepted activations by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl ServerConfig {
    /// Defaults for `listen` and `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            store: StoreConfig::default(),
            store_location: StoreLocation::default(),
            sandbox: SandboxConfig::default(),
            invoker: InvokerConfig::default(),
            enclave_pool: EnclavePoolConfig::default(),
            controller: ControllerConfig::default(),
            broker: BrokerLocation::InProcess,
            sim_platform_key: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            http: HttpLimits::default(),
            js_engine: None,
            tls: None,
            bus: BusLocation::InProcess,
            role: NodeRole::All,
            invoker_id: None,
        }
    }
}

/// A node that is serving.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The credential of namespace `guest`.
    pub guest_auth: AuthKey,
    /// The node's store (tests play the provider through it).
    pub store: Arc<dyn EntityStore>,
    /// The node's key broker when it runs in this process (tests present
    /// forged evidence to it).
    pub broker: Option<Arc<clemmys_broker::Broker>>,
    /// The invoker's enclaves (benchmarks and tests read their counters);
    /// `None` for a controller on its own.
    pub enclaves: Option<Arc<EnclavePool>>,
    /// The node's wasm sandbox (benchmarks wait for its background
    /// compiles).
    pub sandbox: Arc<Sandbox>,
    /// The node's invoker (operators and tests read its counters); `None`
    /// for a controller on its own.
    pub invoker: Option<Arc<Invoker>>,
    /// The certificate authority clients trust, when the node made its own
    /// (`DATA_DIR/tls/ca.pem`).
    pub ca_file: Option<PathBuf>,
    /// The node's router, kept until the node stops for
    /// [`in_process`](Self::in_process) callers.
    app: Arc<axum::Router>,
    scheme: &'static str,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
    /// The invoker's loop taking activations off the bus; it ends once the
    /// bus is closed and drained.
    dispatching: JoinHandle<()>,
    /// The invoker's accepted, unfinished activations.
    activations: TaskTracker,
    /// This process's invoker on the NATS bus, told to stop taking
    /// messages when the node stops.
    nats_invoker: Option<NatsInvoker>,
    shutdown_grace: Duration,
}

/// Checks plain code with the sandbox; sealed code is checked by framing
/// only. `javascript`: whether the node has the JavaScript engine.
struct SandboxCheck {
    sandbox: Arc<Sandbox>,
    javascript: bool,
}

impl CodeCheck for SandboxCheck {
    fn check(&self, code: &[u8], confidential: bool) -> Result<(), String> {
        if confidential {
            return clemmys_proto::code::SealedCode::from_bytes(code)
                .map(drop)
                .map_err(|error| {
                    format!(
                        "a confidential action's code must be sealed by a Clemmys client: {error}"
                    )
                });
        }
        self.sandbox
            .validate(code)
            .map_err(|error| error.to_string())
    }

    fn runs_javascript(&self) -> bool {
        self.javascript
    }
}

impl RunningServer {
    /// Starts a node: opens the store, creates namespace `guest` on first
    /// start, binds the listener and writes `DATA_DIR/wskprops`.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.role != NodeRole::Invoker,
            "an invoker on its own is an invoker_node::RunningInvoker"
        );
        check_scale_out(&config)?;
        let store = open_store(&config).await?;
        let guest_auth = bootstrap::ensure_guest_namespace(store.as_ref()).await?;
        let interrupted = store
            .settle_interrupted()
            .await
            .context("recording the activations the last stop interrupted")?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "recorded accepted activations that the last stop interrupted as internal errors"
            );
        }
        let Runtimes {
            sandbox,
            js_engine,
            trusted,
        } = start_runtimes(&config, &store).await?;
        let completions = Arc::new(CompletionRegistry::default());
        let throttle = Arc::new(Throttle::default());
        let sink = Arc::new(Completions {
            registry: completions.clone(),
            throttle: throttle.clone(),
        });
        // The bus, and where this process's invoker reports completions.
        let (queue, invoker_sink, feed, nats): (
            Arc<dyn ActivationQueue>,
            Arc<dyn CompletionSink>,
            _,
            _,
        ) = match &config.bus {
            BusLocation::InProcess => {
                let (queue, feed) = clemmys_bus::in_process(QUEUE_CAPACITY);
                (Arc::new(queue), sink.clone(), Some(feed), None)
            }
            BusLocation::Nats(nats) => {
                let bus = NatsBus::connect(nats)
                    .await
                    .context("connecting to the NATS bus")?;
                let shown: Arc<dyn CompletionSink> = Arc::new(ShownUntilStored {
                    store: store.clone(),
                    inner: sink.clone(),
                });
                let queue = NatsQueue::start(bus.clone(), &random_token("c"), shown)
                    .await
                    .context("joining the NATS bus as a controller")?;
                if config.role == NodeRole::All {
                    let id = config
                        .invoker_id
                        .clone()
                        .unwrap_or_else(|| random_token("i"));
                    let (link, feed, invoker_sink) = NatsInvoker::join(bus, &id)
                        .await
                        .context("joining the NATS bus as an invoker")?;
                    (Arc::new(queue), invoker_sink, None, Some((link, feed)))
                } else {
                    (Arc::new(queue), sink.clone(), None, None)
                }
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.resolve(&config.data_dir, addr))
            .transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let api_host = format!("{scheme}://{addr}");
        let runs_javascript = js_engine.is_some();
        // Only a process that runs actions has enclaves, and an invoker.
        let invoker = trusted.enclaves.as_ref().map(|enclaves| {
            let mut invoker_config = config.invoker.clone();
            // Actions learn where the API is (`__OW_API_HOST`).
            invoker_config.api_host = Some(api_host.clone());
            // An activation past the sandbox's slots could not be instantiated.
            let slots = usize::try_from(config.sandbox.total_core_instances).unwrap_or(usize::MAX);
            invoker_config.concurrency = invoker_config.concurrency.min(slots);
            invoker_config.javascript = js_engine;
            restart_prewarm::spawn(store.clone(), enclaves.clone());
            Invoker::with_enclave(
                sandbox.clone(),
                store.clone(),
                invoker_sink,
                invoker_config,
                enclaves.clone(),
            )
        });
        let activations = invoker
            .as_ref()
            .map_or_else(TaskTracker::new, |invoker| invoker.activations());
        let (dispatching, nats_invoker) = match (&invoker, feed, nats) {
            (Some(invoker), Some(feed), _) => (tokio::spawn(invoker.clone().consume(feed)), None),
            (Some(invoker), None, Some((link, feed))) => (
                tokio::spawn(invoker.clone().consume_deliveries(feed)),
                Some(link),
            ),
            // A controller alone takes nothing off the bus.
            _ => (tokio::spawn(async {}), None),
        };
        let in_process_bus = matches!(config.bus, BusLocation::InProcess);
        let mut controller_config = config.controller.clone();
        controller_config.admin_token = Some(bootstrap::admin_token(&config.data_dir)?);
        let controller = Controller::new(
            store.clone(),
            queue,
            completions,
            throttle,
            Arc::new(SandboxCheck {
                sandbox: sandbox.clone(),
                javascript: runs_javascript,
            }),
            controller_config,
        )
        .with_broker(trusted.gateway());
        // Over NATS every activation goes through the bus, so that the
        // balancer sees and spreads them all.
        let controller = match &invoker {
            Some(invoker) if in_process_bus => controller.with_local_invoker(invoker.clone()),
            _ => controller,
        };
        let controller = Arc::new(controller);
        if !in_process_bus {
            // A completion lost on the network must not hold its slot.
            controller.watch_lost_completions();
        }
        // Triggers with an alarms feed fire on their schedule again.
        let alarms = controller
            .start_alarms()
            .await
            .context("scheduling the stored alarm triggers")?;
        if alarms > 0 {
            tracing::info!(alarms, "scheduled alarm triggers");
        }
        if runs_javascript {
            catalog::install(&controller).await?;
        }

        let ca_file = tls.as_ref().and_then(|tls| tls.ca_file.clone());
        bootstrap::write_wskprops(&config.data_dir, &api_host, &guest_auth, ca_file.as_deref())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = clemmys_controller::router(controller);
        let kept_app = Arc::new(app.clone());
        let acceptor = tls.map(|tls| tls.acceptor);
        let serving = tokio::spawn(listener::serve(
            listener,
            acceptor,
            app,
            config.http,
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%addr, "serving the OpenWhisk API");
        Ok(Self {
            addr,
            guest_auth,
            store,
            broker: trusted.broker.clone(),
            enclaves: trusted.enclaves.clone(),
            sandbox,
            invoker,
            ca_file,
            app: kept_app,
            scheme,
            stop,
            serving,
            dispatching,
            activations,
            nats_invoker,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// The node's API for a caller in this process (a gateway beside it),
    /// without a socket.
    pub fn in_process(&self) -> Arc<dyn clemmys_client::LocalApi> {
        Arc::new(in_process::InProcessNode::new(&self.app))
    }

    /// `http://ADDR` (`https://` with TLS), the API host clients use.
    pub fn api_host(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Serves until ctrl-c or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        bootstrap::shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting requests, waits for those in flight, then for the
    /// activations it accepted (non-blocking ones, and blocking ones whose
    /// wait ran out) to finish and be recorded, for at most the grace
    /// period; last makes every record written so far durable.
    pub async fn shutdown(self) {
        // The router holds the controller, which holds the bus open: the
        // invoker's loop below ends only once every copy is gone.
        drop(self.app);
        let _ = self.stop.send(());
        match self.serving.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server stopped with an error"),
            Err(error) => tracing::error!(%error, "server task failed"),
        }
        let activations = self.activations;
        if let Some(link) = &self.nats_invoker {
            link.stop_taking();
        }
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            // With the API closed the controller is gone, so the bus closes:
            // the invoker takes what is still queued on it, then its loop
            // ends. Then every activation it started must finish.
            let _ = self.dispatching.await;
            activations.close();
            if !activations.is_empty() {
                tracing::info!(
                    running = activations.len(),
                    grace_s = self.shutdown_grace.as_secs_f64(),
                    "waiting for accepted activations to finish"
                );
            }
            activations.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                running = activations.len(),
                "stopping with activations still running: the next start records them as interrupted"
            );
        }
        if let Some(link) = self.nats_invoker {
            link.leave().await;
        }
        // Records written under group durability may still be waiting for
        // their commit: the process may exit right after this returns.
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, "committing the last activation records failed");
        }
    }
}

/// How long a controller shows a record that an invoker over NATS
/// answered before committing it (see [`ShownUntilStored`]): far longer
/// than a commit takes, short enough to keep few such records in memory.
const SHOWN_UNTIL_STORED: Duration = Duration::from_secs(2);

/// A controller's completions on a networked bus. Invokers there answer
/// an activation before its record is committed (its message is
/// acknowledged only once it is), so a caller could read
/// `/activations/ID` before the record is in the store; this shows the
/// answered record to the controller's reads meanwhile.
struct ShownUntilStored {
    store: Arc<dyn EntityStore>,
    inner: Arc<dyn CompletionSink>,
}

impl CompletionSink for ShownUntilStored {
    fn complete(&self, completion: clemmys_bus::Completion) {
        self.store
            .show_until_stored(&completion.activation, SHOWN_UNTIL_STORED);
        self.inner.complete(completion);
    }
}

/// Refuses a scale-out setup that cannot work: processes of their own
/// share nothing unless they share the bus, the store and the key broker.
pub(crate) fn check_scale_out(config: &ServerConfig) -> anyhow::Result<()> {
    if config.role == NodeRole::All {
        return Ok(());
    }
    anyhow::ensure!(
        matches!(config.bus, BusLocation::Nats(_)),
        "a controller or an invoker on its own needs the NATS bus (--bus nats://HOST:PORT)"
    );
    anyhow::ensure!(
        matches!(config.store_location, StoreLocation::Postgres(_)),
        "a controller or an invoker on its own needs the shared store (--store postgres://...)"
    );
    // A broker per process would grant keys that no other process knows:
    // clients seal to the controller's broker, enclaves of every invoker
    // must ask the same one.
    anyhow::ensure!(
        matches!(config.broker, BrokerLocation::Remote { .. }),
        "a controller or an invoker on its own needs the shared key broker \
         (--broker URL of `clemmys broker serve`)"
    );
    Ok(())
}

/// Opens the node's store. (Over NATS, an invoker acknowledges a message
/// only once its record is committed, whatever the durability: see
/// `Invoker::consume_deliveries`.)
pub(crate) async fn open_store(config: &ServerConfig) -> anyhow::Result<Arc<dyn EntityStore>> {
    bootstrap::create_private_dir(&config.data_dir)?;
    let store_config = config.store.clone();
    Ok(match &config.store_location {
        StoreLocation::DataDir => {
            let store_path = config.data_dir.join("store.redb");
            Arc::new(
                RedbStore::open_with(&store_path, store_config)
                    .with_context(|| format!("opening the store {}", store_path.display()))?,
            )
        }
        StoreLocation::Postgres(postgres) => Arc::new(
            PostgresStore::connect(postgres, store_config)
                .await
                .context("opening the PostgreSQL store")?,
        ),
    })
}

/// What runs actions: the sandbox, the JavaScript engine if any, and the
/// trusted parts (broker, enclave pool unless the process is a controller
/// on its own).
pub(crate) struct Runtimes {
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) js_engine: Option<clemmys_invoker::JsEngine>,
    pub(crate) trusted: confidential::TrustedParts,
}

/// Creates the sandbox, loads the JavaScript engine and starts the
/// trusted parts.
pub(crate) async fn start_runtimes(
    config: &ServerConfig,
    store: &Arc<dyn EntityStore>,
) -> anyhow::Result<Runtimes> {
    let sandbox = Arc::new(Sandbox::new(&config.sandbox).context("creating the wasm sandbox")?);
    let js_engine = match &config.js_engine {
        Some(path) => {
            let code = std::fs::read(path)
                .with_context(|| format!("reading the JavaScript engine {}", path.display()))?;
            sandbox
                .validate(&code)
                .with_context(|| format!("checking the JavaScript engine {}", path.display()))?;
            Some(clemmys_invoker::JsEngine::new(code))
        }
        None => None,
    };
    let location = config.broker.clone();
    let platform_key = config.sim_platform_key.clone();
    let data_dir = config.data_dir.clone();
    // A controller on its own runs no actions: it needs the broker, not
    // enclaves.
    let enclaves = (config.role != NodeRole::Controller).then(|| confidential::EnclaveSetup {
        runtimes: confidential::Runtimes {
            sandbox: sandbox.clone(),
            javascript: js_engine.clone(),
        },
        store: store.clone(),
        pool: config.enclave_pool.clone(),
    });
    // Connecting to a remote broker blocks: keep it off the async workers.
    let trusted = tokio::task::spawn_blocking(move || {
        confidential::TrustedParts::start(&data_dir, platform_key.as_ref(), &location, enclaves)
    })
    .await
    .context("starting the trusted parts")??;
    Ok(Runtimes {
        sandbox,
        js_engine,
        trusted,
    })
}

/// A random name on the bus: `prefix` and 16 hex digits.
pub(crate) fn random_token(prefix: &str) -> String {
    let mut random = [0u8; 8];
    // Without OS randomness a fixed name still works for one process.
    let _ = getrandom::fill(&mut random);
    format!("{prefix}{}", hex::encode(random))
}
