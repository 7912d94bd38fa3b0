//! The distributed path (`--only cluster`): warm blocking invokes of the
//! plain noop through a controller in this process whose invokers are
//! `clemmys serve --role invoker` processes, over NATS JetStream
//! (scripts/nats.sh) and PostgreSQL (scripts/postgres.sh, through its Unix
//! socket), with 1, 2 and 3
//! invokers; and, in the same run, the same load on the embedded node (one
//! process, in-process bus, the redb store).
//!
//! An action always runs on its home invoker (rendezvous hashing of its
//! name), so the load goes round-robin over [`ACTIONS`] copies of noop:
//! with several invokers every one of them gets some. The figures compare
//! setups on one machine: every process (controller, invokers,
//! nats-server, PostgreSQL, the clients) shares its cores, so more
//! invokers add capacity only where there are idle cores for them. The
//! per-request cost is the whole machine's CPU time per request
//! (`/proc/stat`), which counts every process of the setup.
//!
//! Without nats-server, PostgreSQL or the `clemmys` binary (beside this
//! one) nothing is measured, and the report says why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clemmys_client::Client;
use clemmys_server::broker_node::{BrokerConfig, RunningBroker};
use clemmys_server::{BrokerLocation, BusLocation, NatsConfig, NodeRole, StoreLocation};
use serde::Serialize;

use crate::load::{self, LatencySummary};
use crate::progress::Progress;
use crate::scenarios::{self, Modules, Node, Plan};

/// The goal: one invoker behind NATS and PostgreSQL keeps at least this
/// share of the embedded node's throughput.
pub const ONE_INVOKER_GOAL: f64 = 0.7;
/// Copies of noop the load goes round-robin over.
pub const ACTIONS: usize = 12;
/// The invoker processes measured, in this order.
pub const INVOKER_COUNTS: [usize; 3] = [1, 2, 3];
/// Why nothing was measured without the backends.
pub const BACKENDS_MISSING: &str = "not measured: nats-server/PostgreSQL missing";
/// How long a new invoker may take to be heard of and run every action.
const READY_WAIT: Duration = Duration::from_secs(60);

/// One setup at one client count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRow {
    /// Invoker processes behind the controller; 0 for the embedded node.
    pub invokers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// The window's figures.
    pub summary: LatencySummary,
    /// CPU time of the whole machine (every process of the setup and the
    /// clients) per request, warm-up included, in µs; NaN where
    /// `/proc/stat` cannot be read.
    pub machine_cpu_us_per_request: f64,
}

impl ClusterRow {
    /// `embedded`, or `N invoker(s)`.
    pub fn setup(&self) -> String {
        setup_name(self.invokers)
    }
}

/// `embedded` for 0 invokers, else `N invoker(s)`.
fn setup_name(invokers: usize) -> String {
    match invokers {
        0 => "embedded".into(),
        1 => "1 invoker".into(),
        n => format!("{n} invokers"),
    }
}

/// What `--only cluster` measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    /// Why nothing was measured, if nothing was.
    pub not_measured: Option<String>,
    /// Every setup at every client count.
    pub rows: Vec<ClusterRow>,
}

impl ClusterReport {
    /// The row of `invokers` at `clients`.
    pub fn row(&self, invokers: usize, clients: usize) -> Option<&ClusterRow> {
        self.rows
            .iter()
            .find(|row| row.invokers == invokers && row.clients == clients)
    }

    /// One invoker's throughput over the embedded node's at `clients`.
    pub fn one_invoker_ratio(&self, clients: usize) -> Option<f64> {
        let (one, embedded) = (self.row(1, clients)?, self.row(0, clients)?);
        Some(one.summary.throughput_rps / embedded.summary.throughput_rps)
            .filter(|ratio| ratio.is_finite())
    }

    /// What the distributed path adds per request with one invoker at
    /// `clients`: p50 latency (ms) and machine CPU (µs).
    pub fn added_per_request(&self, clients: usize) -> Option<(f64, f64)> {
        let (one, embedded) = (self.row(1, clients)?, self.row(0, clients)?);
        Some((
            one.summary.p50_ms - embedded.summary.p50_ms,
            one.machine_cpu_us_per_request - embedded.machine_cpu_us_per_request,
        ))
    }
}

/// Why the distributed path cannot be measured here, if it cannot.
fn missing() -> Option<String> {
    let nats = clemmys_bus::test_nats::installed();
    let postgres = clemmys_store::test_postgres::installed();
    if !nats || !postgres {
        return Some(BACKENDS_MISSING.into());
    }
    if clemmys_binary().is_none() {
        return Some(
            "not measured: the clemmys binary is not beside clemmys-bench (cargo build -p clemmys)"
                .into(),
        );
    }
    None
}

/// `clemmys`, built into the same directory as this program.
fn clemmys_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("clemmys");
    path.is_file().then_some(path)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name)
}

/// A throwaway server started by one of the repository's scripts
/// (`nats.sh`, `postgres.sh`), destroyed on drop.
struct Backend {
    script: PathBuf,
    dir: tempfile::TempDir,
    url: String,
}

impl Backend {
    fn start(name: &str) -> anyhow::Result<Self> {
        let script = script(name);
        let dir = tempfile::Builder::new()
            .prefix("clemmys-bench-backend-")
            .tempdir()
            .context("creating a backend's directory")?;
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "{} start failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Self { script, dir, url })
    }

    /// The server's Unix socket URL, when its script has one (PostgreSQL):
    /// processes of one machine need no loopback TCP.
    fn socket_url(&self) -> anyhow::Result<String> {
        let output = Command::new("bash")
            .arg(&self.script)
            .arg("socket-url")
            .arg(self.dir.path())
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        if !output.status.success() {
            bail!(
                "{} socket-url failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("destroy")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .status();
    }
}

/// A `clemmys serve --role invoker` process, killed on drop.
struct InvokerProcess {
    child: Child,
}

impl InvokerProcess {
    fn start(binary: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().context("the invoker's log")?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child })
    }
}

impl Drop for InvokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Measures the embedded node and then the controller with 1, 2 and 3
/// invokers, at every client count of `plan`.
pub async fn measure(
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<ClusterReport> {
    if let Some(why) = missing() {
        progress.note(&format!("cluster: {why}"));
        return Ok(ClusterReport {
            not_measured: Some(why),
            rows: Vec::new(),
        });
    }
    let names: Arc<[String]> = (0..ACTIONS)
        .map(|i| format!("bench-noop-cluster-{i}"))
        .collect();
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();

    let dir = crate::temporary_dir()?;
    let node = Node::start(dir.path(), largest).await?;
    let measured = measure_setup(&node, plan, modules, &names, 0, progress).await;
    node.shutdown().await;
    rows.extend(measured?);

    let nats = Backend::start("nats.sh")?;
    let postgres = Backend::start("postgres.sh")?;
    let postgres_url = postgres.socket_url()?;
    let dir = crate::temporary_dir()?;
    let platform_key = dir.path().join("sim-platform.key");
    let broker = RunningBroker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().context("the loopback address")?,
        data_dir: dir.path().join("broker"),
        sim_platform_key: Some(platform_key.clone()),
        trust_sim_platforms: Vec::new(),
        http: clemmys_server::HttpLimits::default(),
        tls: None,
    })
    .await
    .context("starting the key broker")?;
    let controller = Node::start_with(&dir.path().join("controller"), largest, |config| {
        config.role = NodeRole::Controller;
        config.bus = BusLocation::Nats(NatsConfig::new(nats.url.clone()));
        config.store_location =
            StoreLocation::Postgres(clemmys_store::PostgresConfig::new(&postgres_url));
        config.broker = BrokerLocation::Remote {
            url: broker.url(),
            tls: clemmys_client::ClientTlsOptions::default(),
        };
        config.sim_platform_key = Some(platform_key.clone());
    })
    .await;
    let measured = match controller {
        Ok(controller) => {
            let measured = async {
                let binary = clemmys_binary().context("the clemmys binary")?;
                let slots = largest.saturating_add(8).max(16).to_string();
                let mut invokers = Vec::new();
                let mut rows = Vec::new();
                for count in INVOKER_COUNTS {
                    while invokers.len() < count {
                        let id = format!("bench{}", invokers.len());
                        let args: Vec<String> = [
                            "serve",
                            "--role",
                            "invoker",
                            "--invoker-id",
                            &id,
                            "--api-host",
                            controller.client.api_host(),
                            "--data-dir",
                            &dir.path().join(&id).display().to_string(),
                            "--bus",
                            &nats.url,
                            "--store",
                            &postgres_url,
                            "--broker",
                            &broker.url(),
                            "--sim-platform-key",
                            &platform_key.display().to_string(),
                            "--instance-slots",
                            &slots,
                            "--idle-enclaves",
                            "0",
                            "--no-js-engine",
                        ]
                        .iter()
                        .map(|arg| (*arg).to_owned())
                        .collect();
                        let log = dir.path().join(format!("{id}.log"));
                        invokers.push(InvokerProcess::start(&binary, &args, &log)?);
                    }
                    rows.extend(
                        measure_setup(&controller, plan, modules, &names, count, progress).await?,
                    );
                }
                Ok::<_, anyhow::Error>(rows)
            }
            .await;
            controller.shutdown().await;
            measured
        }
        Err(error) => Err(error),
    };
    broker.shutdown().await;
    rows.extend(measured?);
    drop((nats, postgres));
    Ok(ClusterReport {
        not_measured: None,
        rows,
    })
}

/// Creates the actions on `node` (the first time), waits until each one
/// runs, then measures every client count of `plan`.
async fn measure_setup(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    names: &Arc<[String]>,
    invokers: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<ClusterRow>> {
    for name in names.iter() {
        node.put_plain(name, &modules.noop, true).await?;
    }
    // A new invoker is heard of within a heartbeat or two; until then the
    // actions it is home to answer 503. Every action runs once, untimed.
    let deadline = Instant::now() + READY_WAIT;
    for name in names.iter() {
        while let Err(error) = scenarios::invoke_plain(&node.client, name).await {
            if Instant::now() >= deadline {
                return Err(error.context(format!("{name} did not run within {READY_WAIT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut rows = Vec::new();
    for &clients in &plan.clients {
        let label = format!("cluster {}, {clients} client(s)", setup_name(invokers));
        let operation = round_robin(node.client.clone(), names.clone());
        let (summary, machine_cpu_us_per_request) =
            window(&label, plan.spec(clients), operation, progress).await?;
        rows.push(ClusterRow {
            invokers,
            clients,
            summary,
            machine_cpu_us_per_request,
        });
    }
    Ok(rows)
}

/// Blocking invokes of `names`, one after the other.
fn round_robin(
    client: Client,
    names: Arc<[String]>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let next = Arc::new(AtomicUsize::new(0));
    move || {
        let index = next.fetch_add(1, Ordering::Relaxed) % names.len().max(1);
        let (client, names) = (client.clone(), names.clone());
        Box::pin(async move {
            let name = names.get(index).context("no action to invoke")?;
            scenarios::invoke_plain(&client, name).await.map(|_| ())
        })
    }
}

/// One closed-loop window, with the machine's CPU time per request.
async fn window<F, Fut>(
    label: &str,
    spec: load::LoadSpec,
    operation: F,
    progress: &Progress,
) -> anyhow::Result<(LatencySummary, f64)>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let finished = Arc::new(AtomicU64::new(0));
    let step = progress.timed(label, spec.warmup + spec.duration, finished.clone());
    let before = machine_busy_ticks();
    let (recording, window) = load::generate(spec, operation, finished.clone()).await?;
    let after = machine_busy_ticks();
    let summary = recording.summarize_successes(label, window)?;
    let requests = finished.load(Ordering::Relaxed);
    let cpu_us = match (before, after) {
        (Some(before), Some(after)) if requests > 0 => {
            after.saturating_sub(before) as f64 / crate::cpu::USER_HZ * 1e6 / requests as f64
        }
        _ => f64::NAN,
    };
    step.finish(&format!(
        "{:.0} req/s, p50 {:.3} ms, machine CPU {:.0} µs/request",
        summary.throughput_rps, summary.p50_ms, cpu_us
    ));
    Ok((summary, cpu_us))
}

/// Busy ticks of every CPU now.
fn machine_busy_ticks() -> Option<u64> {
    crate::cpu::busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(invokers: usize, clients: usize, rps: f64, p50: f64, cpu: f64) -> ClusterRow {
        ClusterRow {
            invokers,
            clients,
            summary: crate::model::tests::summary(rps, p50),
            machine_cpu_us_per_request: cpu,
        }
    }

    #[test]
    fn one_invoker_is_compared_with_the_embedded_node_at_the_same_clients() {
        let report = ClusterReport {
            not_measured: None,
            rows: vec![
                row(0, 1, 1000.0, 1.0, 300.0),
                row(0, 8, 4000.0, 2.0, 250.0),
                row(1, 1, 500.0, 2.5, 700.0),
                row(1, 8, 3000.0, 3.0, 600.0),
                row(2, 8, 3500.0, 2.8, 650.0),
            ],
        };
        assert_eq!(report.one_invoker_ratio(8), Some(0.75));
        assert_eq!(report.one_invoker_ratio(1), Some(0.5));
        assert_eq!(report.added_per_request(1), Some((1.5, 400.0)));
        assert_eq!(report.one_invoker_ratio(4), None);
        assert_eq!(ClusterReport::default().one_invoker_ratio(1), None);
        assert_eq!(report.rows[4].setup(), "2 invokers");
        assert_eq!(report.rows[0].setup(), "embedded");
    }
}
