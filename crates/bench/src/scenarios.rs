//! The node under test and the scenarios measured against it.
//!
//! [`Node`] is one in-process Clemmys node plus the clients a user would
//! have: a plain [`Client`] with the guest key and a [`Confidential`]
//! client with its own identity that has verified and pinned the broker.
//! Everything goes through the real HTTP API on loopback, except starting
//! the node. Each node runs on a tokio runtime of its own (threads named
//! [`NODE_THREAD`]), apart from the load generator's, as a node in another
//! process would: the two do not share worker threads, and the node's CPU
//! can be told from the clients' (see [`crate::cpu`]).
//!
//! A scenario is an async function of a node that returns report rows:
//! warm and cold starts here, chains, pool and cache cold starts, and the
//! sandbox knobs in modules of their own; `bench::run` calls them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clemmys_client::confidential::{
    BrokerIdentityDoc, ClientHome, Confidential, ConfidentialInvoked, DeployOptions,
    JavaScriptSource, expected_broker_measurement,
};
use clemmys_client::{Client, ClientTlsOptions, InvokeOptions, Invoked, Method};
use clemmys_proto::TeeKind;
use clemmys_server::{RunningServer, ServerConfig};
use clemmys_whisk::action::{ActionPut, ExecPut};
use clemmys_whisk::{ActivationId, ActivationStatus, NamespaceLimits};
use serde_json::{Value, json};

use crate::alternate;
use crate::load::{self, LatencySummary, LoadSpec};
use crate::model::{ColdRow, ColdSample, Mode, TeeFacts, WarmRow};
use crate::progress::Progress;

/// The name of the custom section that makes each cold-start module unique.
const NONCE_SECTION: &str = "clemmys-bench-nonce";
/// How long a graceful shutdown may wait for connections to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// The name of a node runtime's threads.
pub const NODE_THREAD: &str = "bench-node";
/// How long a node waits for its store file to be released by a store
/// handle that was just dropped (its writer thread closes it).
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// The example modules the scenarios deploy.
#[derive(Debug, Clone)]
pub struct Modules {
    /// `noop.wasm`: returns `{}`.
    pub noop: Vec<u8>,
    /// `hello.wasm`: greets, logs one line.
    pub hello: Vec<u8>,
}

impl Modules {
    /// Reads the examples from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(format!("{name}.wasm"));
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {}: the example actions are missing; run scripts/build-examples.sh first",
                    path.display()
                )
            })
        };
        Ok(Self {
            noop: read("noop")?,
            hello: read("hello")?,
        })
    }

    /// The module of example `name`.
    pub fn get(&self, name: &str) -> anyhow::Result<&[u8]> {
        match name {
            "noop" => Ok(&self.noop),
            "hello" => Ok(&self.hello),
            other => bail!("no example module {other} is loaded"),
        }
    }
}

/// A running node and its users.
pub struct Node {
    server: RunningServer,
    /// The node's own runtime.
    runtime: NodeRuntime,
    /// The guest namespace's plain API client.
    pub client: Client,
    /// A confidential client of the guest namespace, broker pinned.
    pub owner: Arc<Confidential>,
    /// The broker's identity document, as fetched.
    broker: BrokerIdentityDoc,
    /// How its clients check its certificate (its own authority, when it
    /// serves TLS).
    tls: ClientTlsOptions,
    _client_home: tempfile::TempDir,
    data_dir: std::path::PathBuf,
}

/// Starts a one-client node on a fresh temporary data directory,
/// configured by `configure`, runs `measure` on it and shuts it down
/// whatever `measure` returned.
pub async fn on_fresh_node<T>(
    configure: impl FnOnce(&mut ServerConfig),
    measure: impl AsyncFnOnce(&Node) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = crate::temporary_dir()?;
    let node = Node::start_with(dir.path(), 1, configure).await?;
    let measured = measure(&node).await;
    node.shutdown().await;
    measured
}

impl Node {
    /// Starts a node on `data_dir` sized for `clients` concurrent clients,
    /// raises the guest namespace's limits so they cannot throttle the run,
    /// and connects a confidential client.
    pub async fn start(data_dir: &Path, clients: usize) -> anyhow::Result<Self> {
        Self::start_with(data_dir, clients, |_| {}).await
    }

    /// Like [`start`](Self::start), with `configure` changing the node's
    /// configuration (its sandbox or enclave pool) before it starts.
    pub async fn start_with(
        data_dir: &Path,
        clients: usize,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> anyhow::Result<Self> {
        let mut config = ServerConfig::new(
            "127.0.0.1:0".parse().context("the loopback address")?,
            data_dir.to_owned(),
        );
        // Every client has one activation running at most; the headroom
        // covers cold-start runs and stragglers.
        let slots = clients.saturating_add(8).max(16);
        config.sandbox =
            clemmys_sandbox::SandboxConfig::with_slots(u32::try_from(slots).unwrap_or(u32::MAX));
        config.invoker.concurrency = slots;
        // One keep-alive connection per client, and the headroom again.
        config.http.max_connections = config.http.max_connections.max(slots.saturating_mul(2));
        configure(&mut config);
        let runtime = NodeRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name(NODE_THREAD)
                .build()
                .context("building the node's runtime")?,
        ));
        let handle = runtime.handle().context("the node's runtime")?;
        let server = start_server(&handle, config)
            .await
            .with_context(|| format!("starting a node on {}", data_dir.display()))?;
        // A node serving TLS made its own authority: its clients trust it.
        let tls = ClientTlsOptions {
            ca_file: server.ca_file.clone(),
            ..ClientTlsOptions::default()
        };
        let client = Client::with_tls(&server.api_host(), server.guest_auth.clone(), &tls)?;
        raise_limits(&server.api_host(), &tls, data_dir, slots).await?;

        let broker = BrokerIdentityDoc::fetch(&client)
            .await
            .context("fetching the broker identity")?;
        let mut pin = broker
            .verify(expected_broker_measurement(), broker.sim_platform_key)
            .context("verifying the node's broker")?;
        // The bench's own node: its guest key's namespace is the one to use.
        pin.namespace = client.list_namespaces().await?.into_iter().next();
        let home_dir = tempfile::Builder::new()
            .prefix("clemmys-bench-client-")
            .tempdir()
            .context("creating the confidential client's state directory")?;
        let home = ClientHome::open(home_dir.path())?;
        home.save_broker_pin(client.api_host(), &pin)?;
        let owner = Confidential::connect(client.clone(), home)
            .await
            .context("connecting the confidential client")?;
        Ok(Self {
            server,
            runtime,
            client,
            owner: Arc::new(owner),
            broker,
            tls,
            _client_home: home_dir,
            data_dir: data_dir.to_owned(),
        })
    }

    /// A second confidential client with the owner's identity that opens
    /// no sessions: every invoke a first run, as the CLI's.
    pub async fn one_shot_owner(&self) -> anyhow::Result<Confidential> {
        let client = Confidential::connect(self.client.clone(), self.owner.home().clone())
            .await
            .context("connecting a second confidential client")?;
        Ok(client.without_sessions())
    }

    /// Whether confidential action `name` has an enclave holding its key
    /// and compiled code (the pool provisioned it).
    pub fn enclave_ready(&self, name: &str) -> bool {
        self.server
            .enclaves
            .as_ref()
            .is_some_and(|enclaves| enclaves.is_ready(self.owner.namespace(), name))
    }

    /// Idle pre-attested enclaves now, and how many the pool keeps.
    pub fn idle_enclaves(&self) -> (usize, usize) {
        self.server.enclaves.as_ref().map_or((0, 0), |enclaves| {
            (enclaves.stats().idle, enclaves.config().idle_target)
        })
    }

    /// Modules waiting for, or in, their optimising compile.
    pub fn pending_tier_ups(&self) -> usize {
        self.server.sandbox.pending_tier_ups()
    }

    /// `/NAMESPACE/name`, as sequences name their components.
    pub fn qualified(&self, name: &str) -> String {
        format!("/{}/{name}", self.owner.namespace())
    }

    /// Creates sequence `name` of `components` (qualified names) through
    /// the API; the node makes it a confidential chain when every
    /// component is confidential, and then (`confidential`) the owner signs
    /// its plan.
    pub async fn put_sequence(
        &self,
        name: &str,
        components: Vec<String>,
        confidential: bool,
    ) -> anyhow::Result<()> {
        if confidential {
            self.owner
                .put_sequence(name, &components, ActionPut::default(), true)
                .await
                .with_context(|| format!("creating confidential sequence {name}"))?;
            return Ok(());
        }
        let put = ActionPut {
            exec: Some(ExecPut::sequence(components)),
            ..ActionPut::default()
        };
        self.client
            .put_action(name, &put, true)
            .await
            .with_context(|| format!("creating sequence {name}"))?;
        Ok(())
    }

    /// One blocking invoke of `name` in `mode` that must succeed.
    pub async fn invoke(&self, name: &str, mode: Mode) -> anyhow::Result<ActivationId> {
        match mode {
            Mode::Plain => Ok(invoke_plain(&self.client, name).await?.activation_id()),
            Mode::Confidential => invoke_confidential(&self.owner, name).await,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// How a client checks the node's certificate.
    pub fn client_tls(&self) -> &ClientTlsOptions {
        &self.tls
    }

    /// The guest namespace's API key.
    pub fn guest_auth(&self) -> &clemmys_whisk::AuthKey {
        &self.server.guest_auth
    }

    /// The node's API for a caller in this process (a gateway beside it).
    pub fn in_process(&self) -> std::sync::Arc<dyn clemmys_client::LocalApi> {
        self.server.in_process()
    }

    /// The node's runtime, for servers that belong to its side (the
    /// gateway): their CPU then counts as the node's.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Handle> {
        self.runtime.handle().context("the node's runtime is gone")
    }

    /// What the broker says about its TEE.
    pub fn tee(&self) -> TeeFacts {
        let kind: TeeKind = self.broker.tee;
        TeeFacts {
            kind: kind.name().to_owned(),
            hardware: kind.is_hardware(),
            warning: self
                .broker
                .warning
                .clone()
                .or_else(|| clemmys_client::confidential::sim_warning(kind).map(str::to_owned)),
        }
    }

    /// Creates plain action `name` from `wasm` (replacing it if present).
    pub async fn put_plain(&self, name: &str, wasm: &[u8], overwrite: bool) -> anyhow::Result<()> {
        self.client
            .put_action(name, &wasm_action(wasm), overwrite)
            .await
            .with_context(|| format!("creating plain action {name}"))?;
        Ok(())
    }

    /// Deploys confidential action `name` from `wasm`.
    pub async fn put_confidential(
        &self,
        name: &str,
        wasm: &[u8],
        overwrite: bool,
    ) -> anyhow::Result<()> {
        self.owner
            .deploy(
                name,
                wasm,
                ActionPut::default(),
                overwrite,
                &DeployOptions::default(),
            )
            .await
            .with_context(|| format!("deploying confidential action {name}"))?;
        Ok(())
    }

    /// Deploys confidential JavaScript action `name` from `source`, sealed
    /// (as the CLI seals it) for the engine whose module is `engine`: kind
    /// `nodejs:20`, the engine's digest sealed with the source.
    pub async fn put_confidential_javascript(
        &self,
        name: &str,
        source: &str,
        engine: &[u8],
        overwrite: bool,
    ) -> anyhow::Result<()> {
        let javascript = JavaScriptSource {
            source,
            engine: clemmys_proto::Digest::of(engine),
            kind: clemmys_whisk::JsKind::Nodejs20.as_str(),
        };
        self.owner
            .deploy_javascript(
                name,
                javascript,
                ActionPut::default(),
                overwrite,
                &DeployOptions::default(),
            )
            .await
            .with_context(|| format!("deploying confidential JavaScript action {name}"))?;
        Ok(())
    }

    /// Stops the node (dropping the clients' connections first), then its
    /// runtime.
    pub async fn shutdown(self) {
        let Self {
            server,
            mut runtime,
            client,
            owner,
            ..
        } = self;
        drop(client);
        drop(owner);
        let Some(runtime) = runtime.0.take() else {
            return;
        };
        let stopping = runtime.spawn(tokio::time::timeout(SHUTDOWN_WAIT, server.shutdown()));
        if !matches!(stopping.await, Ok(Ok(()))) {
            eprintln!("bench: the node did not stop within {SHUTDOWN_WAIT:?}; leaving it");
        }
        // Dropping a runtime blocks: not on an async worker.
        let _ = tokio::task::spawn_blocking(move || runtime.shutdown_timeout(SHUTDOWN_WAIT)).await;
    }
}

/// A node's runtime. Dropped without [`Node::shutdown`] (a start that
/// failed half-way), it is shut down in the background: dropping a runtime
/// on an async worker would panic.
struct NodeRuntime(Option<tokio::runtime::Runtime>);

impl NodeRuntime {
    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|runtime| runtime.handle().clone())
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts a node on `runtime`. A store handle dropped just before (the
/// growth scenario's preload) releases the store file from its writer
/// thread, a moment later: while the file is still held, the start is
/// retried.
async fn start_server(
    runtime: &tokio::runtime::Handle,
    config: ServerConfig,
) -> anyhow::Result<RunningServer> {
    let deadline = Instant::now() + STORE_RELEASE_WAIT;
    loop {
        let started = runtime
            .spawn(RunningServer::start(config.clone()))
            .await
            .context("the node's start panicked")?;
        match started {
            Err(error)
                if matches!(
                    error.downcast_ref::<clemmys_store::StoreError>(),
                    Some(clemmys_store::StoreError::Locked)
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Raises the guest namespace's limits through the node's admin API
/// (`admin:<DATA_DIR/admin.key>`), so that no present or future throttle
/// shapes the load. The controller drops its cached limits on that route.
async fn raise_limits(
    api_host: &str,
    tls: &ClientTlsOptions,
    data_dir: &Path,
    concurrent: usize,
) -> anyhow::Result<()> {
    let token_path = data_dir.join("admin.key");
    let token = std::fs::read_to_string(&token_path)
        .with_context(|| format!("reading {}", token_path.display()))?;
    let admin = Client::with_tls(
        api_host,
        clemmys_whisk::AuthKey {
            uuid: "admin".into(),
            key: token.trim().to_owned(),
        },
        tls,
    )?;
    let records: Vec<Value> = admin
        .request(Method::GET, "/admin/namespaces", None)
        .await?
        .json("namespaces")?;
    let guest = records
        .iter()
        .find(|record| record["name"] == "guest")
        .context("the node has no guest namespace")?;
    let mut limits: NamespaceLimits = serde_json::from_value(guest["limits"].clone())
        .context("reading the guest namespace's limits")?;
    limits.concurrent_invocations = limits
        .concurrent_invocations
        .max(u32::try_from(concurrent).unwrap_or(u32::MAX));
    // Far above what two cores can do in a minute (about 10^5 invokes).
    limits.invocations_per_minute = limits.invocations_per_minute.max(1_000_000_000);
    admin
        .request(
            Method::PUT,
            "/admin/namespaces/guest",
            Some(json!({ "limits": limits }).to_string().into()),
        )
        .await?
        .error_for_status()
        .context("raising the guest namespace's limits")?;
    Ok(())
}

/// The `PUT` body of a wasm action.
fn wasm_action(wasm: &[u8]) -> ActionPut {
    ActionPut {
        exec: Some(ExecPut::wasm(wasm, None)),
        ..ActionPut::default()
    }
}

/// One blocking plain invoke that must succeed.
pub async fn invoke_plain(client: &Client, name: &str) -> anyhow::Result<Invoked> {
    let invoked = client
        .invoke(name, Value::Null, InvokeOptions::blocking())
        .await?;
    match &invoked {
        Invoked::Completed { status: 200, .. } => Ok(invoked),
        Invoked::Completed { status, body, .. } => {
            bail!("{name} answered HTTP {status}: {body}")
        }
        Invoked::Accepted { activation_id } => {
            bail!("{name} did not finish within the blocking wait ({activation_id})")
        }
    }
}

/// One blocking confidential invoke, opened and verified, that must succeed.
pub async fn invoke_confidential(owner: &Confidential, name: &str) -> anyhow::Result<ActivationId> {
    match owner
        .invoke(name, &json!({}), InvokeOptions::blocking())
        .await?
    {
        ConfidentialInvoked::Completed(opened) => {
            ensure!(
                opened.status == ActivationStatus::Success,
                "{name} finished with {:?}: {}",
                opened.status,
                opened.result
            );
            Ok(opened.activation_id)
        }
        ConfidentialInvoked::Accepted { activation_id } => {
            bail!("{name} did not finish within the blocking wait ({activation_id})")
        }
    }
}

/// How long and how wide the scenarios measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The client counts of warm measurements (1 and N).
    pub clients: Vec<usize>,
    /// Unrecorded warm-up before each window.
    pub warmup: Duration,
    /// Each warm measurement's window.
    pub duration: Duration,
    /// Cold starts per action.
    pub cold_runs: usize,
    /// Each chain length's window (one client).
    pub chain_duration: Duration,
    /// Warm instances the density measurement keeps alive.
    pub density_instances: usize,
    /// Separate side-by-side windows of the warm plain/confidential pair.
    pub runs: usize,
    /// Activation records the growth comparison preloads.
    pub growth_records: usize,
    /// Connections of each kind the handshake measurement makes.
    pub handshakes: usize,
}

impl Plan {
    /// The load of a warm measurement with `clients` clients.
    pub fn spec(&self, clients: usize) -> LoadSpec {
        LoadSpec {
            clients,
            warmup: self.warmup,
            duration: self.duration,
        }
    }
}

/// Warm closed-loop blocking invokes of `action`, created under each
/// `(mode, name)` of `variants`, from `clients` concurrent clients, the
/// variants measured side by side (see [`alternate`]); one row each.
pub async fn warm(
    node: &Node,
    plan: &Plan,
    (clients, run): (usize, usize),
    action: &str,
    variants: &[(Mode, &str)],
    progress: &Progress,
) -> anyhow::Result<Vec<WarmRow>> {
    let mut operations = Vec::with_capacity(variants.len());
    for &(mode, name) in variants {
        operations.push(invoke_operation(node, name, mode).await?);
    }
    let modes: Vec<&str> = variants.iter().map(|(mode, _)| mode.name()).collect();
    let label = format!(
        "warm {action} {}, {clients} client(s), run {run}",
        modes.join(" vs ")
    );
    let summaries =
        alternate::side_by_side(&label, plan.spec(clients), &operations, progress).await?;
    Ok(variants
        .iter()
        .zip(summaries)
        .map(|(&(mode, _), measured)| WarmRow {
            action: action.to_owned(),
            mode,
            clients,
            run,
            summary: measured.summary,
            slice_requests: measured.slice_requests,
        })
        .collect())
}

/// The blocking invoke of `name` in `mode` as a load-generator operation,
/// after one untimed invoke (a failure there is a setup error, reported as
/// such instead of as a window full of errors).
pub async fn invoke_operation(
    node: &Node,
    name: &str,
    mode: Mode,
) -> anyhow::Result<alternate::Operation> {
    node.invoke(name, mode).await?;
    let name: Arc<str> = name.into();
    Ok(match mode {
        Mode::Plain => {
            let client = node.client.clone();
            alternate::operation(move || {
                let (client, name) = (client.clone(), name.clone());
                async move { invoke_plain(&client, &name).await.map(|_| ()) }
            })
        }
        Mode::Confidential => confidential_operation(node.owner.clone(), name),
    })
}

/// Closed-loop blocking invokes of `name` in `mode` as `spec` says, alone.
pub async fn invoke_loop(
    node: &Node,
    name: &str,
    mode: Mode,
    label: &str,
    spec: LoadSpec,
    progress: &Progress,
) -> anyhow::Result<LatencySummary> {
    let operation = invoke_operation(node, name, mode).await?;
    closed_loop(label, spec, move || operation(), progress).await
}

/// The blocking invoke of confidential `name` by `owner` as a
/// load-generator operation.
pub fn confidential_operation(owner: Arc<Confidential>, name: Arc<str>) -> alternate::Operation {
    alternate::operation(move || {
        let (owner, name) = (owner.clone(), name.clone());
        async move { invoke_confidential(&owner, &name).await.map(|_| ()) }
    })
}

/// Runs `operation` in a closed loop as `spec` says, with a progress bar
/// named `label`; the window's figures, or an error if nothing succeeded.
pub async fn closed_loop<F, Fut>(
    label: &str,
    spec: LoadSpec,
    operation: F,
    progress: &Progress,
) -> anyhow::Result<LatencySummary>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let finished = Arc::new(AtomicU64::new(0));
    let step = progress.timed(label, spec.warmup + spec.duration, finished.clone());
    let (recording, window) = load::generate(spec, operation, finished).await?;
    let summary = recording.summarize_successes(label, window)?;
    step.finish(&format!(
        "{:.0} req/s, p50 {:.3} ms, p99 {:.3} ms{}",
        summary.throughput_rps,
        summary.p50_ms,
        summary.p99_ms,
        recording
            .first_error()
            .map(|e| format!(", {} errors (first: {e})", summary.errors))
            .unwrap_or_default()
    ));
    Ok(summary)
}

/// What a cold-start run does, untimed, between creating its action and
/// invoking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeforeInvoke {
    /// Nothing: the invoke follows the create at once (and may wait for a
    /// compile or provisioning the create started).
    Nothing,
    /// Wait until the node's enclave pool has provisioned the confidential
    /// action (key granted, code decrypted and compiled).
    EnclaveReady,
    /// Pause (long enough for a compile started at create to finish), then
    /// invoke another action, untimed: with a module cache of one, that
    /// evicts the new action's module, so the timed invoke compiles.
    Pause {
        /// How long.
        pause: Duration,
        /// The action invoked after the pause, if any.
        then_invoke: Option<String>,
    },
}

/// How long a run waits at most for an enclave to be provisioned.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long a run waits at most for background compiles and enclave refills.
const REFILL_WAIT: Duration = Duration::from_secs(10);

/// `plan.cold_runs` cold starts of example `action` in `mode`: each run creates a
/// fresh action (a unique name, and unique code so that no compiled module
/// is reused) and invokes it once, timing both.
pub async fn cold(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    action: &str,
    mode: Mode,
    progress: &Progress,
) -> anyhow::Result<ColdRow> {
    let label = format!("cold {} {action}", mode.name());
    cold_with(
        node,
        plan,
        modules,
        (action, mode),
        &BeforeInvoke::Nothing,
        &label,
        progress,
    )
    .await
}

/// Like [`cold`], doing `before` between each create and its invoke. Each
/// run starts, untimed, once the last one's background work is done: the
/// optimising compiles of a tiered sandbox, and on a node with idle
/// enclaves, their refill (a pool in its steady state).
pub async fn cold_with(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    (action, mode): (&str, Mode),
    before: &BeforeInvoke,
    label: &str,
    progress: &Progress,
) -> anyhow::Result<ColdRow> {
    let runs = plan.cold_runs;
    let wasm = modules.get(action)?;
    let run_id = random_hex()?;
    let step = progress.counted(label, runs as u64);
    let mut samples = Vec::with_capacity(runs);
    let mut errors = 0;
    let mut first_error = None;
    for run in 0..runs {
        let name = format!("bench-cold-{}-{action}-{run_id}-{run}", mode.name());
        let code = with_custom_section(wasm, NONCE_SECTION, format!("{run_id}-{run}").as_bytes());
        wait_for_background_work(node, mode).await;
        match cold_once(node, &name, &code, mode, before).await {
            Ok(sample) => samples.push(sample),
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
        step.inc();
    }
    let row = ColdRow::from_samples(action, mode, samples, errors);
    if row.runs == 0 {
        bail!(
            "{label}: every run failed: {}",
            first_error.unwrap_or_default()
        );
    }
    step.finish(&format!(
        "create+invoke p50 {:.2} ms, p90 {:.2} ms{}",
        row.total_ms.p50,
        row.total_ms.p90,
        first_error
            .map(|e| format!(", {errors} errors (first: {e})"))
            .unwrap_or_default()
    ));
    Ok(row)
}

/// Waits (untimed, up to [`REFILL_WAIT`]) until the node compiles nothing
/// in the background and, for a confidential run, its pool has all the
/// idle enclaves it keeps.
async fn wait_for_background_work(node: &Node, mode: Mode) {
    let deadline = Instant::now() + REFILL_WAIT;
    loop {
        let (idle, target) = node.idle_enclaves();
        let refilled = mode == Mode::Plain || idle >= target;
        if (refilled && node.pending_tier_ups() == 0) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn cold_once(
    node: &Node,
    name: &str,
    code: &[u8],
    mode: Mode,
    before: &BeforeInvoke,
) -> anyhow::Result<ColdSample> {
    let started = Instant::now();
    match mode {
        Mode::Plain => node.put_plain(name, code, false).await?,
        Mode::Confidential => node.put_confidential(name, code, false).await?,
    }
    let create = started.elapsed();
    let waited = Instant::now();
    let wait_ms = match before {
        BeforeInvoke::Nothing => None,
        BeforeInvoke::EnclaveReady => {
            let deadline = waited + READY_WAIT;
            while !node.enclave_ready(name) {
                if Instant::now() > deadline {
                    bail!("{name} was not provisioned within {READY_WAIT:?}");
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            Some(waited.elapsed().as_secs_f64() * 1e3)
        }
        BeforeInvoke::Pause { pause, then_invoke } => {
            tokio::time::sleep(*pause).await;
            if let Some(other) = then_invoke {
                node.invoke(other, mode).await?;
            }
            None
        }
    };
    let invoking = Instant::now();
    let activation_id = node.invoke(name, mode).await?;
    let first_invoke = invoking.elapsed();
    // Untimed: the stored record's annotations.
    let record = node
        .client
        .get_activation(activation_id)
        .await
        .with_context(|| format!("reading activation {activation_id}"))?;
    let init_time_ms = record.annotations.get("initTime").and_then(Value::as_f64);
    Ok(ColdSample {
        create_ms: create.as_secs_f64() * 1e3,
        first_invoke_ms: first_invoke.as_secs_f64() * 1e3,
        init_time_ms,
        wait_ms,
    })
}

/// 8 random bytes in hex, to keep names of separate runs apart.
pub fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).context("reading the OS RNG")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `wasm` with a custom section `name` holding `payload` appended. Custom
/// sections may appear anywhere and carry no semantics, so the module
/// behaves the same but has a different digest: no cache keyed by the code
/// can serve it.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    push_leb128(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(wasm.len() + body.len() + 6);
    out.extend_from_slice(wasm);
    out.push(0); // custom section id
    push_leb128(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// Appends `value` as unsigned LEB128.
fn push_leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_the_spec_examples() {
        let encode = |value| {
            let mut out = Vec::new();
            push_leb128(&mut out, value);
            out
        };
        assert_eq!(encode(0), vec![0x00]);
        assert_eq!(encode(127), vec![0x7f]);
        assert_eq!(encode(128), vec![0x80, 0x01]);
        assert_eq!(encode(624_485), vec![0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn custom_section_is_appended_after_the_module() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let out = with_custom_section(&module, "ab", b"xyz");
        assert_eq!(&out[..module.len()], &module[..]);
        assert_eq!(
            &out[module.len()..],
            &[0, 6, 2, b'a', b'b', b'x', b'y', b'z']
        );
        let other = with_custom_section(&module, "ab", b"xyw");
        assert_ne!(out, other, "the payload makes each module unique");
    }
}
