//! `clemmys-bench`: the benchmark suite of Clemmys. It starts Clemmys
//! nodes in this process and measures them over loopback HTTP the way
//! users reach them, then prints a table (or JSON), writes the JSON and an
//! SVG plot, and with `--publish` the README's results block.
//!
//! It is a binary of its own, not a subcommand of `clemmys`: the load
//! generator, histograms, progress bars and plotting stay out of the
//! `clemmys` binary. `scripts/bench.sh` builds and runs it with the peer.
//!
//! * [`load`]: the closed-loop load generator and latency summaries.
//! * [`alternate`]: side-by-side windows in alternating slices.
//! * [`scenarios`]: the node under test, warm and cold invokes.
//! * [`floors`]: what an invoke pays before wasm runs (API round trip,
//!   fsync).
//! * [`chains`]: sequences of 1, 5 and 10 steps, plain and confidential.
//! * [`coldstart`]: cold starts with and without the enclave pool and the
//!   module cache.
//! * [`knobs`]: the sandbox's knobs, one at a time.
//! * [`peer`]: `wasmtime serve`, driven by the same load generator.
//! * [`density`]: warm instances per 2 GiB, of noop and of one
//!   JavaScript action.
//! * [`growth`]: an empty store against one preloaded with many records.
//! * [`gateway`]: the attested gateway against the node it fronts, and
//!   TLS handshakes.
//! * [`cluster`]: a controller with 1, 2 and 3 invoker processes over NATS
//!   and PostgreSQL against the embedded node.
//! * [`model`]: the figures; [`goals`]: the targets and verdicts;
//!   [`render`]: the table, the README block and the SVG plot.
//! * [`progress`]: progress on stderr.
//! * [`cpu`]: how busy the rest of the machine was, and the node's CPU
//!   apart from the clients'.
//!
//! Every figure printed is measured in the run that prints it, side by side
//! on the same machine; goals are evaluated on those figures only, and a
//! figure that was not measured says so. The nodes' TEE is whatever they
//! attest with: on a machine without SGX that is `sim`, which protects
//! nothing, and the report says so.

/// mimalloc instead of glibc's allocator: a warm invoke allocates and
/// frees many small buffers on the runtime's threads, and with mimalloc
/// the node spends 6-14 % less CPU per request at 8 clients
/// (docs/BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod alternate;
mod chains;
mod cluster;
mod coldstart;
mod cpu;
mod density;
mod floors;
mod gateway;
mod goals;
mod growth;
mod javascript;
mod knobs;
mod load;
mod model;
mod peer;
mod progress;
mod render;
mod scenarios;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;

use self::model::{Machine, Mode, PeerRow, PeerSection, Report, Settings, WarmRow};
use self::peer::{PeerServer, PeerSpec};
use self::progress::Progress;
use self::render::svg as plot;
use self::scenarios::{Modules, Node, Plan};

/// Where `scripts/build-examples.sh` puts the example modules, relative to
/// the repository root.
const DEFAULT_ACTIONS_DIR: &str = "target/examples/wasm32-wasip1/release";
/// Where the plot goes when `--out` is given without `--plot`: beside it.
const DEFAULT_PLOT: &str = "target/bench/bench.svg";
/// Where `--publish` copies the plot and the JSON, for the README.
const PUBLISHED_PLOT: &str = "docs/bench.svg";
const PUBLISHED_JSON: &str = "docs/bench.json";
/// The README whose results block `--publish` rewrites.
const PUBLISHED_README: &str = "README.md";
/// Where `scripts/bench.sh` installs the peer and builds its component,
/// relative to the repository root: used when `--peer` is not given and
/// they are there.
const DEFAULT_PEER: &str = "target/peer/bin/wasmtime";
const DEFAULT_JS_ENGINE: &str = "target/runtimes/wasm32-wasip1/release/clemmys-js.wasm";
const DEFAULT_PEER_COMPONENT: &str = "target/peer-build/wasm32-wasip2/release/hello_http.wasm";
/// The wasmtime line Clemmys is built on (the peer may be newer: the
/// report says so).
const OUR_WASMTIME_LINE: &str = "48.0.";
/// Other processes' CPU use, in % of one core, past which a scenario's
/// figures are called disturbed.
const DISTURBED_PCT: f64 = 10.0;
/// The warm actions' names, of (nearly) equal length in both modes: each
/// record stores the name twice (name and path), and its size shows in the
/// stored record, which should differ only by what protection costs.
const PLAIN_NOOP: &str = "bench-noop-plain";
const CONFIDENTIAL_NOOP: &str = "bench-noop-conf";
const PLAIN_HELLO: &str = "bench-hello-plain";
const CONFIDENTIAL_HELLO: &str = "bench-hello-conf";

/// A part of the suite (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// Warm blocking invokes of noop, plain and confidential, 1 and N clients.
    Warm,
    /// `wasmtime serve` against our warm hello (needs --peer).
    Peer,
    /// Cold starts: create + first invoke.
    Cold,
    /// Sequences of 1, 5 and 10 noop steps.
    Chains,
    /// Cold starts with and without the enclave pool.
    Pool,
    /// Cold starts with and without the module cache.
    Cache,
    /// The sandbox's knobs, one at a time.
    Knobs,
    /// Warm instances per 2 GiB: of noop, and of one JavaScript action
    /// when the engine is there.
    Density,
    /// An empty store against one preloaded with many records.
    Growth,
    /// Warm JavaScript hello against warm wasm hello, and confidential
    /// against plain (needs the engine).
    Js,
    /// Warm noop through the attested gateway against plain, both over
    /// TLS; TLS handshakes.
    Gateway,
    /// A controller with 1, 2 and 3 invoker processes over NATS and
    /// PostgreSQL against the embedded node (needs nats-server and
    /// PostgreSQL).
    Cluster,
}

impl Scenario {
    const ALL: [Scenario; 12] = [
        Scenario::Warm,
        Scenario::Peer,
        Scenario::Cold,
        Scenario::Chains,
        Scenario::Pool,
        Scenario::Cache,
        Scenario::Knobs,
        Scenario::Density,
        Scenario::Growth,
        Scenario::Js,
        Scenario::Gateway,
        Scenario::Cluster,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Warm => "warm",
            Scenario::Peer => "peer",
            Scenario::Cold => "cold",
            Scenario::Chains => "chains",
            Scenario::Pool => "pool",
            Scenario::Cache => "cache",
            Scenario::Knobs => "knobs",
            Scenario::Density => "density",
            Scenario::Growth => "growth",
            Scenario::Js => "js",
            Scenario::Gateway => "gateway",
            Scenario::Cluster => "cluster",
        }
    }
}

/// Activation records `--only growth` preloads by default, and with
/// `--quick`.
const GROWTH_RECORDS: usize = 1_000_000;
const QUICK_GROWTH_RECORDS: usize = 20_000;
/// Connections of each kind (TCP, full and resumed TLS) the gateway
/// scenario's handshake measurement makes, and with `--quick`.
const HANDSHAKES: usize = 1_000;
const QUICK_HANDSHAKES: usize = 200;

/// Measures Clemmys nodes started in this process, side by side, and
/// prints one table (JSON with --json). See docs/BENCHMARKS.md.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "clemmys-bench", version, about, long_about = None)]
pub struct BenchArgs {
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds of each warm measurement (after its warm-up).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Seconds of unrecorded warm-up before each warm measurement.
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// The "N concurrent clients" of the warm measurements (1 is always
    /// measured too).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Cold starts per action and setting (each creates a fresh action).
    #[arg(long, value_name = "N")]
    pub cold_runs: Option<usize>,
    /// Separate side-by-side windows of the warm plain/confidential pair
    /// (the confidential/plain goals must hold in each of 5).
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Activation records the growth comparison preloads (default
    /// 1,000,000; 20,000 with --quick).
    #[arg(long, value_name = "N")]
    pub growth_records: Option<usize>,
    /// Seconds of each chain length's measurement, per mode.
    #[arg(long, value_name = "SECS")]
    pub chain_duration: Option<f64>,
    /// Warm instances the density measurement keeps alive at once.
    #[arg(long, value_name = "N", default_value_t = 6_000)]
    pub density: usize,
    /// A smoke run of about a minute: shorter windows, fewer cold starts.
    /// Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SCENARIO,...")]
    pub only: Vec<Scenario>,
    /// The `wasmtime` binary to compare with (`wasmtime serve`);
    /// default target/peer/bin/wasmtime when it is there (scripts/bench.sh
    /// installs it).
    #[arg(long, value_name = "WASMTIME")]
    pub peer: Option<PathBuf>,
    /// The wasi:http component `wasmtime serve` runs (scripts/bench.sh
    /// builds examples/peer/hello-http).
    #[arg(long, value_name = "FILE.wasm", requires = "peer")]
    pub peer_component: Option<PathBuf>,
    /// Directory of the example modules (noop.wasm, hello.wasm).
    #[arg(
        long,
        value_name = "DIR",
        env = "CLEMMYS_EXAMPLES_DIR",
        default_value = DEFAULT_ACTIONS_DIR
    )]
    pub actions_dir: PathBuf,
    /// The JavaScript engine of `--only js` (scripts/build-runtimes.sh
    /// builds it, pre-initialized).
    #[arg(
        long,
        value_name = "FILE.wasm",
        env = "CLEMMYS_JS_ENGINE",
        default_value = DEFAULT_JS_ENGINE
    )]
    pub js_engine: PathBuf,
    /// The main node's data directory: absent or empty (default: a fresh
    /// temporary directory, removed afterwards). The nodes of the pool,
    /// cache and knob comparisons always get temporary ones.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the report as JSON to this file (and the plot to
    /// target/bench/bench.svg unless --plot says where).
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Draw the key comparisons as SVG to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also write the plot to docs/bench.svg, the JSON to docs/bench.json
    /// and the results block of README.md (run from the repository root).
    #[arg(long)]
    pub publish: bool,
}

impl BenchArgs {
    /// The plan these arguments ask for, checked.
    fn plan(&self) -> anyhow::Result<Plan> {
        let seconds = |value: f64, flag: &str| {
            if (0.0..=86_400.0).contains(&value) {
                Ok(Duration::from_secs_f64(value))
            } else {
                bail!("--{flag} must be between 0 and 86400 seconds, not {value}")
            }
        };
        let (duration, warmup, cold_runs, chain_duration, runs, growth_records) = if self.quick {
            (1.5, 0.5, 5, 1.0, 2, QUICK_GROWTH_RECORDS)
        } else {
            (5.0, 1.0, 15, 3.0, goals::REQUIRED_RUNS, GROWTH_RECORDS)
        };
        let duration = seconds(self.duration.unwrap_or(duration), "duration")?;
        if duration.is_zero() {
            bail!("--duration must be more than 0 seconds");
        }
        let chain_duration = seconds(
            self.chain_duration.unwrap_or(chain_duration),
            "chain-duration",
        )?;
        if chain_duration.is_zero() {
            bail!("--chain-duration must be more than 0 seconds");
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            bail!("--concurrency must be between 1 and 4096");
        }
        let cold_runs = self.cold_runs.unwrap_or(cold_runs);
        if cold_runs == 0 {
            bail!("--cold-runs must be at least 1");
        }
        if self.density == 0 || self.density > 100_000 {
            bail!("--density must be between 1 and 100000");
        }
        let runs = self.runs.unwrap_or(runs);
        if runs == 0 || runs > 100 {
            bail!("--runs must be between 1 and 100");
        }
        let growth_records = self.growth_records.unwrap_or(growth_records);
        if growth_records == 0 || growth_records > 100_000_000 {
            bail!("--growth-records must be between 1 and 100000000");
        }
        let mut clients = vec![1];
        if self.concurrency > 1 {
            clients.push(self.concurrency);
        }
        Ok(Plan {
            clients,
            warmup: seconds(self.warmup.unwrap_or(warmup), "warmup")?,
            duration,
            cold_runs,
            chain_duration,
            density_instances: self.density,
            runs,
            growth_records,
            handshakes: if self.quick {
                QUICK_HANDSHAKES
            } else {
                HANDSHAKES
            },
        })
    }

    /// The scenarios to run, in the suite's order.
    fn scenarios(&self) -> Vec<Scenario> {
        if self.only.is_empty() {
            return Scenario::ALL.to_vec();
        }
        let mut chosen = self.only.clone();
        chosen.sort();
        chosen.dedup();
        chosen
    }

    /// The peer: `--peer`, or else the one `scripts/bench.sh` installs
    /// when it is there (with its component).
    fn peer(&self) -> Option<PeerSpec> {
        self.peer_in(Path::new("."))
    }

    /// [`peer`](Self::peer), with the default paths under `root`.
    fn peer_in(&self, root: &Path) -> Option<PeerSpec> {
        let component = self
            .peer_component
            .clone()
            .unwrap_or_else(|| root.join(DEFAULT_PEER_COMPONENT));
        if let Some(wasmtime) = self.peer.clone() {
            return Some(PeerSpec {
                wasmtime,
                component,
            });
        }
        let wasmtime = root.join(DEFAULT_PEER);
        (wasmtime.is_file() && component.is_file()).then_some(PeerSpec {
            wasmtime,
            component,
        })
    }

    /// Where the plot goes, if anywhere.
    fn plot_path(&self) -> Option<PathBuf> {
        self.plot
            .clone()
            .or_else(|| (self.out.is_some() || self.publish).then(|| PathBuf::from(DEFAULT_PLOT)))
    }
}

/// A temporary data directory for a node of its own (removed on drop).
fn temporary_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("clemmys-bench-")
        .tempdir()
        .context("creating a temporary data directory")
}

/// The node's data directory: a temporary one (removed on drop) or the
/// user's.
#[derive(Debug)]
enum DataDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn prepare(given: Option<PathBuf>) -> anyhow::Result<Self> {
        let Some(dir) = given else {
            let dir = temporary_dir()?;
            return Ok(Self::Temporary(dir));
        };
        match std::fs::read_dir(&dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    bail!(
                        "--data-dir {} is not empty: the benchmark needs a fresh node",
                        dir.display()
                    );
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", dir.display()));
            }
        }
        Ok(Self::Given(dir))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Temporary(dir) => dir.path(),
            Self::Given(dir) => dir,
        }
    }
}

/// The load generator's runtime: its threads are named
/// [`cpu::CLIENT_THREAD`], so that their CPU can be told from the nodes'.
fn main() -> ExitCode {
    let args = BenchArgs::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(cpu::CLIENT_THREAD)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("clemmys-bench: building the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json {
                let message = serde_json::json!({ "error": format!("{error:#}") });
                println!("{message}");
            } else {
                eprintln!("clemmys-bench: error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Warnings of the nodes on stderr (`RUST_LOG` says otherwise).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the benchmark and prints its report (JSON with `--json`).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let json_output = args.json;
    let plan = args.plan()?;
    let scenarios = args.scenarios();
    let debug_build = cfg!(debug_assertions);
    if debug_build {
        eprintln!(
            "bench: WARNING: this is a DEBUG build (debug assertions on); its figures are NOT \
             representative. Build with `cargo build --release -p clemmys-bench`."
        );
    }
    let modules = Modules::load(&args.actions_dir).with_context(|| {
        format!(
            "no example actions in {} (set --actions-dir or CLEMMYS_EXAMPLES_DIR)",
            args.actions_dir.display()
        )
    })?;
    let data_dir = DataDir::prepare(args.data_dir.clone())?;
    let progress = Progress::new();
    progress.note(&format!(
        "starting a node on {} ({} s per measurement, N = {}; {})",
        data_dir.path().display(),
        plan.duration.as_secs_f64(),
        args.concurrency,
        scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let node = Node::start(data_dir.path(), largest).await?;
    let machine = machine_facts(node.data_dir(), debug_build);
    let tee = node.tee();
    let mut found = Findings::default();
    let measured = measure_on_main_node(
        &node,
        &plan,
        &modules,
        &scenarios,
        args.peer().as_ref(),
        &mut found,
        &progress,
    )
    .await;
    node.shutdown().await;
    drop(data_dir);
    measured?;
    measure_on_own_nodes(
        &plan,
        &modules,
        &scenarios,
        &args.js_engine,
        &mut found,
        &progress,
    )
    .await?;

    let mut notes = notes(&found, &scenarios);
    let ratios = model::ratios(&found.warm);
    let chain_summary = chains::ChainSummary::of(&found.chains);
    found.peer.ratios = model::peer_ratios(&found.warm, &found.peer.rows);
    if let Some(version) = &found.peer.version
        && !peer::version_number(version).is_some_and(|n| n.starts_with(OUR_WASMTIME_LINE))
    {
        notes.push(format!(
            "the peer is {version}, Clemmys runs on the wasmtime {OUR_WASMTIME_LINE}x line"
        ));
    }
    let plot_path = args.plot_path();
    let mut report = Report {
        title: model::title(debug_build),
        machine,
        other_load: found.others,
        tee,
        settings: Settings {
            duration_s: plan.duration.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            concurrency: args.concurrency,
            cold_runs: plan.cold_runs,
            actions_dir: args.actions_dir.display().to_string(),
            chain_duration_s: plan.chain_duration.as_secs_f64(),
            density_instances: plan.density_instances,
            scenarios: scenarios.iter().map(|s| s.name().to_owned()).collect(),
            quick: args.quick,
            runs: plan.runs,
            growth_records: plan.growth_records,
        },
        floors: found.floors,
        warm: found.warm,
        ratios,
        cold: found.cold,
        chains: found.chains,
        chain_summary,
        pool: found.pool,
        cache: found.cache,
        knobs: found.knobs,
        peer: found.peer,
        density: found.density,
        js_density: found.js_density,
        growth: found.growth,
        js: found.js,
        gateway: found.gateway,
        cluster: found.cluster,
        goals: Vec::new(),
        notes,
        plot: plot_path.as_ref().map(|path| path.display().to_string()),
    };
    report.goals = goals::evaluate_goals(&report);
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    if let Some(path) = &args.out {
        write_file(path, &format!("{json}\n"))?;
        progress.note(&format!("wrote {}", path.display()));
    }
    if let Some(path) = &plot_path {
        let svg = plot::render_svg(&plot::PlotData::from_report(&report))?;
        write_file(path, &svg)?;
        progress.note(&format!("wrote {}", path.display()));
        if args.publish {
            write_file(Path::new(PUBLISHED_PLOT), &svg)?;
            write_file(Path::new(PUBLISHED_JSON), &format!("{json}\n"))?;
            publish_readme(Path::new(PUBLISHED_README), &report)?;
            progress.note(&format!(
                "published {PUBLISHED_PLOT}, {PUBLISHED_JSON} and the results block of \
                 {PUBLISHED_README}"
            ));
        }
    }
    let mut stdout = std::io::stdout().lock();
    let printed = if json_output {
        writeln!(stdout, "{json}")
    } else {
        write!(stdout, "{}", report.render_table())
    };
    printed.context("writing the report to stdout")?;
    Ok(())
}

/// Rewrites the results block of the README at `path` with `report`'s.
fn publish_readme(path: &Path, report: &Report) -> anyhow::Result<()> {
    let readme =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let block = report.render_markdown(&render::markdown::utc_date(seconds));
    let updated = render::markdown::replace_block(&readme, &block)
        .with_context(|| format!("updating {}", path.display()))?;
    write_file(path, &updated)
}

/// Writes `text` to `path`, creating its directory.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Everything measured so far.
#[derive(Default)]
struct Findings {
    others: Vec<cpu::OtherLoad>,
    floors: Option<floors::Floors>,
    warm: Vec<model::WarmRow>,
    cold: Vec<model::ColdRow>,
    chains: Vec<chains::ChainRow>,
    pool: Vec<coldstart::ColdVariant>,
    cache: Vec<coldstart::ColdVariant>,
    knobs: Vec<knobs::KnobRow>,
    peer: PeerSection,
    density: Option<density::DensityReport>,
    js_density: Option<density::DensityReport>,
    /// Why the density scenario measured no JavaScript instances.
    js_density_missing: Option<String>,
    growth: Option<growth::GrowthReport>,
    js: javascript::JsReport,
    gateway: gateway::GatewayReport,
    cluster: cluster::ClusterReport,
}

/// The scenarios that run on the main node, in an order that keeps each
/// compared pair adjacent in time (the store grows as it runs).
async fn measure_on_main_node(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    scenarios: &[Scenario],
    peer: Option<&PeerSpec>,
    found: &mut Findings,
    progress: &Progress,
) -> anyhow::Result<()> {
    if scenarios.contains(&Scenario::Warm) {
        let watch = cpu::CpuWatch::start();
        found.floors = Some(floors::measure(node, plan, progress).await?);
        node.put_plain(PLAIN_NOOP, &modules.noop, true).await?;
        node.put_confidential(CONFIDENTIAL_NOOP, &modules.noop, true)
            .await?;
        // Separate runs, each a side-by-side window per client count: the
        // confidential/plain goals must hold in every one.
        for run in 1..=plan.runs {
            for &clients in &plan.clients {
                let pair = [
                    (Mode::Plain, PLAIN_NOOP),
                    (Mode::Confidential, CONFIDENTIAL_NOOP),
                ];
                found.warm.extend(
                    scenarios::warm(node, plan, (clients, run), "noop", &pair, progress).await?,
                );
            }
        }
        found.watched(watch, Scenario::Warm);
    }
    if scenarios.contains(&Scenario::Peer) {
        match peer {
            None => {
                progress.note(
                    "peer: wasmtime serve not measured in this run (not installed: run \
                     scripts/bench.sh, or give --peer)",
                );
                found.peer.note =
                    Some("not installed: run scripts/bench.sh, or give --peer".into());
            }
            Some(spec) => {
                let watch = cpu::CpuWatch::start();
                measure_peer(node, plan, modules, spec, found, progress).await?;
                found.watched(watch, Scenario::Peer);
            }
        }
    }
    if scenarios.contains(&Scenario::Cold) {
        let watch = cpu::CpuWatch::start();
        for (action, mode) in [
            ("noop", Mode::Plain),
            ("hello", Mode::Plain),
            ("noop", Mode::Confidential),
        ] {
            found
                .cold
                .push(scenarios::cold(node, plan, modules, action, mode, progress).await?);
        }
        found.watched(watch, Scenario::Cold);
    }
    if scenarios.contains(&Scenario::Chains) {
        let watch = cpu::CpuWatch::start();
        found.chains = chains::measure(node, plan, modules, progress).await?;
        found.watched(watch, Scenario::Chains);
    }
    Ok(())
}

impl Findings {
    /// Records what other processes used since `watch` started.
    fn watched(&mut self, watch: Option<cpu::CpuWatch>, scenario: Scenario) {
        if let Some(load) = watch.and_then(|watch| watch.stop(scenario.name())) {
            self.others.push(load);
        }
    }
}

/// Our warm hello, plain and confidential, and `wasmtime serve` at each
/// client count, the three side by side (see [`alternate`]): the peer runs
/// on the same stretch of the machine's drift as ours, so the ratios
/// compare like with like.
async fn measure_peer(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    spec: &PeerSpec,
    found: &mut Findings,
    progress: &Progress,
) -> anyhow::Result<()> {
    node.put_plain(PLAIN_HELLO, &modules.hello, true).await?;
    node.put_confidential(CONFIDENTIAL_HELLO, &modules.hello, true)
        .await?;
    progress.note(&format!(
        "starting {} serve {}",
        spec.wasmtime.display(),
        spec.component.display()
    ));
    let server = PeerServer::start(spec).await?;
    found.peer.measured = true;
    found.peer.version = Some(server.version.clone());
    found.peer.component = Some(spec.component.display().to_string());
    let probe = load::RawGet::new(&server.url(), peer::PEER_BODY)?;
    // Untimed, as our invokes' first one is: a failure here is a setup
    // error, not a window full of errors.
    probe.get().await?;
    let ours = [
        (Mode::Plain, PLAIN_HELLO),
        (Mode::Confidential, CONFIDENTIAL_HELLO),
    ];
    for &clients in &plan.clients {
        let mut operations = Vec::with_capacity(ours.len() + 1);
        for (mode, name) in ours {
            operations.push(scenarios::invoke_operation(node, name, mode).await?);
        }
        let probe = probe.clone();
        operations.push(alternate::operation(move || {
            let probe = probe.clone();
            async move { probe.get().await }
        }));
        let label = format!("hello plain vs confidential vs wasmtime serve, {clients} client(s)");
        let mut measured =
            alternate::side_by_side(&label, plan.spec(clients), &operations, progress)
                .await?
                .into_iter();
        for (mode, _) in ours {
            let mine = measured
                .next()
                .context("side_by_side measures every operation")?;
            found.warm.push(WarmRow {
                action: model::PEER_ACTION.into(),
                mode,
                clients,
                run: 1,
                summary: mine.summary,
                slice_requests: mine.slice_requests,
            });
        }
        let theirs = measured
            .next()
            .context("side_by_side measures every operation")?;
        found.peer.rows.push(PeerRow {
            clients,
            summary: theirs.summary,
        });
    }
    drop(server);
    Ok(())
}

/// The scenarios that need nodes (or a sandbox) of their own.
async fn measure_on_own_nodes(
    plan: &Plan,
    modules: &Modules,
    scenarios: &[Scenario],
    js_engine: &Path,
    found: &mut Findings,
    progress: &Progress,
) -> anyhow::Result<()> {
    if scenarios.contains(&Scenario::Pool) {
        let watch = cpu::CpuWatch::start();
        found.pool = coldstart::pool(plan, modules, progress).await?;
        found.watched(watch, Scenario::Pool);
    }
    if scenarios.contains(&Scenario::Cache) {
        let watch = cpu::CpuWatch::start();
        found.cache = coldstart::cache(plan, modules, progress).await?;
        found.watched(watch, Scenario::Cache);
    }
    if scenarios.contains(&Scenario::Knobs) {
        let watch = cpu::CpuWatch::start();
        found.knobs = knobs::measure(plan, modules, progress).await?;
        found.watched(watch, Scenario::Knobs);
    }
    if scenarios.contains(&Scenario::Density) {
        let watch = cpu::CpuWatch::start();
        let noop = modules.noop.clone();
        let count = plan.density_instances;
        let engine = read_js_engine(js_engine);
        found.js_density_missing = engine.as_ref().err().cloned();
        let progress = progress.clone();
        let (wasm, javascript) = tokio::task::spawn_blocking(move || {
            let wasm = density::measure(density::Subject::noop(&noop), count, &progress)?;
            // After the wasm instances are gone, in the same sandbox setup.
            let javascript = match &engine {
                Ok(engine) => Some(density::measure(
                    density::Subject::javascript(engine),
                    count,
                    &progress,
                )?),
                Err(why) => {
                    progress.note(&format!("density: JavaScript not measured: {why}"));
                    None
                }
            };
            anyhow::Ok((wasm, javascript))
        })
        .await
        .context("the density measurement panicked")??;
        found.density = Some(wasm);
        found.js_density = javascript;
        found.watched(watch, Scenario::Density);
    }
    if scenarios.contains(&Scenario::Growth) {
        let watch = cpu::CpuWatch::start();
        found.growth = Some(growth::measure(plan, modules, plan.growth_records, progress).await?);
        found.watched(watch, Scenario::Growth);
    }
    if scenarios.contains(&Scenario::Js) {
        let watch = cpu::CpuWatch::start();
        found.js = javascript::measure(plan, modules, js_engine, progress).await?;
        found.watched(watch, Scenario::Js);
    }
    if scenarios.contains(&Scenario::Gateway) {
        let watch = cpu::CpuWatch::start();
        found.gateway = gateway::measure(plan, modules, progress).await?;
        found.watched(watch, Scenario::Gateway);
    }
    // Not watched: nats-server, PostgreSQL and the invokers are its own
    // processes; its rows count the whole machine's CPU instead.
    if scenarios.contains(&Scenario::Cluster) {
        found.cluster = cluster::measure(plan, modules, progress).await?;
    }
    Ok(())
}

/// The JavaScript engine's module, or why there is none to measure.
fn read_js_engine(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| {
        format!(
            "no JavaScript engine at {} ({error}; run scripts/build-runtimes.sh, or give \
             --js-engine)",
            path.display()
        )
    })
}

/// What a reader should know about the figures.
fn notes(found: &Findings, scenarios: &[Scenario]) -> Vec<String> {
    let mut notes = Vec::new();
    for load in found
        .others
        .iter()
        .filter(|load| load.others_pct > DISTURBED_PCT)
    {
        notes.push(format!(
            "WARNING: other processes used {:.0}% of a core while {} ran: its figures are \
             disturbed; run again on an idle machine",
            load.others_pct, load.scenario
        ));
    }
    notes.extend([
        "warm: each client loops blocking invokes (?blocking=true) of one action; a request \
         counts if it starts and ends inside the window; the confidential client seals params \
         (HPKE, then a symmetric session), opens the answer and verifies the receipt on the same \
         cores as the node"
            .to_owned(),
        "side by side: the plain and confidential warm rows of a client count (and the three \
         chain rows of a length) share one window, cut into slices of about a second (5 to 60) run \
         in ABBA order, so the node's drift during a run (its store grows, the disk's flush time \
         wanders) falls on each alike; 'slices' is the range of the throughput ratio over one \
         round's two neighbouring slices"
            .to_owned(),
        "cold: each run creates a fresh action (unique name, and a unique custom section so no \
         compiled module is reused); confidential create includes the broker round trips and \
         sealing; each run starts once the last one's background work is done (the optimising \
         recompile of a tiered sandbox, and on a node with a pool, the refill of its idle \
         enclaves); initTime is the compile until the module can run (Winch, when tiered)"
            .to_owned(),
        "initTime: plain actions are compiled in the background right after create \
         (prewarm), so a first activation that finds that compile running waits for it and \
         carries no initTime; its latency still includes the wait"
            .to_owned(),
    ]);
    if scenarios.contains(&Scenario::Chains) {
        notes.push(
            "chains: 'confidential, session' runs in the chain session its untimed first invoke \
             opened (symmetric hops, MAC receipts, each verified); 'confidential, first runs' is a \
             client without sessions: a signed ticket, HPKE into the first step and signed \
             receipts with evidence on every invoke, the later hops over the links the steps' \
             enclaves keep for 60 s (warm here: every run goes through the same enclaves; on a \
             node idle for longer each hop sets up a link, as every hop did before links); each \
             step's record is stored in every mode"
                .into(),
        );
    }
    if scenarios.contains(&Scenario::Cache) {
        notes.push(
            "module cache: the cache keeps at least one module, so the node without it has \
             capacity 0 (kept as 1) and invokes another action before each timed invoke to evict \
             the new one's module; initTime shows the compile"
                .into(),
        );
    }
    if found.peer.measured {
        notes.push(
            "peer: wasmtime serve instantiates its component for every request; our hello \
             also logs one line, which is captured and stored with the activation record"
                .into(),
        );
    }
    if let Some(g) = &found.growth {
        notes.push(format!(
            "growth: {} copies of a real record of the measured action (own ids, start times \
             spread over {} days) were stored through EntityStore::put_activation before the \
             second node started; both nodes ran side by side in alternating slices",
            g.records,
            growth::SPREAD_DAYS
        ));
    }
    if !found.gateway.rows.is_empty() {
        notes.push(
            "gateway: plain noop on a node serving TLS against confidential noop through two \
             owner's attested gateways in front of it (in this process, on the node's runtime; a \
             credential each issued, its RA-TLS certificate pinned), all as an OpenWhisk client \
             invokes (?blocking=true&result=true, keep-alive TLS), side by side; link in-process: \
             the gateway calls the node's API in the process (serve --gateway), link https: over \
             keep-alive HTTPS (gateway serve --apihost); each gateway seals the parameters, opens \
             the answer and verifies its receipt on the same cores; handshakes: connect + \
             handshake + 1-byte echo on each listener's TLS configuration, one connection at a \
             time"
                .into(),
        );
    }
    if scenarios.contains(&Scenario::Cluster) && found.cluster.not_measured.is_none() {
        notes.push(format!(
            "cluster: a controller in this process and `clemmys serve --role invoker` processes \
             over NATS JetStream and PostgreSQL (both from scripts/, on this machine), every \
             client invoking {} copies of noop in turn (an action runs on its home invoker); \
             invokers store each record durably before acknowledging it; machine CPU counts \
             every process, so on a machine with few cores more invokers only share them",
            cluster::ACTIONS
        ));
    }
    if let Some(d) = &found.density {
        notes.push(format!(
            "density: a warm instance is a store + instance of noop with its WASI context and \
             linear memory initialised ({} allocator, copy-on-write images), kept alive; RSS counts \
             shared image pages once per instance, PSS shares them out",
            d.allocator
        ));
    }
    if let Some(d) = &found.js_density {
        notes.push(format!(
            "density of JavaScript: a JavaScript action runs as the node's engine \
             (clemmys-js.wasm, its QuickJS heap pre-initialized in the module's image) with its \
             source as data, so a warm instance of one JS action is an instance of the engine, \
             kept alive as noop's are ({} allocator); {}",
            d.allocator,
            d.start_note.as_deref().unwrap_or("_start runs the action")
        ));
    }
    if let Some(why) = &found.js_density_missing {
        notes.push(format!("density: JavaScript instances not measured: {why}"));
    }
    for row in &found.warm {
        if row.summary.errors > 0 {
            notes.push(format!(
                "warm {} {} with {} clients had {} failed requests (not in the latencies)",
                row.mode.name(),
                row.action,
                row.clients,
                row.summary.errors
            ));
        }
    }
    for row in &found.peer.rows {
        if row.summary.errors > 0 {
            notes.push(format!(
                "wasmtime serve with {} clients had {} failed requests (not in the latencies)",
                row.clients, row.summary.errors
            ));
        }
    }
    let cold_rows = found
        .cold
        .iter()
        .chain(found.pool.iter().chain(&found.cache).map(|v| &v.row))
        .chain(found.knobs.iter().filter_map(|k| k.cold_hello.as_ref()));
    for row in cold_rows {
        if row.errors > 0 {
            notes.push(format!(
                "cold {} {} had {} failed runs (not in the figures)",
                row.mode.name(),
                row.action,
                row.errors
            ));
        }
    }
    notes
}

/// Facts about this machine and build.
fn machine_facts(data_dir: &Path, debug_assertions: bool) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu: cpu_model(&cpuinfo),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        build_profile: if debug_assertions { "debug" } else { "release" },
        debug_assertions,
        data_dir_fs: fs_type_of(&mounts, &data_dir),
    }
}

/// The file system holding `path`, from `/proc/mounts`.
pub fn fs_type_of_path(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    fs_type_of(&mounts, &path)
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The type of the file system holding `path`, from `/proc/mounts` text:
/// the mount with the longest mount point that contains `path`.
fn fs_type_of(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = fields.next()?.replace("\\040", " ");
            let kind = fields.next()?;
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BenchArgs {
        BenchArgs::try_parse_from(std::iter::once("clemmys-bench").chain(args.iter().copied()))
            .expect("parse")
    }

    #[test]
    fn defaults_plan_one_and_eight_clients() {
        let args = parse(&[]);
        let plan = args.plan().expect("plan");
        assert_eq!(plan.clients, vec![1, 8]);
        assert_eq!(plan.duration, Duration::from_secs(5));
        assert_eq!(plan.warmup, Duration::from_secs(1));
        assert_eq!(plan.cold_runs, 15);
        assert_eq!(plan.chain_duration, Duration::from_secs(3));
        assert_eq!(plan.density_instances, 6_000);
        assert_eq!(plan.runs, 5, "the goals' five runs");
        assert_eq!(plan.growth_records, 1_000_000);
        assert!(args.data_dir.is_none() && args.out.is_none() && !args.json);
        assert_eq!(args.scenarios(), Scenario::ALL.to_vec(), "everything");
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(args.peer_in(empty.path()).is_none(), "no peer installed");
        assert_eq!(args.plot_path(), None, "no files unless asked");
    }

    #[test]
    fn quick_shortens_the_run_and_flags_still_win() {
        let plan = parse(&["--quick"]).plan().expect("plan");
        assert_eq!(plan.duration, Duration::from_millis(1500));
        assert_eq!(plan.cold_runs, 5);
        assert_eq!(plan.chain_duration, Duration::from_secs(1));
        assert_eq!(plan.runs, 2);
        assert_eq!(plan.growth_records, QUICK_GROWTH_RECORDS);
        let plan = parse(&[
            "--quick",
            "--cold-runs",
            "9",
            "--duration",
            "2",
            "--runs",
            "5",
            "--growth-records",
            "300",
        ])
        .plan()
        .expect("plan");
        assert_eq!(plan.cold_runs, 9);
        assert_eq!(plan.duration, Duration::from_secs(2));
        assert_eq!((plan.runs, plan.growth_records), (5, 300));
    }

    #[test]
    fn only_picks_scenarios_in_the_suite_order() {
        let args = parse(&["--only", "density,chains,chains,warm"]);
        assert_eq!(
            args.scenarios(),
            vec![Scenario::Warm, Scenario::Chains, Scenario::Density]
        );
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        for name in names {
            let args = parse(&["--only", name]);
            assert_eq!(args.scenarios().len(), 1, "{name}");
        }
        assert!(
            BenchArgs::try_parse_from(["clemmys-bench", "--only", "everything"]).is_err(),
            "unknown scenario"
        );
    }

    #[test]
    fn the_peer_and_the_plot_go_where_they_are_told() {
        let args = parse(&["--peer", "/x/wasmtime", "--peer-component", "/x/h.wasm"]);
        let peer = args.peer().expect("peer");
        assert_eq!(peer.wasmtime, PathBuf::from("/x/wasmtime"));
        assert_eq!(peer.component, PathBuf::from("/x/h.wasm"));
        let args = parse(&["--peer", "/x/wasmtime"]);
        assert!(
            args.peer()
                .expect("peer")
                .component
                .ends_with("hello_http.wasm")
        );
        assert!(
            BenchArgs::try_parse_from(["clemmys-bench", "--peer-component", "/x/h.wasm"]).is_err(),
            "a component needs a peer"
        );
        let args = parse(&["--out", "r.json"]);
        assert_eq!(args.plot_path(), Some(PathBuf::from(DEFAULT_PLOT)));
        let args = parse(&["--out", "r.json", "--plot", "p.svg"]);
        assert_eq!(args.plot_path(), Some(PathBuf::from("p.svg")));
        assert_eq!(
            parse(&["--publish"]).plot_path(),
            Some(PathBuf::from(DEFAULT_PLOT))
        );
    }

    #[test]
    fn an_installed_peer_is_measured_without_being_asked() {
        let root = tempfile::tempdir().expect("tempdir");
        let args = parse(&[]);
        for file in [DEFAULT_PEER, DEFAULT_PEER_COMPONENT] {
            assert!(args.peer_in(root.path()).is_none(), "not yet: {file}");
            let path = root.path().join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"x").expect("write");
        }
        let peer = args.peer_in(root.path()).expect("installed");
        assert_eq!(peer.wasmtime, root.path().join(DEFAULT_PEER));
        assert_eq!(peer.component, root.path().join(DEFAULT_PEER_COMPONENT));
    }

    #[test]
    fn flags_shape_the_plan() {
        let plan = parse(&["--duration", "0.5", "--concurrency", "1", "--warmup", "0"])
            .plan()
            .expect("plan");
        assert_eq!(plan.clients, vec![1], "1 client is measured once");
        assert_eq!(plan.duration, Duration::from_millis(500));
        assert!(plan.warmup.is_zero());
        for bad in [
            &["--duration", "0"][..],
            &["--duration=-1"],
            &["--concurrency", "0"],
            &["--cold-runs", "0"],
            &["--warmup", "NaN"],
            &["--chain-duration", "0"],
            &["--density", "0"],
            &["--runs", "0"],
            &["--growth-records", "0"],
        ] {
            assert!(parse(bad).plan().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_given_data_dir_must_be_fresh() {
        let parent = tempfile::tempdir().expect("tempdir");
        let absent = parent.path().join("absent");
        assert!(DataDir::prepare(Some(absent.clone())).is_ok());
        std::fs::create_dir(&absent).expect("mkdir");
        assert!(
            DataDir::prepare(Some(absent.clone())).is_ok(),
            "empty is fine"
        );
        std::fs::write(absent.join("store.redb"), b"x").expect("write");
        let error = DataDir::prepare(Some(absent)).expect_err("not empty");
        assert!(error.to_string().contains("not empty"), "{error}");
    }

    #[test]
    fn missing_examples_say_how_to_build_them() {
        let empty = tempfile::tempdir().expect("tempdir");
        let error = Modules::load(empty.path()).expect_err("missing");
        assert!(
            format!("{error:#}").contains("run scripts/build-examples.sh first"),
            "{error:#}"
        );
    }

    #[test]
    fn reads_cpu_model_and_file_system() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nflags\t: x\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Test CPU @ 2GHz"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /data\\040dir xfs rw 0 0\n";
        assert_eq!(
            fs_type_of(mounts, Path::new("/tmp/x")).as_deref(),
            Some("tmpfs")
        );
        assert_eq!(
            fs_type_of(mounts, Path::new("/tmpx")).as_deref(),
            Some("ext4")
        );
        assert_eq!(
            fs_type_of(mounts, Path::new("/data dir/a")).as_deref(),
            Some("xfs")
        );
        assert_eq!(fs_type_of("", Path::new("/x")), None);
    }
}
