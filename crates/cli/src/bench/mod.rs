//! `clemmys bench`: starts one node in this process and measures it over
//! loopback HTTP the way users reach it, then prints a table (or JSON).
//!
//! * [`load`]: the closed-loop load generator and latency summaries.
//! * [`scenarios`]: the node under test and what is measured on it.
//! * [`report`]: the figures, the goals, the table and the JSON.
//! * [`progress`]: progress on stderr.
//!
//! Every figure printed is measured in the run that prints it; goals are
//! evaluated on those figures only. The node's TEE is whatever it attests
//! with: on a machine without SGX that is `sim`, which protects nothing, and
//! the report says so.

mod load;
mod progress;
mod report;
mod scenarios;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

use self::progress::Progress;
use self::report::{Machine, Mode, Report, Settings};
use self::scenarios::{Modules, Node, Plan};
use crate::output::outln;

/// Where `scripts/build-examples.sh` puts the example modules, relative to
/// the repository root.
const DEFAULT_ACTIONS_DIR: &str = "target/examples/wasm32-wasip1/release";
/// The warm actions' names.
const PLAIN_NOOP: &str = "bench-noop";
const CONFIDENTIAL_NOOP: &str = "bench-confidential-noop";

/// Arguments of `clemmys bench`. With the global `--json`, the report is
/// printed as JSON instead of a table.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds of each warm measurement (after its warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unrecorded warm-up before each warm measurement.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub warmup: f64,
    /// The "N concurrent clients" of the warm measurements (1 is always
    /// measured too).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Cold starts per action (each creates a fresh action).
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub cold_runs: usize,
    /// Directory of the example modules (noop.wasm, hello.wasm).
    #[arg(
        long,
        value_name = "DIR",
        env = "CLEMMYS_EXAMPLES_DIR",
        default_value = DEFAULT_ACTIONS_DIR
    )]
    pub actions_dir: PathBuf,
    /// The node's data directory: absent or empty (default: a fresh
    /// temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
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
        let duration = seconds(self.duration, "duration")?;
        if duration.is_zero() {
            bail!("--duration must be more than 0 seconds");
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            bail!("--concurrency must be between 1 and 4096");
        }
        if self.cold_runs == 0 {
            bail!("--cold-runs must be at least 1");
        }
        let mut clients = vec![1];
        if self.concurrency > 1 {
            clients.push(self.concurrency);
        }
        Ok(Plan {
            clients,
            warmup: seconds(self.warmup, "warmup")?,
            duration,
            cold_runs: self.cold_runs,
        })
    }
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
            let dir = tempfile::Builder::new()
                .prefix("clemmys-bench-")
                .tempdir()
                .context("creating a temporary data directory")?;
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

/// Runs the benchmark and prints its report (JSON when `json_output`).
pub async fn run(args: BenchArgs, json_output: bool) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let debug_build = cfg!(debug_assertions);
    if debug_build {
        eprintln!(
            "bench: WARNING: this is a DEBUG build (debug assertions on); its figures are NOT \
             representative. Build with `cargo build --release -p clemmys`."
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
        "starting a node on {} ({} s per measurement, N = {})",
        data_dir.path().display(),
        plan.duration.as_secs_f64(),
        args.concurrency
    ));
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let node = Node::start(data_dir.path(), largest).await?;
    let machine = machine_facts(node.data_dir(), debug_build);
    let tee = node.tee();
    let measured = measure(&node, &plan, &modules, &progress).await;
    node.shutdown().await;
    drop(data_dir);
    let (warm, cold) = measured?;

    let ratios = report::ratios(&warm);
    let goals = report::evaluate_goals(&warm, &ratios, &cold, args.concurrency);
    let mut notes = vec![
        "warm: each client loops blocking invokes (?blocking=true) of one action; a request \
         counts if it starts and ends inside the window; the confidential client seals params \
         (HPKE), opens the answer and verifies the receipt on the same cores as the node"
            .to_owned(),
        "cold: each run creates a fresh action (unique name, and a unique custom section so no \
         compiled module is reused); confidential create includes the broker round trips and \
         sealing, its first invoke the key grant and the in-enclave decrypt and compile"
            .to_owned(),
        "initTime: plain actions are compiled in the background right after create \
         (prewarm), so a first activation that finds that compile running waits for it and \
         carries no initTime; its latency still includes the wait"
            .to_owned(),
    ];
    for row in &warm {
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
    for row in &cold {
        if row.errors > 0 {
            notes.push(format!(
                "cold {} {} had {} failed runs (not in the figures)",
                row.mode.name(),
                row.action,
                row.errors
            ));
        }
    }
    let report = Report {
        title: report::title(debug_build),
        machine,
        tee,
        settings: Settings {
            duration_s: plan.duration.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            concurrency: args.concurrency,
            cold_runs: plan.cold_runs,
            actions_dir: args.actions_dir.display().to_string(),
        },
        warm,
        ratios,
        cold,
        goals,
        notes,
    };
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    if let Some(path) = &args.out {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        progress.note(&format!("wrote {}", path.display()));
    }
    if json_output {
        outln!("{json}");
    } else {
        crate::output::out!("{}", report.render_table());
    }
    Ok(())
}

/// Creates the warm actions, then measures, in an order that keeps each
/// plain/confidential pair adjacent in time (the store grows as it runs).
async fn measure(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<(Vec<report::WarmRow>, Vec<report::ColdRow>)> {
    node.put_plain(PLAIN_NOOP, &modules.noop, true).await?;
    node.put_confidential(CONFIDENTIAL_NOOP, &modules.noop, true)
        .await?;
    let mut warm = Vec::new();
    for &clients in &plan.clients {
        for (mode, name) in [
            (Mode::Plain, PLAIN_NOOP),
            (Mode::Confidential, CONFIDENTIAL_NOOP),
        ] {
            warm.push(scenarios::warm(node, plan, clients, "noop", name, mode, progress).await?);
        }
    }
    let mut cold = Vec::new();
    for (action, mode) in [
        ("noop", Mode::Plain),
        ("hello", Mode::Plain),
        ("noop", Mode::Confidential),
    ] {
        cold.push(scenarios::cold(node, plan, modules, action, mode, progress).await?);
    }
    Ok((warm, cold))
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
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .expect("parse")
            .bench
    }

    #[test]
    fn defaults_plan_one_and_eight_clients() {
        let args = parse(&[]);
        let plan = args.plan().expect("plan");
        assert_eq!(plan.clients, vec![1, 8]);
        assert_eq!(plan.duration, Duration::from_secs(10));
        assert_eq!(plan.warmup, Duration::from_secs(2));
        assert_eq!(plan.cold_runs, 15);
        assert!(args.data_dir.is_none() && args.out.is_none());
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
