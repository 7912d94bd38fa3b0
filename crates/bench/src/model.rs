//! What a benchmark run found, and how it is shown: a [`Report`] holds every
//! figure measured in the run; [`Report::render_table`] prints it for
//! people and `serde` gives the same figures as JSON.
//!
//! Nothing here measures: ratios and goal verdicts are derived from the
//! measured rows only, so a figure that was not measured shows as `-`
//! (`null` in JSON) and its goal as `n/a`, never as a made-up number.

use std::fmt::Write as _;

use serde::Serialize;

use super::chains::{ChainRow, ChainSummary};
use super::coldstart::{self, ColdVariant};
use super::cpu::OtherLoad;
use super::density::DensityReport;
use super::floors::Floors;
use super::knobs::KnobRow;
use super::load::LatencySummary;

/// Whether an action runs in the clear or sealed in an enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A plain action.
    Plain,
    /// A confidential action (sealed code, params and results).
    Confidential,
}

impl Mode {
    /// The word shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Confidential => "confidential",
        }
    }
}

/// The machine and build the figures come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// The CPU model, when the OS says.
    pub cpu: Option<String>,
    /// `linux`, `macos`, …
    pub os: &'static str,
    /// `x86_64`, `aarch64`, …
    pub arch: &'static str,
    /// `release` or `debug`.
    pub build_profile: &'static str,
    /// Whether debug assertions are compiled in (then figures mean little).
    pub debug_assertions: bool,
    /// The file system type of the data directory (fsync cost depends on it).
    pub data_dir_fs: Option<String>,
}

/// The TEE the node's broker attests with.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeeFacts {
    /// `sim`, `sgx-dcap`, …
    pub kind: String,
    /// Whether it gives hardware protection.
    pub hardware: bool,
    /// The node's statement of what it does not protect.
    pub warning: Option<String>,
}

/// How the run was configured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The measurement window of each warm measurement, seconds.
    pub duration_s: f64,
    /// The unrecorded warm-up before each window, seconds.
    pub warmup_s: f64,
    /// The "N concurrent clients" figure.
    pub concurrency: usize,
    /// Cold starts per action.
    pub cold_runs: usize,
    /// Where the example modules came from.
    pub actions_dir: String,
    /// Each chain length's window, seconds.
    pub chain_duration_s: f64,
    /// Warm instances kept alive by the density measurement.
    pub density_instances: usize,
    /// The scenarios run, in order.
    pub scenarios: Vec<String>,
    /// Whether `--quick` shortened the run.
    pub quick: bool,
}

/// One warm measurement: an action invoked in a closed loop.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmRow {
    /// The example action (`noop`).
    pub action: String,
    /// Plain or confidential.
    pub mode: Mode,
    /// Concurrent clients.
    pub clients: usize,
    /// What was measured.
    #[serde(flatten)]
    pub summary: LatencySummary,
    /// Successful requests in each alternating slice of the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slice_requests: Vec<u64>,
}

/// Confidential over plain, for one action and client count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatioRow {
    /// The example action.
    pub action: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Confidential throughput / plain throughput (higher is better).
    pub throughput_ratio: f64,
    /// The lowest and highest throughput ratio of one pair of neighbouring
    /// slices: how much the ratio moved within the run. NaN when the rows
    /// have no slices to pair.
    pub slice_throughput_ratio_min: f64,
    /// See `slice_throughput_ratio_min`.
    pub slice_throughput_ratio_max: f64,
    /// Confidential p50 / plain p50 (lower is better).
    pub p50_ratio: f64,
    /// Confidential CPU per request / plain CPU per request (node and
    /// clients; lower is better).
    pub cpu_ratio: f64,
}

/// One cold start: a fresh action created, then invoked once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdSample {
    /// The create (`PUT`) latency, ms.
    pub create_ms: f64,
    /// The first blocking invoke's latency, ms.
    pub first_invoke_ms: f64,
    /// The first activation's `initTime` annotation, ms, when present.
    pub init_time_ms: Option<f64>,
    /// Untimed wait between create and invoke (for provisioning), ms.
    pub wait_ms: Option<f64>,
}

impl ColdSample {
    /// Create plus first invoke, ms.
    pub fn total_ms(&self) -> f64 {
        self.create_ms + self.first_invoke_ms
    }
}

/// Quantiles of a handful of samples (nearest rank, see [`percentile`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    /// The quantiles of `values` (NaN for all when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The nearest-rank percentile `q` (in `(0, 1]`) of ascending `sorted`:
/// the smallest sample with at least `q` of the samples at or below it.
/// Every answer is a measured sample, never an interpolation. NaN when
/// `sorted` is empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// The cold starts of one action.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdRow {
    /// The example action.
    pub action: String,
    /// Plain or confidential.
    pub mode: Mode,
    /// Cold starts that succeeded.
    pub runs: usize,
    /// Cold starts that failed.
    pub errors: usize,
    /// `PUT` latency.
    pub create_ms: Quantiles,
    /// First invoke latency.
    pub first_invoke_ms: Quantiles,
    /// Create plus first invoke, per run.
    pub total_ms: Quantiles,
    /// The server's `initTime` of the first activation, over the runs that
    /// had one.
    pub init_time_ms: Quantiles,
    /// How many first activations carried `initTime`.
    pub init_time_present: usize,
    /// The untimed wait between create and invoke, over the runs that
    /// waited for something (the enclave pool's provisioning).
    pub wait_ms: Quantiles,
    /// Every run, in order.
    pub samples: Vec<ColdSample>,
}

impl ColdRow {
    /// The row of `samples` (`errors` runs failed).
    pub fn from_samples(action: &str, mode: Mode, samples: Vec<ColdSample>, errors: usize) -> Self {
        let init: Vec<f64> = samples.iter().filter_map(|s| s.init_time_ms).collect();
        Self {
            action: action.to_owned(),
            mode,
            runs: samples.len(),
            errors,
            create_ms: Quantiles::of(samples.iter().map(|s| s.create_ms)),
            first_invoke_ms: Quantiles::of(samples.iter().map(|s| s.first_invoke_ms)),
            total_ms: Quantiles::of(samples.iter().map(ColdSample::total_ms)),
            init_time_present: init.len(),
            init_time_ms: Quantiles::of(init),
            wait_ms: Quantiles::of(samples.iter().filter_map(|s| s.wait_ms)),
            samples,
        }
    }
}

/// The `wasmtime serve` peer: measured, or why not.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSection {
    /// Whether it was measured in this run.
    pub measured: bool,
    /// Why not, or what went wrong.
    pub note: Option<String>,
    /// `wasmtime --version`.
    pub version: Option<String>,
    /// Its component.
    pub component: Option<String>,
    /// Closed-loop `GET`s at 1 and N clients.
    pub rows: Vec<PeerRow>,
    /// Ours (warm `hello`) over the peer's.
    pub ratios: Vec<PeerRatio>,
}

/// The peer at one client count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRow {
    /// Concurrent clients (keep-alive connections).
    pub clients: usize,
    /// What was measured.
    #[serde(flatten)]
    pub summary: LatencySummary,
}

/// Our warm `hello` over the peer's, at one client count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRatio {
    /// Concurrent clients.
    pub clients: usize,
    /// Our plain throughput / the peer's (higher is better).
    pub plain_throughput: f64,
    /// Our confidential throughput / the peer's.
    pub confidential_throughput: f64,
    /// Our plain p50 / the peer's (lower is better).
    pub plain_p50: f64,
    /// Our confidential p50 / the peer's.
    pub confidential_p50: f64,
}

/// The action our side of the peer comparison invokes.
pub const PEER_ACTION: &str = "hello";

/// Ours over the peer's for every client count measured on both sides
/// (NaN where one of our modes is missing).
pub fn peer_ratios(warm: &[WarmRow], peer: &[PeerRow]) -> Vec<PeerRatio> {
    let ours = |mode: Mode, clients: usize| {
        warm.iter()
            .find(|row| row.action == PEER_ACTION && row.mode == mode && row.clients == clients)
            .map(|row| row.summary)
    };
    peer.iter()
        .filter_map(|theirs| {
            let plain = ours(Mode::Plain, theirs.clients);
            let sealed = ours(Mode::Confidential, theirs.clients);
            if plain.is_none() && sealed.is_none() {
                return None;
            }
            let over = |ours: Option<LatencySummary>, field: fn(&LatencySummary) -> f64| {
                ours.map_or(f64::NAN, |ours| field(&ours) / field(&theirs.summary))
            };
            Some(PeerRatio {
                clients: theirs.clients,
                plain_throughput: over(plain, |s| s.throughput_rps),
                confidential_throughput: over(sealed, |s| s.throughput_rps),
                plain_p50: over(plain, |s| s.p50_ms),
                confidential_p50: over(sealed, |s| s.p50_ms),
            })
        })
        .collect()
}

/// Which way a goal's bound goes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Bound {
    /// Measured must be at most the target.
    AtMost,
    /// Measured must be at least the target.
    AtLeast,
}

/// The unit of a goal's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// A dimensionless ratio.
    Ratio,
    /// A number of things (instances).
    Count,
}

/// PASS, FAIL, or not measured in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// The measured figure meets the target.
    #[serde(rename = "PASS")]
    Pass,
    /// It does not.
    #[serde(rename = "FAIL")]
    Fail,
    /// The figure was not measured (the scenario failed or was skipped).
    #[serde(rename = "n/a")]
    NotMeasured,
}

impl Verdict {
    /// As shown.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotMeasured => "n/a",
        }
    }
}

/// A target and the figure this run measured for it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalCheck {
    /// What is measured.
    pub goal: String,
    /// Which way the bound goes.
    pub bound: Bound,
    /// The target.
    pub target: f64,
    /// The unit of `target` and `measured`.
    pub unit: Unit,
    /// The figure measured, if any.
    pub measured: Option<f64>,
    /// Whether it meets the target.
    pub verdict: Verdict,
}

impl GoalCheck {
    /// Evaluates `measured` against `bound target`.
    pub fn new(goal: String, bound: Bound, target: f64, unit: Unit, measured: Option<f64>) -> Self {
        let measured = measured.filter(|value| value.is_finite());
        let verdict = match measured {
            None => Verdict::NotMeasured,
            Some(value) => {
                let met = match bound {
                    Bound::AtMost => value <= target,
                    Bound::AtLeast => value >= target,
                };
                if met { Verdict::Pass } else { Verdict::Fail }
            }
        };
        Self {
            goal,
            bound,
            target,
            unit,
            measured,
            verdict,
        }
    }

    fn target_text(&self) -> String {
        let sign = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        format!("{sign} {}", format_value(self.target, self.unit))
    }
}

fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => format!("{} ms", ms(value)),
        Unit::Ratio => ratio(value),
        Unit::Count => rate(value),
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The table's title (it says when the build is not representative).
    pub title: String,
    /// The machine and build.
    pub machine: Machine,
    /// Other processes' CPU use while each scenario ran.
    pub other_load: Vec<OtherLoad>,
    /// The node's TEE.
    pub tee: TeeFacts,
    /// The run's configuration.
    pub settings: Settings,
    /// What an invoke pays before wasm runs.
    pub floors: Option<Floors>,
    /// Warm closed-loop measurements.
    pub warm: Vec<WarmRow>,
    /// Confidential over plain, from `warm`.
    pub ratios: Vec<RatioRow>,
    /// Cold starts.
    pub cold: Vec<ColdRow>,
    /// Chains of noop steps, plain and confidential.
    pub chains: Vec<ChainRow>,
    /// What the chain rows say per hop.
    pub chain_summary: Option<ChainSummary>,
    /// Cold starts with and without the enclave pool.
    pub pool: Vec<ColdVariant>,
    /// Cold starts with and without the module cache.
    pub cache: Vec<ColdVariant>,
    /// The sandbox's knobs, one at a time.
    pub knobs: Vec<KnobRow>,
    /// The `wasmtime serve` peer.
    pub peer: PeerSection,
    /// Warm instances per 2 GiB.
    pub density: Option<DensityReport>,
    /// Targets and verdicts, from the rows above.
    pub goals: Vec<GoalCheck>,
    /// Where the plot was written, if it was.
    pub plot: Option<String>,
    /// Things a reader should know about this run (errors, caveats).
    pub notes: Vec<String>,
}

/// The title for a build with or without debug assertions.
pub fn title(debug_assertions: bool) -> String {
    if debug_assertions {
        "Clemmys benchmark -- DEBUG BUILD, NOT REPRESENTATIVE: rebuild with --release".into()
    } else {
        "Clemmys benchmark (release build)".into()
    }
}

/// Confidential over plain for every action and client count measured in
/// both modes, in the order of the plain rows.
pub fn ratios(warm: &[WarmRow]) -> Vec<RatioRow> {
    warm.iter()
        .filter(|row| row.mode == Mode::Plain)
        .filter_map(|plain| {
            let sealed = warm.iter().find(|row| {
                row.mode == Mode::Confidential
                    && row.action == plain.action
                    && row.clients == plain.clients
            })?;
            let (slice_min, slice_max) =
                slice_ratio_range(&plain.slice_requests, &sealed.slice_requests);
            Some(RatioRow {
                action: plain.action.clone(),
                clients: plain.clients,
                throughput_ratio: sealed.summary.throughput_rps / plain.summary.throughput_rps,
                slice_throughput_ratio_min: slice_min,
                slice_throughput_ratio_max: slice_max,
                p50_ratio: sealed.summary.p50_ms / plain.summary.p50_ms,
                cpu_ratio: sealed.summary.cpu_us_per_request / plain.summary.cpu_us_per_request,
            })
        })
        .collect()
}

/// The range of `confidential[k] / plain[k]` over the slices `k` both
/// measured (slices of one round are equally long); NaN without any.
fn slice_ratio_range(plain: &[u64], confidential: &[u64]) -> (f64, f64) {
    plain
        .iter()
        .zip(confidential)
        .filter(|(plain, _)| **plain > 0)
        .map(|(plain, confidential)| *confidential as f64 / *plain as f64)
        .fold((f64::NAN, f64::NAN), |(low, high), ratio| {
            (low.min(ratio), high.max(ratio))
        })
}

/// The goals of the benchmark issues, evaluated on what `report` measured
/// (its `goals` are ignored). `settings.concurrency` is the "N clients"
/// figure.
pub fn evaluate_goals(report: &Report) -> Vec<GoalCheck> {
    let warm = &report.warm;
    let concurrency = report.settings.concurrency;
    let warm_p50 = |mode: Mode, clients: usize| {
        warm.iter()
            .find(|row| row.action == "noop" && row.mode == mode && row.clients == clients)
            .map(|row| row.summary.p50_ms)
    };
    let ratio = |clients: usize| {
        report
            .ratios
            .iter()
            .find(|row| row.action == "noop" && row.clients == clients)
    };
    let cold_total = |action: &str, mode: Mode| {
        report
            .cold
            .iter()
            .find(|row| row.action == action && row.mode == mode && row.runs > 0)
            .map(|row| row.total_ms.p50)
    };
    let mut clients = vec![1];
    if concurrency != 1 {
        clients.push(concurrency);
    }
    let mut goals = vec![GoalCheck::new(
        "warm p50, plain noop, 1 client".into(),
        Bound::AtMost,
        1.0,
        Unit::Ms,
        warm_p50(Mode::Plain, 1),
    )];
    for &n in &clients {
        goals.push(GoalCheck::new(
            format!("confidential/plain throughput, {}", clients_label(n)),
            Bound::AtLeast,
            0.95,
            Unit::Ratio,
            ratio(n).map(|row| row.throughput_ratio),
        ));
    }
    for &n in &clients {
        goals.push(GoalCheck::new(
            format!("confidential/plain p50, {}", clients_label(n)),
            Bound::AtMost,
            1.10,
            Unit::Ratio,
            ratio(n).map(|row| row.p50_ratio),
        ));
    }
    goals.push(GoalCheck::new(
        "cold start p50, plain hello (create + first invoke)".into(),
        Bound::AtMost,
        50.0,
        Unit::Ms,
        cold_total("hello", Mode::Plain),
    ));
    goals.push(GoalCheck::new(
        "cold start p50, confidential noop (create + first invoke)".into(),
        Bound::AtMost,
        20.0,
        Unit::Ms,
        cold_total("noop", Mode::Confidential),
    ));

    let chain = report.chain_summary.filter(|summary| summary.steps == 10);
    goals.push(GoalCheck::new(
        "chain per-hop overhead, confidential over plain (p50, 10 steps)".into(),
        Bound::AtMost,
        0.2,
        Unit::Ms,
        chain.map(|summary| summary.per_hop_overhead_ms),
    ));
    goals.push(GoalCheck::new(
        "confidential/plain chain latency p50, 10 steps".into(),
        Bound::AtMost,
        1.2,
        Unit::Ratio,
        chain.map(|summary| summary.ratio),
    ));
    goals.push(GoalCheck::new(
        "cold confidential invoke with the pool (p50, once provisioned)".into(),
        Bound::AtMost,
        10.0,
        Unit::Ms,
        report
            .pool
            .iter()
            .find(|row| {
                row.setting == coldstart::POOL
                    && row.measure == coldstart::AFTER_READY
                    && row.row.runs > 0
            })
            .map(|row| row.row.first_invoke_ms.p50),
    ));
    let peer_ratio = |clients: usize| report.peer.ratios.iter().find(|row| row.clients == clients);
    for (mode, target) in [(Mode::Plain, 0.5), (Mode::Confidential, 0.45)] {
        for &n in &clients {
            goals.push(GoalCheck::new(
                format!(
                    "ours/wasmtime serve throughput, {} hello, {}",
                    mode.name(),
                    clients_label(n)
                ),
                Bound::AtLeast,
                target,
                Unit::Ratio,
                peer_ratio(n).map(|row| match mode {
                    Mode::Plain => row.plain_throughput,
                    Mode::Confidential => row.confidential_throughput,
                }),
            ));
        }
    }
    goals.push(GoalCheck::new(
        "warm instances in 2 GiB (RSS, instantiated, not run)".into(),
        Bound::AtLeast,
        5_000.0,
        Unit::Count,
        report
            .density
            .as_ref()
            .and_then(|density| density.per_idle.fit_in_budget)
            .map(|count| count as f64),
    ));
    goals
}

fn clients_label(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

impl Report {
    /// The report as a table for people.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let rule = "=".repeat(self.title.len());
        let _ = writeln!(out, "{}\n{rule}", self.title);
        let m = &self.machine;
        let _ = writeln!(
            out,
            "machine   {} cores, {}, {}/{}",
            m.cores,
            m.cpu.as_deref().unwrap_or("unknown CPU"),
            m.os,
            m.arch
        );
        let _ = writeln!(
            out,
            "build     {}{}",
            m.build_profile,
            if m.debug_assertions {
                " with debug assertions -- figures are NOT representative"
            } else {
                ""
            }
        );
        let tee = &self.tee;
        let protection = if tee.hardware {
            "hardware protection"
        } else {
            "no hardware protection"
        };
        let _ = writeln!(out, "tee       {}: {protection}", tee.kind);
        if let Some(warning) = &tee.warning {
            let _ = writeln!(out, "          {warning}");
        }
        let s = &self.settings;
        let _ = writeln!(
            out,
            "node      in-process, loopback HTTP/1.1 keep-alive; data dir on {} (each activation fsynced, group commit)",
            m.data_dir_fs.as_deref().unwrap_or("an unknown file system")
        );
        let _ = writeln!(
            out,
            "load      closed loop, {} s per measurement after {} s warm-up; N = {} clients; {} cold starts per action; {} s per chain length{}",
            trim_float(s.duration_s),
            trim_float(s.warmup_s),
            s.concurrency,
            s.cold_runs,
            trim_float(s.chain_duration_s),
            if s.quick { " (--quick)" } else { "" }
        );
        let _ = writeln!(out, "scenarios {}", s.scenarios.join(", "));
        if !self.other_load.is_empty() {
            let loads: Vec<String> = self
                .other_load
                .iter()
                .map(|load| format!("{} {:.1}%", load.scenario, load.others_pct))
                .collect();
            let _ = writeln!(
                out,
                "others    CPU used by other processes, % of one core: {}",
                loads.join(", ")
            );
        }

        let _ = writeln!(
            out,
            "\nWarm blocking invokes (latency in ms; cpu: this process's CPU time per request, node and clients, µs)"
        );
        let mut table = Table::new(&[
            "action", "mode", "clients", "requests", "errors", "req/s", "p50", "p90", "p99",
            "mean", "max", "cpu",
        ]);
        for row in &self.warm {
            let s = &row.summary;
            table.row(vec![
                row.action.clone(),
                row.mode.name().into(),
                row.clients.to_string(),
                s.requests.to_string(),
                s.errors.to_string(),
                rate(s.throughput_rps),
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.mean_ms),
                ms(s.max_ms),
                rate(s.cpu_us_per_request),
            ]);
        }
        out.push_str(&table.render());

        if let Some(floors) = &self.floors {
            let _ = writeln!(
                out,
                "floors (1 client): GET /namespaces p50 {} ms ({} req/s), no activation; 4 KiB \
                 write + fdatasync in the data dir p50 {} ms (p90 {})",
                ms(floors.api_get.p50_ms),
                rate(floors.api_get.throughput_rps),
                ms(floors.fsync_ms.p50),
                ms(floors.fsync_ms.p90)
            );
        }

        let _ = writeln!(out, "\nConfidential / plain");
        let mut table = Table::new(&[
            "action",
            "clients",
            "throughput",
            "slices",
            "p50",
            "cpu/request",
        ]);
        for row in &self.ratios {
            table.row(vec![
                row.action.clone(),
                row.clients.to_string(),
                ratio(row.throughput_ratio),
                if row.slice_throughput_ratio_min.is_nan() {
                    "-".to_owned()
                } else {
                    format!(
                        "{}-{}",
                        ratio(row.slice_throughput_ratio_min),
                        ratio(row.slice_throughput_ratio_max)
                    )
                },
                ratio(row.p50_ratio),
                ratio(row.cpu_ratio),
            ]);
        }
        out.push_str(&table.render());

        let _ = writeln!(out, "\nCold start: a fresh action per run (p50 / p90, ms)");
        let mut table = Table::new(&[
            "action",
            "mode",
            "runs",
            "errors",
            "create",
            "first invoke",
            "create+invoke",
            "initTime",
        ]);
        for row in &self.cold {
            let init = if row.init_time_present == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{} ({}/{})",
                    pair(&row.init_time_ms),
                    row.init_time_present,
                    row.runs
                )
            };
            table.row(vec![
                row.action.clone(),
                row.mode.name().into(),
                row.runs.to_string(),
                row.errors.to_string(),
                pair(&row.create_ms),
                pair(&row.first_invoke_ms),
                pair(&row.total_ms),
                init,
            ]);
        }
        out.push_str(&table.render());

        self.render_chains(&mut out);
        self.render_cold_variants(&mut out);
        self.render_knobs(&mut out);
        self.render_peer(&mut out);
        self.render_density(&mut out);

        let _ = writeln!(out, "\nGoals");
        let mut table = Table::new(&["goal", "target", "measured", "result"]);
        for goal in &self.goals {
            table.row(vec![
                goal.goal.clone(),
                goal.target_text(),
                goal.measured
                    .map_or_else(|| "-".to_owned(), |v| format_value(v, goal.unit)),
                goal.verdict.label().into(),
            ]);
        }
        out.push_str(&table.render());

        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

impl Report {
    fn render_chains(&self, out: &mut String) {
        if self.chains.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nChains: blocking invoke of a sequence of noop steps, 1 client (latency in ms)"
        );
        let mut table = Table::new(&[
            "steps", "mode", "requests", "errors", "p50", "p90", "p99", "mean",
        ]);
        for row in &self.chains {
            let s = &row.summary;
            let mode = if row.first_run {
                "confidential, first runs".into()
            } else if row.mode == Mode::Confidential {
                "confidential, session".into()
            } else {
                row.mode.name().into()
            };
            table.row(vec![
                row.steps.to_string(),
                mode,
                s.requests.to_string(),
                s.errors.to_string(),
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.mean_ms),
            ]);
        }
        out.push_str(&table.render());
        if let Some(c) = &self.chain_summary {
            let _ = writeln!(
                out,
                "per hop, confidential over plain: {} us at {} steps ((conf p50 - plain p50) / {}); \
                 {} us from the slopes 1..{} (plain {} us/step, confidential {} us/step); \
                 confidential/plain p50 at {} steps: {}",
                micros(c.per_hop_overhead_ms),
                c.steps,
                c.steps,
                micros(c.per_hop_overhead_slope_ms),
                c.steps,
                micros(c.plain_per_hop_ms),
                micros(c.confidential_per_hop_ms),
                c.steps,
                ratio(c.ratio)
            );
            if let (Some(per_hop), Some(first_ratio)) =
                (c.first_run_per_hop_overhead_ms, c.first_run_ratio)
            {
                let _ = writeln!(
                    out,
                    "first runs (no chain session: ticket signed, HPKE per hop, signed receipts): \
                     {} us per hop over plain, first-run/plain p50 at {} steps: {}",
                    micros(per_hop),
                    c.steps,
                    ratio(first_ratio)
                );
            }
        }
    }

    fn render_cold_variants(&self, out: &mut String) {
        if self.pool.is_empty() && self.cache.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nCold start with and without the enclave pool and the module cache: noop, a node per \
             setting (p50 / p90, ms)"
        );
        let mut table = Table::new(&[
            "setting",
            "mode",
            "measured",
            "runs",
            "create",
            "wait",
            "first invoke",
            "create+invoke",
            "initTime",
        ]);
        for variant in self.pool.iter().chain(&self.cache) {
            let row = &variant.row;
            table.row(vec![
                variant.setting.clone(),
                row.mode.name().into(),
                variant.measure.clone(),
                runs(row),
                pair(&row.create_ms),
                if row.wait_ms.p50.is_finite() {
                    pair(&row.wait_ms)
                } else {
                    "-".into()
                },
                pair(&row.first_invoke_ms),
                pair(&row.total_ms),
                init_time(row),
            ]);
        }
        out.push_str(&table.render());
    }

    fn render_knobs(&self, out: &mut String) {
        if self.knobs.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nSandbox knobs, one at a time, a node each: warm plain noop at 1 client; cold plain \
             hello (p50 / p90, ms)"
        );
        let mut table = Table::new(&[
            "setting",
            "req/s",
            "p50",
            "p99",
            "cold create+invoke",
            "cold initTime",
        ]);
        for row in &self.knobs {
            let warm = row.warm.as_ref();
            let cold = row.cold_hello.as_ref();
            table.row(vec![
                row.setting.clone(),
                warm.map_or_else(|| "-".into(), |s| rate(s.throughput_rps)),
                warm.map_or_else(|| "-".into(), |s| ms(s.p50_ms)),
                warm.map_or_else(|| "-".into(), |s| ms(s.p99_ms)),
                cold.map_or_else(|| "-".into(), |c| pair(&c.total_ms)),
                cold.map_or_else(|| "-".into(), init_time),
            ]);
        }
        out.push_str(&table.render());
    }

    fn render_peer(&self, out: &mut String) {
        let peer = &self.peer;
        if !peer.measured {
            let _ = writeln!(
                out,
                "\npeer: not measured ({})",
                peer.note.as_deref().unwrap_or("run scripts/bench.sh")
            );
            return;
        }
        let _ = writeln!(
            out,
            "\nAgainst wasmtime serve ({}), same load generator and clients: GET of a wasi:http \
             hello component vs our blocking invoke of hello (latency in ms)",
            peer.version.as_deref().unwrap_or("unknown version")
        );
        let mut table = Table::new(&[
            "server", "clients", "requests", "errors", "req/s", "p50", "p99",
        ]);
        for clients in peer.rows.iter().map(|row| row.clients) {
            for row in self
                .warm
                .iter()
                .filter(|row| row.action == PEER_ACTION && row.clients == clients)
            {
                let s = &row.summary;
                table.row(vec![
                    format!("clemmys {} hello", row.mode.name()),
                    clients.to_string(),
                    s.requests.to_string(),
                    s.errors.to_string(),
                    rate(s.throughput_rps),
                    ms(s.p50_ms),
                    ms(s.p99_ms),
                ]);
            }
            for row in peer.rows.iter().filter(|row| row.clients == clients) {
                let s = &row.summary;
                table.row(vec![
                    "wasmtime serve".into(),
                    clients.to_string(),
                    s.requests.to_string(),
                    s.errors.to_string(),
                    rate(s.throughput_rps),
                    ms(s.p50_ms),
                    ms(s.p99_ms),
                ]);
            }
        }
        out.push_str(&table.render());
        let _ = writeln!(out, "\nOurs / wasmtime serve");
        let mut table = Table::new(&[
            "clients",
            "plain req/s",
            "confidential req/s",
            "plain p50",
            "confidential p50",
        ]);
        for row in &peer.ratios {
            table.row(vec![
                row.clients.to_string(),
                ratio(row.plain_throughput),
                ratio(row.confidential_throughput),
                ratio(row.plain_p50),
                ratio(row.confidential_p50),
            ]);
        }
        out.push_str(&table.render());
        let _ = writeln!(
            out,
            "\nCold start vs wasmtime serve's per-request instantiation (p50, ms)"
        );
        let mut table = Table::new(&["what", "p50"]);
        for (what, value) in self.cold_comparison() {
            table.row(vec![what, ms(value)]);
        }
        out.push_str(&table.render());
    }

    /// Our cold starts next to the peer's per-request latency at 1 client
    /// (it instantiates the component for every request), as shown.
    pub fn cold_comparison(&self) -> Vec<(String, f64)> {
        let mut rows = Vec::new();
        if let Some(peer) = self.peer.rows.iter().find(|row| row.clients == 1) {
            rows.push((
                "wasmtime serve: a request (instantiate + handle), 1 client".to_owned(),
                peer.summary.p50_ms,
            ));
        }
        for variant in self.pool.iter().chain(&self.cache) {
            rows.push((
                format!(
                    "clemmys {} noop, {}: {}",
                    variant.row.mode.name(),
                    variant.setting,
                    variant.measure
                ),
                variant.row.first_invoke_ms.p50,
            ));
        }
        for row in &self.cold {
            rows.push((
                format!(
                    "clemmys {} {}: create + first invoke",
                    row.mode.name(),
                    row.action
                ),
                row.total_ms.p50,
            ));
        }
        rows
    }

    fn render_density(&self, out: &mut String) {
        let Some(d) = &self.density else {
            return;
        };
        let _ = writeln!(
            out,
            "\nDensity: {} warm noop instances alive at once in this process ({} allocator{})",
            d.instances,
            d.allocator,
            d.fallback
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        );
        let mut table = Table::new(&[
            "instances",
            "RSS growth",
            "RSS / instance",
            "PSS / instance",
            "fit in 2 GiB (RSS)",
            "took",
        ]);
        for (what, per, took) in [
            ("instantiated, not run", &d.per_idle, d.instantiate_ms),
            ("after one _start each", &d.per_started, d.start_ms),
        ] {
            table.row(vec![
                what.into(),
                format!(
                    "{:.1} MiB",
                    per.total_rss_bytes as f64 / f64::from(1u32 << 20)
                ),
                kib(per.rss_bytes),
                per.pss_bytes.map_or_else(|| "-".into(), kib),
                per.fit_in_budget
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                format!("{} ms", ms(took)),
            ]);
        }
        out.push_str(&table.render());
        let within = |per: &super::density::PerInstance| {
            if per.total_rss_bytes <= super::density::BUDGET_BYTES {
                "within"
            } else {
                "MORE than"
            }
        };
        let _ = writeln!(
            out,
            "{} instances alive at once, measured: {} 2 GiB of RSS growth instantiated, {} 2 GiB \
             after _start",
            d.instances,
            within(&d.per_idle),
            within(&d.per_started)
        );
    }
}

fn runs(row: &ColdRow) -> String {
    if row.errors == 0 {
        row.runs.to_string()
    } else {
        format!("{} ({} failed)", row.runs, row.errors)
    }
}

fn init_time(row: &ColdRow) -> String {
    if row.init_time_present == 0 {
        "-".to_owned()
    } else {
        format!(
            "{} ({}/{})",
            pair(&row.init_time_ms),
            row.init_time_present,
            row.runs
        )
    }
}

fn micros(value_ms: f64) -> String {
    if value_ms.is_finite() {
        format!("{:.0}", value_ms * 1e3)
    } else {
        "-".into()
    }
}

fn kib(bytes: f64) -> String {
    if bytes.is_finite() {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        "-".into()
    }
}

/// A plain-text table: the first column left-aligned, the others right.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones are dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table, one line per row, columns two spaces apart.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (column, (cell, width)) in line.iter().zip(&widths).enumerate() {
                if column == 0 {
                    let _ = write!(text, "{cell:<width$}");
                } else {
                    let _ = write!(text, "  {cell:>width$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Milliseconds with three significant decimals below 10 ms.
fn ms(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value < 10.0 {
        format!("{value:.3}")
    } else if value < 100.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn pair(quantiles: &Quantiles) -> String {
    format!("{} / {}", ms(quantiles.p50), ms(quantiles.p90))
}

fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "-".into()
    }
}

fn rate(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.0}")
    } else {
        "-".into()
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::density::{MemorySample, PerInstance};

    fn summary(rps: f64, p50: f64) -> LatencySummary {
        LatencySummary {
            requests: 100,
            errors: 0,
            window_s: 1.0,
            throughput_rps: rps,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: p50,
            min_ms: p50,
            max_ms: p50,
            cpu_us_per_request: 1e6 / rps,
        }
    }

    fn warm(mode: Mode, clients: usize, rps: f64, p50: f64) -> WarmRow {
        WarmRow {
            action: "noop".into(),
            mode,
            clients,
            summary: summary(rps, p50),
            slice_requests: Vec::new(),
        }
    }

    fn cold(action: &str, mode: Mode, totals: &[f64]) -> ColdRow {
        let samples = totals
            .iter()
            .map(|total| ColdSample {
                create_ms: total / 2.0,
                first_invoke_ms: total / 2.0,
                init_time_ms: Some(1.0),
                wait_ms: None,
            })
            .collect();
        ColdRow::from_samples(action, mode, samples, 0)
    }

    fn chain(steps: usize, mode: Mode, p50: f64) -> ChainRow {
        ChainRow {
            steps,
            mode,
            first_run: false,
            summary: summary(1e3 / p50, p50),
        }
    }

    fn variant(setting: &str, measure: &str, mode: Mode, invoke: f64) -> ColdVariant {
        let mut row = cold("noop", mode, &[2.0 * invoke]);
        row.samples[0].wait_ms = Some(7.0);
        let row = ColdRow::from_samples("noop", mode, row.samples, 0);
        ColdVariant {
            setting: setting.into(),
            measure: measure.into(),
            row,
        }
    }

    /// A report with every section, as a full run makes it.
    pub(crate) fn report() -> Report {
        let mut warm = vec![
            warm(Mode::Plain, 1, 2000.0, 0.5),
            warm(Mode::Plain, 8, 4000.0, 2.0),
            warm(Mode::Confidential, 1, 1000.0, 1.0),
            warm(Mode::Confidential, 8, 3900.0, 2.1),
        ];
        for (mode, clients, rps) in [
            (Mode::Plain, 1, 1900.0),
            (Mode::Confidential, 1, 1500.0),
            (Mode::Plain, 8, 3000.0),
            (Mode::Confidential, 8, 2000.0),
        ] {
            let mut row = self::warm(mode, clients, rps, 1e3 / rps);
            row.action = PEER_ACTION.into();
            warm.push(row);
        }
        let peer_rows = vec![
            PeerRow {
                clients: 1,
                summary: summary(3800.0, 0.25),
            },
            PeerRow {
                clients: 8,
                summary: summary(5000.0, 1.5),
            },
        ];
        let chains = vec![
            chain(1, Mode::Plain, 2.0),
            chain(1, Mode::Confidential, 3.0),
            chain(5, Mode::Plain, 6.0),
            chain(5, Mode::Confidential, 8.0),
            chain(10, Mode::Plain, 11.0),
            chain(10, Mode::Confidential, 13.0),
        ];
        let before = MemorySample {
            rss_bytes: 50 << 20,
            ..MemorySample::default()
        };
        let idle = MemorySample {
            rss_bytes: (50 << 20) + 6_000 * 64 * 1024,
            ..MemorySample::default()
        };
        let started = MemorySample {
            rss_bytes: (50 << 20) + 6_000 * 256 * 1024,
            ..MemorySample::default()
        };
        let mut report = Report {
            title: title(false),
            machine: Machine {
                cores: 2,
                cpu: Some("Test CPU".into()),
                os: "linux",
                arch: "x86_64",
                build_profile: "release",
                debug_assertions: false,
                data_dir_fs: Some("ext4".into()),
            },
            other_load: vec![OtherLoad {
                scenario: "warm".into(),
                seconds: 30.0,
                others_pct: 1.25,
            }],
            tee: TeeFacts {
                kind: "sim".into(),
                hardware: false,
                warning: Some("SIMULATED TEE".into()),
            },
            settings: Settings {
                duration_s: 10.0,
                warmup_s: 2.0,
                concurrency: 8,
                cold_runs: 15,
                actions_dir: "target/examples".into(),
                chain_duration_s: 3.0,
                density_instances: 6_000,
                scenarios: vec!["warm".into(), "peer".into()],
                quick: false,
            },
            ratios: ratios(&warm),
            cold: vec![
                cold("noop", Mode::Plain, &[10.0, 12.0]),
                cold("hello", Mode::Plain, &[40.0, 60.0, 45.0]),
                cold("noop", Mode::Confidential, &[30.0]),
            ],
            chain_summary: ChainSummary::of(&chains),
            chains,
            pool: vec![
                variant(
                    coldstart::POOL,
                    coldstart::AFTER_CREATE,
                    Mode::Confidential,
                    9.0,
                ),
                variant(
                    coldstart::POOL,
                    coldstart::AFTER_READY,
                    Mode::Confidential,
                    4.0,
                ),
                variant(
                    coldstart::NO_POOL,
                    coldstart::AFTER_CREATE,
                    Mode::Confidential,
                    40.0,
                ),
            ],
            cache: vec![
                variant(coldstart::CACHE, coldstart::AFTER_COMPILE, Mode::Plain, 0.8),
                variant(
                    coldstart::NO_CACHE,
                    coldstart::NOT_CACHED,
                    Mode::Plain,
                    30.0,
                ),
            ],
            knobs: vec![
                KnobRow {
                    setting: "default".into(),
                    warm: Some(summary(2100.0, 0.45)),
                    cold_hello: Some(cold("hello", Mode::Plain, &[40.0])),
                },
                KnobRow {
                    setting: "pooling off (on-demand)".into(),
                    warm: Some(summary(1900.0, 0.52)),
                    cold_hello: None,
                },
            ],
            peer: PeerSection {
                measured: true,
                note: None,
                version: Some("wasmtime 48.0.8 (abc 2025-11-20)".into()),
                component: Some("hello_http.wasm".into()),
                ratios: peer_ratios(&warm, &peer_rows),
                rows: peer_rows,
            },
            density: Some(DensityReport {
                instances: 6_000,
                allocator: "pooling".into(),
                fallback: None,
                instantiate_ms: 120.0,
                start_ms: 300.0,
                before,
                idle,
                started,
                per_idle: PerInstance::between(&before, &idle, 6_000),
                per_started: PerInstance::between(&before, &started, 6_000),
            }),
            floors: Some(Floors {
                api_get: summary(9000.0, 0.11),
                fsync_ms: Quantiles::of([0.4, 0.5, 0.6]),
            }),
            warm,
            goals: Vec::new(),
            notes: vec!["a note".into()],
            plot: None,
        };
        report.goals = evaluate_goals(&report);
        report
    }

    /// A report of a run that measured nothing.
    fn empty_report() -> Report {
        let mut report = report();
        report.settings.concurrency = 1;
        report.warm.clear();
        report.ratios.clear();
        report.cold.clear();
        report.chains.clear();
        report.chain_summary = None;
        report.pool.clear();
        report.cache.clear();
        report.knobs.clear();
        report.peer = PeerSection::default();
        report.density = None;
        report.floors = None;
        report.goals = evaluate_goals(&report);
        report
    }

    #[test]
    fn nearest_rank_percentiles_are_samples() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&sorted, 0.5), 5.0);
        assert_eq!(percentile(&sorted, 0.9), 9.0);
        assert_eq!(percentile(&sorted, 0.91), 10.0);
        assert_eq!(percentile(&sorted, 1.0), 10.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
        let odd = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&odd, 0.5), 2.0);
    }

    #[test]
    fn quantiles_sort_and_skip_nan() {
        let q = Quantiles::of([5.0, f64::NAN, 1.0, 3.0]);
        assert_eq!((q.p50, q.p90, q.min, q.max), (3.0, 5.0, 1.0, 5.0));
        let empty = Quantiles::of([]);
        assert!(empty.p50.is_nan() && empty.max.is_nan());
    }

    #[test]
    fn cold_rows_take_quantiles_of_per_run_totals() {
        let samples = vec![
            ColdSample {
                create_ms: 1.0,
                first_invoke_ms: 10.0,
                init_time_ms: None,
                wait_ms: None,
            },
            ColdSample {
                create_ms: 10.0,
                first_invoke_ms: 2.0,
                init_time_ms: Some(4.0),
                wait_ms: None,
            },
            ColdSample {
                create_ms: 3.0,
                first_invoke_ms: 3.0,
                init_time_ms: Some(2.0),
                wait_ms: None,
            },
        ];
        let row = ColdRow::from_samples("noop", Mode::Plain, samples, 1);
        assert_eq!(row.runs, 3);
        assert_eq!(row.errors, 1);
        // Totals 11, 12, 6: the median run, not the sum of medians (3 + 3).
        assert_eq!(row.total_ms.p50, 11.0);
        assert_eq!(row.create_ms.p50, 3.0);
        assert_eq!(row.init_time_present, 2);
        assert_eq!(row.init_time_ms.p50, 2.0);
        assert_eq!(row.init_time_ms.max, 4.0);
    }

    #[test]
    fn ratios_pair_rows_of_the_same_action_and_clients() {
        let rows = vec![
            warm(Mode::Plain, 1, 2000.0, 0.5),
            warm(Mode::Confidential, 1, 1000.0, 1.0),
            warm(Mode::Plain, 8, 4000.0, 2.0),
        ];
        let found = ratios(&rows);
        assert_eq!(found.len(), 1, "no confidential row for 8 clients");
        assert_eq!(found[0].clients, 1);
        assert!((found[0].throughput_ratio - 0.5).abs() < 1e-12);
        assert!((found[0].p50_ratio - 2.0).abs() < 1e-12);
        // The fixture's CPU per request is 1e6 / req/s: twice as much.
        assert!((found[0].cpu_ratio - 2.0).abs() < 1e-12);
        assert!(found[0].slice_throughput_ratio_min.is_nan(), "no slices");
    }

    #[test]
    fn slice_ratios_pair_the_slices_of_one_round() {
        let mut plain = warm(Mode::Plain, 1, 1000.0, 1.0);
        let mut sealed = warm(Mode::Confidential, 1, 900.0, 1.1);
        plain.slice_requests = vec![100, 200, 0, 100];
        // A missing last slice is not paired; a plain slice of 0, skipped.
        sealed.slice_requests = vec![90, 210, 50];
        let found = ratios(&[plain, sealed]);
        assert!((found[0].slice_throughput_ratio_min - 0.9).abs() < 1e-12);
        assert!((found[0].slice_throughput_ratio_max - 1.05).abs() < 1e-12);
    }

    #[test]
    fn goals_compare_in_the_right_direction() {
        let pass_low = GoalCheck::new("x".into(), Bound::AtMost, 1.0, Unit::Ms, Some(1.0));
        assert_eq!(pass_low.verdict, Verdict::Pass);
        let fail_low = GoalCheck::new("x".into(), Bound::AtMost, 1.0, Unit::Ms, Some(1.001));
        assert_eq!(fail_low.verdict, Verdict::Fail);
        let pass_high = GoalCheck::new("x".into(), Bound::AtLeast, 0.95, Unit::Ratio, Some(0.95));
        assert_eq!(pass_high.verdict, Verdict::Pass);
        let fail_high = GoalCheck::new("x".into(), Bound::AtLeast, 0.95, Unit::Ratio, Some(0.9));
        assert_eq!(fail_high.verdict, Verdict::Fail);
        let missing = GoalCheck::new("x".into(), Bound::AtLeast, 0.95, Unit::Ratio, None);
        assert_eq!(missing.verdict, Verdict::NotMeasured);
        let nan = GoalCheck::new("x".into(), Bound::AtMost, 1.0, Unit::Ms, Some(f64::NAN));
        assert_eq!(nan.verdict, Verdict::NotMeasured);
        assert_eq!(nan.measured, None);
    }

    #[test]
    fn the_issue_goals_are_evaluated_on_the_measured_rows() {
        let report = report();
        let verdicts: Vec<(&str, Verdict)> = report
            .goals
            .iter()
            .map(|g| (g.goal.as_str(), g.verdict))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("warm p50, plain noop, 1 client", Verdict::Pass),
                ("confidential/plain throughput, 1 client", Verdict::Fail),
                ("confidential/plain throughput, 8 clients", Verdict::Pass),
                ("confidential/plain p50, 1 client", Verdict::Fail),
                ("confidential/plain p50, 8 clients", Verdict::Pass),
                (
                    "cold start p50, plain hello (create + first invoke)",
                    Verdict::Pass
                ),
                (
                    "cold start p50, confidential noop (create + first invoke)",
                    Verdict::Fail
                ),
                (
                    "chain per-hop overhead, confidential over plain (p50, 10 steps)",
                    Verdict::Pass
                ),
                (
                    "confidential/plain chain latency p50, 10 steps",
                    Verdict::Pass
                ),
                (
                    "cold confidential invoke with the pool (p50, once provisioned)",
                    Verdict::Pass
                ),
                (
                    "ours/wasmtime serve throughput, plain hello, 1 client",
                    Verdict::Pass
                ),
                (
                    "ours/wasmtime serve throughput, plain hello, 8 clients",
                    Verdict::Pass
                ),
                (
                    "ours/wasmtime serve throughput, confidential hello, 1 client",
                    Verdict::Fail
                ),
                (
                    "ours/wasmtime serve throughput, confidential hello, 8 clients",
                    Verdict::Fail
                ),
                (
                    "warm instances in 2 GiB (RSS, instantiated, not run)",
                    Verdict::Pass
                ),
            ]
        );
        let measured = |name: &str| {
            report
                .goals
                .iter()
                .find(|g| g.goal.starts_with(name))
                .and_then(|g| g.measured)
                .expect("measured")
        };
        assert_eq!(measured("cold start p50, plain hello"), 45.0);
        // (13 - 11) / 10 ms per hop; 13 / 11 end to end.
        assert!((measured("chain per-hop") - 0.2).abs() < 1e-12);
        assert!((measured("confidential/plain chain") - 13.0 / 11.0).abs() < 1e-12);
        assert_eq!(measured("cold confidential invoke with the pool"), 4.0);
        assert!((measured("ours/wasmtime serve throughput, plain hello, 1") - 0.5).abs() < 1e-12);
        assert_eq!(measured("warm instances"), 32_768.0);
    }

    #[test]
    fn peer_ratios_pair_our_hello_with_the_peer_at_each_client_count() {
        let report = report();
        let one = &report.peer.ratios[0];
        assert_eq!(one.clients, 1);
        assert!((one.plain_throughput - 1900.0 / 3800.0).abs() < 1e-12);
        assert!((one.confidential_throughput - 1500.0 / 3800.0).abs() < 1e-12);
        assert!((one.plain_p50 - (1e3 / 1900.0) / 0.25).abs() < 1e-9);
        // Rows of noop are not hello: no peer ratio from them alone.
        let noop_only: Vec<WarmRow> = report
            .warm
            .iter()
            .filter(|row| row.action == "noop")
            .cloned()
            .collect();
        assert!(peer_ratios(&noop_only, &report.peer.rows).is_empty());
        // One mode missing: its ratio is not a number, the other stays.
        let plain_only: Vec<WarmRow> = report
            .warm
            .iter()
            .filter(|row| row.mode == Mode::Plain)
            .cloned()
            .collect();
        let ratios = peer_ratios(&plain_only, &report.peer.rows);
        assert!(ratios[0].confidential_throughput.is_nan());
        assert!(ratios[0].plain_throughput.is_finite());
    }

    #[test]
    fn a_chain_shorter_than_ten_steps_does_not_answer_the_chain_goals() {
        let mut report = report();
        report.chains.retain(|row| row.steps != 10);
        report.chain_summary = ChainSummary::of(&report.chains);
        let goals = evaluate_goals(&report);
        for goal in goals.iter().filter(|g| g.goal.contains("chain")) {
            assert_eq!(goal.verdict, Verdict::NotMeasured, "{}", goal.goal);
        }
    }

    #[test]
    fn unmeasured_goals_are_not_applicable() {
        let report = empty_report();
        assert_eq!(report.goals.len(), 11, "one client count only");
        assert!(
            report
                .goals
                .iter()
                .all(|g| g.verdict == Verdict::NotMeasured)
        );
        let text = report.render_table();
        assert!(
            text.contains("peer: not measured (run scripts/bench.sh)"),
            "{text}"
        );
        for absent in ["Chains:", "Density:", "Sandbox knobs", "enclave pool"] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
    }

    #[test]
    fn table_shows_every_section_and_verdict() {
        let text = report().render_table();
        assert!(text.starts_with("Clemmys benchmark (release build)\n"));
        assert!(
            text.contains("tee       sim: no hardware protection"),
            "{text}"
        );
        assert!(text.contains("SIMULATED TEE"));
        assert!(text.contains("data dir on ext4"));
        assert!(text.contains("% of one core: warm 1.2%"), "{text}");
        for section in [
            "Warm blocking invokes",
            "Confidential / plain",
            "Cold start",
            "Chains:",
            "enclave pool",
            "Sandbox knobs",
            "Against wasmtime serve (wasmtime 48.0.8",
            "Ours / wasmtime serve",
            "per-request instantiation",
            "Density: 6000 warm noop instances",
            "Goals",
            "Notes",
        ] {
            assert!(text.contains(section), "missing {section}:\n{text}");
        }
        let line = text
            .lines()
            .find(|l| l.starts_with("noop") && l.contains("confidential") && l.contains(" 8 "))
            .expect("confidential 8-client row");
        assert!(line.contains("3900"), "{line}");
        assert!(line.contains("2.100"), "{line}");
        let line = text
            .lines()
            .find(|l| l.starts_with("cold start p50, plain hello"))
            .expect("hello goal");
        assert!(line.contains("<= 50.00 ms"), "{line}");
        assert!(line.contains("45.00 ms"), "{line}");
        assert!(line.ends_with("PASS"), "{line}");
        assert!(
            text.contains("22.50 / 30.00"),
            "cold hello create p50/p90:\n{text}"
        );
        assert!(
            text.contains("per hop, confidential over plain: 200 us at 10 steps"),
            "{text}"
        );
        assert!(
            text.contains("GET /namespaces p50 0.110 ms (9000 req/s)")
                && text.contains("fdatasync in the data dir p50 0.500 ms"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("warm instances in 2 GiB"))
            .expect("density goal");
        assert!(line.contains(">= 5000") && line.contains("32768"), "{line}");
        let line = text
            .lines()
            .find(|l| l.starts_with("instantiated, not run"))
            .expect("density row");
        assert!(
            line.contains("64.0 KiB") && line.contains("375.0 MiB"),
            "{line}"
        );
        assert!(
            text.contains("within 2 GiB of RSS growth instantiated, within 2 GiB after"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("enclave pool") && l.contains("provisioned"))
            .expect("pool row");
        assert!(line.contains("7.000 / 7.000"), "the wait: {line}");
        let line = text
            .lines()
            .find(|l| l.starts_with("pooling off"))
            .expect("knob row");
        assert!(
            line.contains("1900") && line.trim_end().ends_with('-'),
            "{line}"
        );
    }

    #[test]
    fn debug_builds_say_so_in_the_title() {
        assert!(title(true).contains("DEBUG BUILD"));
        assert!(!title(false).contains("DEBUG"));
    }

    #[test]
    fn table_columns_align() {
        let mut table = Table::new(&["name", "value"]);
        table.row(vec!["a".into(), "1".into()]);
        table.row(vec!["longer".into(), "12345".into()]);
        table.row(vec!["short".into()]);
        assert_eq!(
            table.render(),
            "name    value\na           1\nlonger  12345\nshort\n"
        );
    }

    #[test]
    fn json_has_the_same_figures_and_no_nan() {
        let mut report = report();
        report.warm[0].summary.p99_ms = f64::NAN;
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["chains"][5]["steps"], 10);
        assert_eq!(json["chainSummary"]["ratio"], 13.0 / 11.0);
        assert_eq!(json["pool"][1]["measure"], "invoke once provisioned");
        assert_eq!(json["pool"][1]["firstInvokeMs"]["p50"], 4.0);
        assert_eq!(json["cache"][0]["coldHello"], serde_json::Value::Null);
        assert_eq!(json["knobs"][1]["coldHello"], serde_json::Value::Null);
        assert_eq!(json["peer"]["rows"][1]["throughputRps"], 5000.0);
        assert_eq!(json["peer"]["ratios"][0]["plainThroughput"], 0.5);
        assert_eq!(json["density"]["perIdle"]["fitInBudget"], 32_768);
        assert_eq!(json["settings"]["densityInstances"], 6_000);
        assert_eq!(json["warm"][1]["throughputRps"], 4000.0);
        assert_eq!(json["warm"][1]["mode"], "plain");
        assert_eq!(json["warm"][0]["p99Ms"], serde_json::Value::Null);
        assert_eq!(json["ratios"][0]["p50Ratio"], 2.0);
        assert_eq!(json["cold"][1]["totalMs"]["p50"], 45.0);
        assert_eq!(json["goals"][0]["verdict"], "PASS");
        assert_eq!(json["tee"]["hardware"], false);
        assert_eq!(json["machine"]["debugAssertions"], false);
    }
}
