//! What a benchmark run found: a [`Report`] holds every figure measured in
//! the run, and `serde` gives them as JSON. The targets and their verdicts
//! are in [`crate::goals`]; the table, the README block and the picture in
//! [`crate::render`].
//!
//! Nothing here measures: ratios are derived from the measured rows only,
//! so a figure that was not measured is NaN or absent (`null` in JSON),
//! never a made-up number.

use serde::Serialize;

use crate::chains::{ChainRow, ChainSummary};
use crate::coldstart::ColdVariant;
use crate::cpu::OtherLoad;
use crate::density::DensityReport;
use crate::floors::Floors;
use crate::goals::GoalCheck;
use crate::growth::GrowthReport;
use crate::knobs::KnobRow;
use crate::load::LatencySummary;

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
    /// Separate side-by-side windows of the warm plain/confidential pair.
    pub runs: usize,
    /// Activation records preloaded for the growth comparison.
    pub growth_records: usize,
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
    /// Which of the separate warm runs (1-based).
    pub run: usize,
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
    /// Which of the separate warm runs (1-based).
    pub run: usize,
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
    /// The same for the node's CPU alone (clients left out).
    pub node_cpu_ratio: f64,
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
    /// Warm instances of one JavaScript action (of the engine) per 2 GiB.
    pub js_density: Option<DensityReport>,
    /// Warm throughput on a store preloaded with many records against an
    /// empty one.
    pub growth: Option<GrowthReport>,
    /// Warm JavaScript hello against warm wasm hello, side by side.
    pub js: crate::javascript::JsReport,
    /// Warm noop through the attested gateway against plain, and TLS
    /// handshakes.
    pub gateway: crate::gateway::GatewayReport,
    /// The distributed path (controller, invokers, NATS, PostgreSQL)
    /// against the embedded node.
    pub cluster: crate::cluster::ClusterReport,
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

/// Confidential over plain for every action, client count and run measured
/// in both modes, in the order of the plain rows.
pub fn ratios(warm: &[WarmRow]) -> Vec<RatioRow> {
    warm.iter()
        .filter(|row| row.mode == Mode::Plain)
        .filter_map(|plain| {
            let sealed = warm.iter().find(|row| {
                row.mode == Mode::Confidential
                    && row.action == plain.action
                    && row.clients == plain.clients
                    && row.run == plain.run
            })?;
            let (slice_min, slice_max) =
                slice_ratio_range(&plain.slice_requests, &sealed.slice_requests);
            Some(RatioRow {
                action: plain.action.clone(),
                clients: plain.clients,
                run: plain.run,
                throughput_ratio: sealed.summary.throughput_rps / plain.summary.throughput_rps,
                slice_throughput_ratio_min: slice_min,
                slice_throughput_ratio_max: slice_max,
                p50_ratio: sealed.summary.p50_ms / plain.summary.p50_ms,
                cpu_ratio: sealed.summary.cpu_us_per_request / plain.summary.cpu_us_per_request,
                node_cpu_ratio: sealed.summary.node_cpu_us_per_request
                    / plain.summary.node_cpu_us_per_request,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::coldstart;
    use crate::density::{MemorySample, PerInstance};
    use crate::goals::evaluate_goals;

    pub(crate) fn summary(rps: f64, p50: f64) -> LatencySummary {
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
            node_cpu_us_per_request: 0.75e6 / rps,
            client_cpu_us_per_request: 0.25e6 / rps,
        }
    }

    pub(crate) fn warm(mode: Mode, clients: usize, rps: f64, p50: f64) -> WarmRow {
        WarmRow {
            action: "noop".into(),
            mode,
            clients,
            run: 1,
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
        // The JS hello: 0.96 of plain at one client, 0.9 at eight.
        let mut js_confidential = Vec::new();
        for (mode, clients, rps, p50) in [
            (Mode::Plain, 1, 1500.0, 0.6),
            (Mode::Confidential, 1, 1440.0, 0.63),
            (Mode::Plain, 8, 3000.0, 2.4),
            (Mode::Confidential, 8, 2700.0, 2.6),
        ] {
            let mut row = self::warm(mode, clients, rps, p50);
            row.action = crate::javascript::JS_ACTION.into();
            row.slice_requests = match mode {
                Mode::Plain => vec![100, 100],
                Mode::Confidential => vec![95, 97],
            };
            js_confidential.push(row);
        }
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
        let js_idle = MemorySample {
            rss_bytes: (50 << 20) + 2_000 * (1 << 20),
            ..MemorySample::default()
        };
        let js_started = MemorySample {
            rss_bytes: (50 << 20) + 2_000 * (2 << 20),
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
                runs: 1,
                growth_records: 1_000_000,
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
                action: "noop".into(),
                start_note: None,
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
            js_density: Some(DensityReport {
                action: crate::density::JS_ACTION.into(),
                start_note: Some("no envelope".into()),
                instances: 2_000,
                allocator: "pooling".into(),
                fallback: None,
                instantiate_ms: 900.0,
                start_ms: 4000.0,
                before,
                idle: js_idle,
                started: js_started,
                per_idle: PerInstance::between(&before, &js_idle, 2_000),
                per_started: PerInstance::between(&before, &js_started, 2_000),
            }),
            growth: Some(GrowthReport {
                records: 1_000_000,
                preload_s: 60.0,
                data_dir_bytes: 900 << 20,
                data_dir_fs: Some("ext4".into()),
                rows: vec![
                    crate::growth::GrowthRow::new(1, summary(2000.0, 0.5), summary(1900.0, 0.52)),
                    crate::growth::GrowthRow::new(8, summary(4000.0, 2.0), summary(3400.0, 2.3)),
                ],
            }),
            floors: Some(Floors {
                api_get: summary(9000.0, 0.11),
                fsync_ms: Quantiles::of([0.4, 0.5, 0.6]),
            }),
            warm,
            js: crate::javascript::JsReport {
                rows: vec![crate::javascript::JsRow::new(
                    1,
                    summary(2000.0, 0.5),
                    summary(1500.0, 0.6),
                )],
                confidential_ratios: ratios(&js_confidential),
                confidential: js_confidential,
                cold: Some(crate::javascript::JsCold {
                    runs: 3,
                    wasm_ms: Quantiles::of([3.0, 4.0, 5.0]),
                    js_ms: Quantiles::of([4.0, 5.0, 6.0]),
                    node_ms: Some(Quantiles::of([40.0, 45.0, 50.0])),
                }),
            },
            gateway: crate::gateway::GatewayReport {
                rows: vec![
                    crate::gateway::GatewayRow::new(
                        1,
                        crate::gateway::GatewayLink::InProcess,
                        summary(2000.0, 0.5),
                        summary(1700.0, 0.6),
                    ),
                    // Over HTTPS: never judged (it would pass at 1 client
                    // and fail at 8 the other way round).
                    crate::gateway::GatewayRow::new(
                        1,
                        crate::gateway::GatewayLink::Https,
                        summary(2000.0, 0.5),
                        summary(1000.0, 0.9),
                    ),
                    crate::gateway::GatewayRow::new(
                        8,
                        crate::gateway::GatewayLink::InProcess,
                        summary(4000.0, 2.0),
                        summary(3000.0, 2.6),
                    ),
                    crate::gateway::GatewayRow::new(
                        8,
                        crate::gateway::GatewayLink::Https,
                        summary(4000.0, 2.0),
                        summary(3800.0, 2.2),
                    ),
                ],
                handshakes: vec![
                    crate::gateway::HandshakeRow {
                        listener: "node".into(),
                        connections: 1000,
                        tcp_p50_ms: 0.06,
                        full_p50_ms: 0.45,
                        full_p90_ms: 0.5,
                        resumed_p50_ms: 0.3,
                        resumed_p90_ms: 0.35,
                        resumed: 1000,
                    },
                    crate::gateway::HandshakeRow {
                        listener: "gateway".into(),
                        connections: 1000,
                        tcp_p50_ms: 0.06,
                        full_p50_ms: 0.7,
                        full_p90_ms: 0.8,
                        resumed_p50_ms: 0.31,
                        resumed_p90_ms: 0.36,
                        resumed: 1000,
                    },
                ],
            },
            cluster: crate::cluster::ClusterReport {
                not_measured: None,
                rows: vec![
                    crate::cluster::tests::row(0, 1, 2000.0, 0.5, 400.0),
                    crate::cluster::tests::row(0, 8, 4000.0, 2.0, 350.0),
                    crate::cluster::tests::row(1, 1, 1000.0, 1.0, 900.0),
                    crate::cluster::tests::row(1, 8, 3000.0, 2.6, 700.0),
                    crate::cluster::tests::row(2, 8, 3200.0, 2.5, 720.0),
                    crate::cluster::tests::row(3, 8, 3300.0, 2.4, 740.0),
                ],
            },
            goals: Vec::new(),
            notes: vec!["a note".into()],
            plot: None,
        };
        report.goals = evaluate_goals(&report);
        report
    }

    /// A report of a run that measured nothing.
    pub(crate) fn empty_report() -> Report {
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
        report.js_density = None;
        report.growth = None;
        report.cluster = crate::cluster::ClusterReport {
            not_measured: Some(crate::cluster::BACKENDS_MISSING.into()),
            rows: Vec::new(),
        };
        report.floors = None;
        report.gateway = crate::gateway::GatewayReport::default();
        report.js = crate::javascript::JsReport::default();
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
        assert_eq!(json["goals"][0]["verdict"], "FAIL");
        assert_eq!(json["goals"][1]["verdict"], "n/a");
        assert_eq!(json["goals"][1]["measured"], 0.5);
        assert_eq!(json["growth"]["records"], 1_000_000);
        assert_eq!(json["growth"]["rows"][1]["throughputRatio"], 0.85);
        assert_eq!(json["warm"][0]["run"], 1);
        assert_eq!(json["warm"][0]["nodeCpuUsPerRequest"], 375.0);
        assert_eq!(json["ratios"][0]["nodeCpuRatio"], 2.0);
        assert_eq!(json["tee"]["hardware"], false);
        assert_eq!(json["machine"]["debugAssertions"], false);
    }
}
