//! What a benchmark run found, and how it is shown: a [`Report`] holds every
//! figure measured in the run; [`Report::render_table`] prints it for
//! people and `serde` gives the same figures as JSON.
//!
//! Nothing here measures: ratios and goal verdicts are derived from the
//! measured rows only, so a figure that was not measured shows as `-`
//! (`null` in JSON) and its goal as `n/a`, never as a made-up number.

use std::fmt::Write as _;

use serde::Serialize;

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
    /// Confidential p50 / plain p50 (lower is better).
    pub p50_ratio: f64,
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
            samples,
        }
    }
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
    /// The node's TEE.
    pub tee: TeeFacts,
    /// The run's configuration.
    pub settings: Settings,
    /// Warm closed-loop measurements.
    pub warm: Vec<WarmRow>,
    /// Confidential over plain, from `warm`.
    pub ratios: Vec<RatioRow>,
    /// Cold starts.
    pub cold: Vec<ColdRow>,
    /// Targets and verdicts, from the rows above.
    pub goals: Vec<GoalCheck>,
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
            Some(RatioRow {
                action: plain.action.clone(),
                clients: plain.clients,
                throughput_ratio: sealed.summary.throughput_rps / plain.summary.throughput_rps,
                p50_ratio: sealed.summary.p50_ms / plain.summary.p50_ms,
            })
        })
        .collect()
}

/// The goals of the benchmark issue, evaluated on what was measured.
/// `concurrency` is the "N clients" figure.
pub fn evaluate_goals(
    warm: &[WarmRow],
    ratios: &[RatioRow],
    cold: &[ColdRow],
    concurrency: usize,
) -> Vec<GoalCheck> {
    let warm_p50 = |mode: Mode, clients: usize| {
        warm.iter()
            .find(|row| row.action == "noop" && row.mode == mode && row.clients == clients)
            .map(|row| row.summary.p50_ms)
    };
    let ratio = |clients: usize| {
        ratios
            .iter()
            .find(|row| row.action == "noop" && row.clients == clients)
    };
    let cold_total = |action: &str, mode: Mode| {
        cold.iter()
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
            "load      closed loop, {} s per measurement after {} s warm-up; N = {} clients; {} cold starts per action",
            trim_float(s.duration_s),
            trim_float(s.warmup_s),
            s.concurrency,
            s.cold_runs
        );

        let _ = writeln!(out, "\nWarm blocking invokes (latency in ms)");
        let mut table = Table::new(&[
            "action", "mode", "clients", "requests", "errors", "req/s", "p50", "p90", "p99",
            "mean", "max",
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
            ]);
        }
        out.push_str(&table.render());

        let _ = writeln!(out, "\nConfidential / plain");
        let mut table = Table::new(&["action", "clients", "throughput", "p50"]);
        for row in &self.ratios {
            table.row(vec![
                row.action.clone(),
                row.clients.to_string(),
                ratio(row.throughput_ratio),
                ratio(row.p50_ratio),
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
mod tests {
    use super::*;

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
        }
    }

    fn warm(mode: Mode, clients: usize, rps: f64, p50: f64) -> WarmRow {
        WarmRow {
            action: "noop".into(),
            mode,
            clients,
            summary: summary(rps, p50),
        }
    }

    fn cold(action: &str, mode: Mode, totals: &[f64]) -> ColdRow {
        let samples = totals
            .iter()
            .map(|total| ColdSample {
                create_ms: total / 2.0,
                first_invoke_ms: total / 2.0,
                init_time_ms: Some(1.0),
            })
            .collect();
        ColdRow::from_samples(action, mode, samples, 0)
    }

    fn report() -> Report {
        let warm = vec![
            warm(Mode::Plain, 1, 2000.0, 0.5),
            warm(Mode::Plain, 8, 4000.0, 2.0),
            warm(Mode::Confidential, 1, 1000.0, 1.0),
            warm(Mode::Confidential, 8, 3900.0, 2.1),
        ];
        let ratios = ratios(&warm);
        let cold = vec![
            cold("noop", Mode::Plain, &[10.0, 12.0]),
            cold("hello", Mode::Plain, &[40.0, 60.0, 45.0]),
            cold("noop", Mode::Confidential, &[30.0]),
        ];
        let goals = evaluate_goals(&warm, &ratios, &cold, 8);
        Report {
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
            },
            warm,
            ratios,
            cold,
            goals,
            notes: vec!["a note".into()],
        }
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
            },
            ColdSample {
                create_ms: 10.0,
                first_invoke_ms: 2.0,
                init_time_ms: Some(4.0),
            },
            ColdSample {
                create_ms: 3.0,
                first_invoke_ms: 3.0,
                init_time_ms: Some(2.0),
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
            ]
        );
        assert_eq!(report.goals[5].measured, Some(45.0));
    }

    #[test]
    fn unmeasured_goals_are_not_applicable() {
        let goals = evaluate_goals(&[], &[], &[], 1);
        assert_eq!(goals.len(), 5, "one client count only");
        assert!(goals.iter().all(|g| g.verdict == Verdict::NotMeasured));
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
        for section in [
            "Warm blocking invokes",
            "Confidential / plain",
            "Cold start",
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
