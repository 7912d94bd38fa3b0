//! The benchmark's goals: each a target on a figure of the run, and its
//! verdict. A goal whose figure was not measured in this run is `n/a`,
//! never judged on a figure from elsewhere.
//!
//! The targets are issue 16's (a warm invoke at least as fast as `wasmtime
//! serve`, confidential at the plain speed in every one of five runs,
//! cheap chain hops, a store that does not slow down as it grows), issue
//! 18's (confidential JavaScript at 0.95 of plain's throughput, 2,000 warm
//! instances of one JS action in 2 GiB), issue 19's (the attested gateway
//! at 0.8 of plain's throughput), issue 20's
//! (one invoker behind NATS + PostgreSQL at 0.7 of the embedded node's
//! throughput) and the older ones that still apply (cold starts, the
//! enclave pool, density).

use serde::Serialize;

use crate::coldstart;
use crate::density::DensityReport;
use crate::model::{Mode, Report, percentile};

/// Separate warm runs the confidential/plain goals ask for: each must meet
/// them.
pub const REQUIRED_RUNS: usize = 5;
/// Preloaded records the growth goal asks for.
pub const REQUIRED_GROWTH_RECORDS: usize = 1_000_000;

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
    /// Why a figure that was measured gets no verdict, or how it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
            note: None,
        }
    }

    /// This check, with `note` shown beside it.
    pub fn noted(mut self, note: String) -> Self {
        self.note = Some(note);
        self
    }

    /// This check, judged only when `enough` holds: a figure from fewer
    /// runs or records than the goal asks for is shown, with `note` saying
    /// what is missing, but gets no verdict.
    pub fn judged_only_if(mut self, enough: bool, note: String) -> Self {
        if !enough && self.verdict != Verdict::NotMeasured {
            self.verdict = Verdict::NotMeasured;
            self.note = Some(note);
        }
        self
    }
}

/// The goals, evaluated on what `report` measured (its `goals` are
/// ignored). `settings.concurrency` is the "N clients" figure.
pub fn evaluate_goals(report: &Report) -> Vec<GoalCheck> {
    let concurrency = report.settings.concurrency;
    let mut clients = vec![1];
    if concurrency != 1 {
        clients.push(concurrency);
    }
    let mut goals = Vec::new();
    warm_goals(report, &clients, &mut goals);
    cold_goals(report, &mut goals);
    chain_goals(report, &mut goals);
    peer_goals(report, &clients, &mut goals);
    growth_goals(report, &clients, &mut goals);
    gateway_goals(report, &clients, &mut goals);
    cluster_goals(report, &clients, &mut goals);
    javascript_goals(report, &clients, &mut goals);
    goals.push(density_goal(report));
    goals.push(javascript_density_goal(report));
    goals
}

/// How many idle instances fit in 2 GiB: extrapolated from the RSS growth
/// per instance, or, when the RSS did not grow (the instances' host-side
/// state fit in heap pages freed by earlier scenarios), the instances
/// measured alive at once within the budget, a lower bound said as such.
fn density_goal(report: &Report) -> GoalCheck {
    density_check(
        "warm instances in 2 GiB (RSS, instantiated, not run)",
        crate::density::WASM_GOAL,
        report.density.as_ref(),
    )
}

/// Issue 18's density goal, on the instances of the JavaScript engine,
/// judged after one `_start` in each: an instance that never started has
/// touched almost none of its heap, so counting it would flatter the
/// engine; a started one holds the engine's initialised heap a warm
/// instance keeps (no action code has run in it). Beside it, the count as
/// [`density_goal`] makes it (instantiated, not run).
fn javascript_density_goal(report: &Report) -> GoalCheck {
    let density = report.js_density.as_ref();
    let started = density.and_then(|density| density.per_started.fit_in_budget);
    let check = GoalCheck::new(
        JS_DENSITY_GOAL.into(),
        Bound::AtLeast,
        crate::density::JS_GOAL,
        Unit::Count,
        started.map(|fit| fit as f64),
    );
    let idle = density_check("", crate::density::JS_GOAL, density);
    match idle.measured {
        Some(idle_count) => check.noted(format!(
            "{idle_count:.0} instantiated, not run{}",
            idle.note
                .map(|note| format!(" ({note})"))
                .unwrap_or_default()
        )),
        None => check,
    }
}

/// The name of [`javascript_density_goal`].
const JS_DENSITY_GOAL: &str =
    "warm instances of one JS action in 2 GiB (RSS, after the engine's start)";

fn density_check(goal: &str, target: f64, density: Option<&DensityReport>) -> GoalCheck {
    let extrapolated = density.and_then(|density| density.per_idle.fit_in_budget);
    let alive_within_budget =
        density.filter(|density| density.per_idle.total_rss_bytes <= crate::density::BUDGET_BYTES);
    match (extrapolated, alive_within_budget) {
        (None, Some(density)) => {
            let note = format!(
                "at least: {} alive at once, RSS grew {:.1} MiB (too little to extrapolate)",
                density.instances,
                density.per_idle.total_rss_bytes as f64 / f64::from(1u32 << 20)
            );
            // A lower bound under the target shows nothing either way.
            GoalCheck::new(
                goal.into(),
                Bound::AtLeast,
                target,
                Unit::Count,
                Some(density.instances as f64),
            )
            .noted(note.clone())
            .judged_only_if(
                density.instances as f64 >= target,
                format!("{note}; fewer instances than the goal (--density)"),
            )
        }
        (extrapolated, _) => GoalCheck::new(
            goal.into(),
            Bound::AtLeast,
            target,
            Unit::Count,
            extrapolated.map(|count| count as f64),
        ),
    }
}

/// The runs of the warm noop pair: every run with a confidential/plain
/// ratio at `clients`.
fn runs_at(report: &Report, clients: usize) -> Vec<&crate::model::RatioRow> {
    report
        .ratios
        .iter()
        .filter(|row| row.action == "noop" && row.clients == clients)
        .collect()
}

fn warm_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    // The median run's p50 (nearest rank: a measured figure).
    let mut p50s: Vec<f64> = report
        .warm
        .iter()
        .filter(|row| row.action == "noop" && row.mode == Mode::Plain && row.clients == 1)
        .map(|row| row.summary.p50_ms)
        .filter(|value| value.is_finite())
        .collect();
    p50s.sort_by(f64::total_cmp);
    let runs = p50s.len();
    let mut check = GoalCheck::new(
        "warm p50, plain noop, 1 client".into(),
        Bound::AtMost,
        0.25,
        Unit::Ms,
        (!p50s.is_empty()).then(|| percentile(&p50s, 0.5)),
    );
    if runs > 1 {
        check = check.noted(format!("median of {runs} runs"));
    }
    goals.push(check);
    let worst = |n: usize, field: fn(&crate::model::RatioRow) -> f64, bound: Bound| {
        let values: Vec<f64> = runs_at(report, n)
            .into_iter()
            .map(field)
            .filter(|value| value.is_finite())
            .collect();
        let worst = match bound {
            Bound::AtLeast => values.iter().copied().reduce(f64::min),
            Bound::AtMost => values.iter().copied().reduce(f64::max),
        };
        (worst, values.len())
    };
    for (what, bound, target, field) in [
        (
            "throughput",
            Bound::AtLeast,
            0.95,
            (|row: &crate::model::RatioRow| row.throughput_ratio)
                as fn(&crate::model::RatioRow) -> f64,
        ),
        ("p50", Bound::AtMost, 1.10, |row| row.p50_ratio),
    ] {
        for &n in clients {
            let (measured, runs) = worst(n, field, bound);
            let mut check = GoalCheck::new(
                format!("confidential/plain {what}, {}, every run", clients_label(n)),
                bound,
                target,
                Unit::Ratio,
                measured,
            );
            if runs > 0 {
                check = check.noted(format!("worst of {runs} runs"));
            }
            goals.push(check.judged_only_if(
                runs >= REQUIRED_RUNS,
                format!("worst of {runs} runs; the goal needs {REQUIRED_RUNS} (--runs)"),
            ));
        }
    }
}

fn cold_goals(report: &Report, goals: &mut Vec<GoalCheck>) {
    let cold_total = |action: &str, mode: Mode| {
        report
            .cold
            .iter()
            .find(|row| row.action == action && row.mode == mode && row.runs > 0)
            .map(|row| row.total_ms.p50)
    };
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
}

fn chain_goals(report: &Report, goals: &mut Vec<GoalCheck>) {
    let chain = report.chain_summary.filter(|summary| summary.steps == 10);
    goals.push(GoalCheck::new(
        "chain of 10, per hop over plain, in a chain session (p50)".into(),
        Bound::AtMost,
        0.05,
        Unit::Ms,
        chain.map(|summary| summary.per_hop_overhead_ms),
    ));
    goals.push(GoalCheck::new(
        "chain of 10, per hop over plain, first runs (p50)".into(),
        Bound::AtMost,
        0.3,
        Unit::Ms,
        chain.and_then(|summary| summary.first_run_per_hop_overhead_ms),
    ));
    goals.push(GoalCheck::new(
        "confidential/plain chain latency p50, 10 steps, in a chain session".into(),
        Bound::AtMost,
        1.2,
        Unit::Ratio,
        chain.map(|summary| summary.ratio),
    ));
}

fn peer_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    let peer_ratio = |n: usize| report.peer.ratios.iter().find(|row| row.clients == n);
    for (mode, target) in [(Mode::Plain, 1.0), (Mode::Confidential, 0.45)] {
        for &n in clients {
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
}

fn growth_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    let growth = report.growth.as_ref();
    for &n in clients {
        let row = growth.and_then(|g| g.rows.iter().find(|row| row.clients == n));
        let records = growth.map_or(0, |g| g.records);
        goals.push(
            GoalCheck::new(
                format!(
                    "warm plain throughput, preloaded/empty store, {}",
                    clients_label(n)
                ),
                Bound::AtLeast,
                0.9,
                Unit::Ratio,
                row.map(|row| row.throughput_ratio),
            )
            .judged_only_if(
                records >= REQUIRED_GROWTH_RECORDS,
                format!("{records} records preloaded; the goal needs {REQUIRED_GROWTH_RECORDS}"),
            ),
        );
    }
}

fn gateway_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    for &n in clients {
        // Judged on the gateway beside the node (`clemmys serve --gateway`);
        // the one over HTTPS is reported beside it.
        let row = report
            .gateway
            .rows
            .iter()
            .find(|row| row.clients == n && row.link == crate::gateway::GatewayLink::InProcess);
        goals.push(GoalCheck::new(
            format!(
                "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, {}",
                clients_label(n)
            ),
            Bound::AtLeast,
            crate::gateway::GATEWAY_THROUGHPUT_GOAL,
            Unit::Ratio,
            row.map(|row| row.throughput_ratio),
        ));
    }
}

fn cluster_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    for &n in clients {
        let check = GoalCheck::new(
            format!(
                "warm plain throughput, 1 invoker over NATS + PostgreSQL / embedded, {}",
                clients_label(n)
            ),
            Bound::AtLeast,
            crate::cluster::ONE_INVOKER_GOAL,
            Unit::Ratio,
            report.cluster.one_invoker_ratio(n),
        );
        goals.push(match &report.cluster.not_measured {
            Some(why) => check.noted(why.clone()),
            None => check,
        });
    }
}

/// Issue 18's confidential/plain throughput of the JS hello, on the one
/// side-by-side run of the `js` scenario at each client count.
fn javascript_goals(report: &Report, clients: &[usize], goals: &mut Vec<GoalCheck>) {
    goals.push(GoalCheck::new(
        "cold start p50, JS hello (create + first invoke)".into(),
        Bound::AtMost,
        crate::javascript::JS_COLD_GOAL_MS,
        Unit::Ms,
        report.js.cold.as_ref().map(|cold| cold.js_ms.p50),
    ));
    for &n in clients {
        goals.push(GoalCheck::new(
            format!(
                "warm JS hello p50 / warm wasm hello p50, {}",
                clients_label(n)
            ),
            Bound::AtMost,
            crate::javascript::JS_P50_GOAL,
            Unit::Ratio,
            report
                .js
                .rows
                .iter()
                .find(|row| row.clients == n)
                .map(|row| row.p50_ratio),
        ));
    }
    for &n in clients {
        let row = report
            .js
            .confidential_ratios
            .iter()
            .find(|row| row.clients == n);
        let check = GoalCheck::new(
            format!(
                "confidential/plain throughput, JS hello, {}",
                clients_label(n)
            ),
            Bound::AtLeast,
            crate::javascript::CONFIDENTIAL_THROUGHPUT_GOAL,
            Unit::Ratio,
            row.map(|row| row.throughput_ratio),
        );
        goals.push(match row {
            Some(row) if row.slice_throughput_ratio_min.is_finite() => check.noted(format!(
                "1 run; slices {:.3}-{:.3}",
                row.slice_throughput_ratio_min, row.slice_throughput_ratio_max
            )),
            _ => check,
        });
    }
}

/// `1 client`, `8 clients`.
pub fn clients_label(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chains::ChainSummary;
    use crate::model::tests::{empty_report, report};
    use crate::model::{Mode, ratios};

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
    fn idle_instances_without_rss_growth_count_as_measured_alive() {
        const GOAL: &str = "warm instances in 2 GiB (RSS, instantiated, not run)";
        let mut report = report();
        let density = report
            .density
            .as_mut()
            .expect("the fixture measures density");
        density.idle = density.before;
        density.per_idle =
            crate::density::PerInstance::between(&density.before, &density.idle, 6_000);
        let check = evaluate_goals(&report)
            .into_iter()
            .find(|check| check.goal == GOAL)
            .expect("the density goal");
        assert_eq!(check.measured, Some(6_000.0));
        assert_eq!(check.verdict, Verdict::Pass);
        assert!(
            check
                .note
                .as_deref()
                .is_some_and(|note| note.starts_with("at least"))
        );

        // Beyond the budget, nothing is claimed.
        let density = report
            .density
            .as_mut()
            .expect("the fixture measures density");
        density.per_idle.total_rss_bytes = crate::density::BUDGET_BYTES + 1;
        let check = evaluate_goals(&report)
            .into_iter()
            .find(|check| check.goal == GOAL)
            .expect("the density goal");
        assert_eq!(check.verdict, Verdict::NotMeasured);
    }

    #[test]
    fn the_javascript_density_goal_counts_started_engine_instances() {
        let mut report = report();
        // The fixture: 1 MiB per idle engine instance (2,048 fit), 2 MiB
        // after one _start each (1,024 fit): judged on the started ones.
        let check = goal(&report, JS_DENSITY_GOAL);
        assert_eq!(check.measured, Some(1_024.0));
        assert_eq!(check.verdict, Verdict::Fail);
        assert_eq!(check.note.as_deref(), Some("2048 instantiated, not run"));
        let density = report.js_density.as_mut().expect("measured");
        density.per_started = crate::density::PerInstance::between(
            &density.before,
            &crate::density::MemorySample {
                rss_bytes: density.before.rss_bytes + 2_500 * (1 << 19),
                ..density.before
            },
            2_500,
        );
        report.goals = evaluate_goals(&report);
        let check = goal(&report, JS_DENSITY_GOAL);
        assert_eq!(
            (check.verdict, check.measured),
            (Verdict::Pass, Some(4_096.0))
        );
        report.js_density = None;
        report.goals = evaluate_goals(&report);
        assert_eq!(goal(&report, JS_DENSITY_GOAL).verdict, Verdict::NotMeasured);
    }

    /// The fixture with the warm noop pair measured in `runs` runs, the
    /// confidential throughput ratio of run `k` (1-based) at one client
    /// being `0.94 + 0.01 * k`.
    fn with_runs(runs: usize) -> Report {
        let mut report = report();
        report.warm.retain(|row| row.action != "noop");
        for run in 1..=runs {
            for (mode, clients, rps, p50) in [
                (Mode::Plain, 1, 5000.0, 0.2),
                (
                    Mode::Confidential,
                    1,
                    5000.0 * (0.94 + 0.01 * run as f64),
                    0.21,
                ),
                (Mode::Plain, 8, 9000.0, 0.8),
                (Mode::Confidential, 8, 8800.0, 0.84),
            ] {
                let mut row = crate::model::tests::warm(mode, clients, rps, p50);
                row.run = run;
                report.warm.push(row);
            }
        }
        report.ratios = ratios(&report.warm);
        report.settings.runs = runs;
        report.goals = evaluate_goals(&report);
        report
    }

    fn goal<'r>(report: &'r Report, name: &str) -> &'r GoalCheck {
        report
            .goals
            .iter()
            .find(|g| g.goal == name)
            .unwrap_or_else(|| panic!("no goal {name}"))
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
                ("warm p50, plain noop, 1 client", Verdict::Fail),
                (
                    "confidential/plain throughput, 1 client, every run",
                    Verdict::NotMeasured
                ),
                (
                    "confidential/plain throughput, 8 clients, every run",
                    Verdict::NotMeasured
                ),
                (
                    "confidential/plain p50, 1 client, every run",
                    Verdict::NotMeasured
                ),
                (
                    "confidential/plain p50, 8 clients, every run",
                    Verdict::NotMeasured
                ),
                (
                    "cold start p50, plain hello (create + first invoke)",
                    Verdict::Pass
                ),
                (
                    "cold start p50, confidential noop (create + first invoke)",
                    Verdict::Fail
                ),
                (
                    "cold confidential invoke with the pool (p50, once provisioned)",
                    Verdict::Pass
                ),
                (
                    "chain of 10, per hop over plain, in a chain session (p50)",
                    Verdict::Fail
                ),
                (
                    "chain of 10, per hop over plain, first runs (p50)",
                    Verdict::NotMeasured
                ),
                (
                    "confidential/plain chain latency p50, 10 steps, in a chain session",
                    Verdict::Pass
                ),
                (
                    "ours/wasmtime serve throughput, plain hello, 1 client",
                    Verdict::Fail
                ),
                (
                    "ours/wasmtime serve throughput, plain hello, 8 clients",
                    Verdict::Fail
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
                    "warm plain throughput, preloaded/empty store, 1 client",
                    Verdict::Pass
                ),
                (
                    "warm plain throughput, preloaded/empty store, 8 clients",
                    Verdict::Fail
                ),
                (
                    "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 1 client",
                    Verdict::Pass
                ),
                (
                    "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 8 clients",
                    Verdict::Fail
                ),
                (
                    "warm plain throughput, 1 invoker over NATS + PostgreSQL / embedded, 1 client",
                    Verdict::Fail
                ),
                (
                    "warm plain throughput, 1 invoker over NATS + PostgreSQL / embedded, 8 clients",
                    Verdict::Pass
                ),
                (
                    "cold start p50, JS hello (create + first invoke)",
                    Verdict::Pass
                ),
                (
                    "warm JS hello p50 / warm wasm hello p50, 1 client",
                    Verdict::Pass
                ),
                (
                    "warm JS hello p50 / warm wasm hello p50, 8 clients",
                    Verdict::NotMeasured
                ),
                (
                    "confidential/plain throughput, JS hello, 1 client",
                    Verdict::Pass
                ),
                (
                    "confidential/plain throughput, JS hello, 8 clients",
                    Verdict::Fail
                ),
                (
                    "warm instances in 2 GiB (RSS, instantiated, not run)",
                    Verdict::Pass
                ),
                // 1 MiB per started engine instance in the fixture.
                (JS_DENSITY_GOAL, Verdict::Fail),
            ]
        );
        let measured = |name: &str| goal(&report, name).measured.expect("measured");
        assert_eq!(
            measured("cold start p50, plain hello (create + first invoke)"),
            45.0
        );
        // (13 - 11) / 10 ms per hop; 13 / 11 end to end.
        assert!(
            (measured("chain of 10, per hop over plain, in a chain session (p50)") - 0.2).abs()
                < 1e-12
        );
        assert_eq!(
            measured("cold confidential invoke with the pool (p50, once provisioned)"),
            4.0
        );
        assert!(
            (measured("ours/wasmtime serve throughput, plain hello, 1 client") - 0.5).abs() < 1e-12
        );
        assert!(
            (measured("warm plain throughput, preloaded/empty store, 8 clients") - 0.85).abs()
                < 1e-12
        );
        assert_eq!(
            measured("warm instances in 2 GiB (RSS, instantiated, not run)"),
            32_768.0
        );
        // One run: its ratio is shown, but the goal asks for five.
        let one_run = goal(
            &report,
            "confidential/plain throughput, 1 client, every run",
        );
        assert_eq!(one_run.measured, Some(0.5));
        assert!(
            one_run
                .note
                .as_deref()
                .is_some_and(|note| note.contains("needs 5")),
            "{one_run:?}"
        );
    }

    #[test]
    fn every_one_of_five_runs_must_meet_the_confidential_goals() {
        // Runs 1..5 at one client: 0.95, 0.96, ... 0.99 with 0.94 + 0.01k.
        let report = with_runs(5);
        let throughput = goal(
            &report,
            "confidential/plain throughput, 1 client, every run",
        );
        assert_eq!(throughput.verdict, Verdict::Pass, "{throughput:?}");
        assert!((throughput.measured.expect("worst") - 0.95).abs() < 1e-12);
        assert_eq!(throughput.note.as_deref(), Some("worst of 5 runs"));
        let p50 = goal(&report, "confidential/plain p50, 8 clients, every run");
        assert_eq!(p50.verdict, Verdict::Pass);
        assert!((p50.measured.expect("worst") - 1.05).abs() < 1e-12);
        // The warm p50 goal takes the median run: 0.2 ms.
        let warm = goal(&report, "warm p50, plain noop, 1 client");
        assert_eq!((warm.verdict, warm.measured), (Verdict::Pass, Some(0.2)));

        // One run below the target fails the goal, however good the others.
        let mut report = with_runs(5);
        for row in report.warm.iter_mut() {
            if row.run == 3 && row.clients == 1 && row.mode == Mode::Confidential {
                row.summary.throughput_rps = 5000.0 * 0.949;
            }
        }
        report.ratios = ratios(&report.warm);
        report.goals = evaluate_goals(&report);
        let throughput = goal(
            &report,
            "confidential/plain throughput, 1 client, every run",
        );
        assert_eq!(throughput.verdict, Verdict::Fail);
        assert!((throughput.measured.expect("worst") - 0.949).abs() < 1e-12);
    }

    #[test]
    fn a_verdict_flips_where_the_figure_crosses_its_target() {
        for (target, bound, below, above) in [
            (0.25, Bound::AtMost, Verdict::Pass, Verdict::Fail),
            (1.0, Bound::AtLeast, Verdict::Fail, Verdict::Pass),
            (0.9, Bound::AtLeast, Verdict::Fail, Verdict::Pass),
        ] {
            let check = |value: f64| {
                GoalCheck::new("x".into(), bound, target, Unit::Ratio, Some(value)).verdict
            };
            assert_eq!(check(target - 1e-9), below, "{target} {bound:?}");
            assert_eq!(check(target + 1e-9), above, "{target} {bound:?}");
        }
        // The peer goal: our plain hello at the peer's throughput passes,
        // just under it fails.
        let mut report = report();
        for row in report.peer.rows.iter_mut() {
            row.summary.throughput_rps = 1900.0;
        }
        report.peer.ratios = crate::model::peer_ratios(&report.warm, &report.peer.rows);
        let goals = evaluate_goals(&report);
        let plain = goals
            .iter()
            .find(|g| g.goal == "ours/wasmtime serve throughput, plain hello, 1 client")
            .expect("goal");
        assert_eq!(plain.verdict, Verdict::Pass);
        for row in report.peer.rows.iter_mut() {
            row.summary.throughput_rps = 1901.0;
        }
        report.peer.ratios = crate::model::peer_ratios(&report.warm, &report.peer.rows);
        let goals = evaluate_goals(&report);
        let plain = goals
            .iter()
            .find(|g| g.goal == "ours/wasmtime serve throughput, plain hello, 1 client")
            .expect("goal");
        assert_eq!(plain.verdict, Verdict::Fail);
    }

    #[test]
    fn the_gateway_goal_is_judged_on_its_throughput_ratio_at_each_client_count() {
        let report = report();
        let one = goal(
            &report,
            "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 1 client",
        );
        assert!((one.measured.expect("measured") - 0.85).abs() < 1e-12);
        assert_eq!(one.verdict, Verdict::Pass);
        let eight = goal(
            &report,
            "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 8 clients",
        );
        assert!((eight.measured.expect("measured") - 0.75).abs() < 1e-12);
        assert_eq!(eight.verdict, Verdict::Fail);
        // Exactly at the target passes; just below fails.
        let mut report = report;
        for (rps, verdict) in [(1600.0, Verdict::Pass), (1599.0, Verdict::Fail)] {
            report.gateway.rows[0] = crate::gateway::GatewayRow::new(
                1,
                crate::gateway::GatewayLink::InProcess,
                crate::model::tests::summary(2000.0, 0.5),
                crate::model::tests::summary(rps, 0.6),
            );
            report.goals = evaluate_goals(&report);
            let one = goal(
                &report,
                "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 1 client",
            );
            assert_eq!(one.verdict, verdict, "{rps}");
        }
        // Not measured: not applicable, never judged on another figure.
        report.gateway.rows.clear();
        report.goals = evaluate_goals(&report);
        let one = goal(
            &report,
            "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 1 client",
        );
        assert_eq!((one.verdict, one.measured), (Verdict::NotMeasured, None));
    }

    #[test]
    fn the_javascript_goal_is_judged_on_its_side_by_side_run() {
        let report = report();
        let one = goal(&report, "confidential/plain throughput, JS hello, 1 client");
        assert!((one.measured.expect("measured") - 0.96).abs() < 1e-12);
        assert_eq!(one.verdict, Verdict::Pass);
        assert_eq!(one.note.as_deref(), Some("1 run; slices 0.950-0.970"));
        let eight = goal(
            &report,
            "confidential/plain throughput, JS hello, 8 clients",
        );
        assert!((eight.measured.expect("measured") - 0.9).abs() < 1e-12);
        assert_eq!(eight.verdict, Verdict::Fail);
        // The JS rows are not the wasm pair's: its goals stay on noop.
        let wasm = goal(
            &report,
            "confidential/plain throughput, 8 clients, every run",
        );
        assert!((wasm.measured.expect("measured") - 3900.0 / 4000.0).abs() < 1e-12);
    }

    #[test]
    fn a_small_preload_is_shown_but_not_judged() {
        let mut report = report();
        if let Some(growth) = report.growth.as_mut() {
            growth.records = 20_000;
        }
        let goals = evaluate_goals(&report);
        let growth = goals
            .iter()
            .find(|g| g.goal == "warm plain throughput, preloaded/empty store, 1 client")
            .expect("goal");
        assert_eq!(growth.verdict, Verdict::NotMeasured);
        assert!((growth.measured.expect("shown") - 0.95).abs() < 1e-12);
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
        assert_eq!(report.goals.len(), 19, "one client count only");
        assert!(
            report
                .goals
                .iter()
                .all(|g| g.verdict == Verdict::NotMeasured)
        );
        let cluster = goal(
            &report,
            "warm plain throughput, 1 invoker over NATS + PostgreSQL / embedded, 1 client",
        );
        assert_eq!(
            cluster.note.as_deref(),
            Some(crate::cluster::BACKENDS_MISSING)
        );
        let gateway = goal(
            &report,
            "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 1 client",
        );
        assert_eq!((gateway.measured, gateway.note.as_deref()), (None, None));
    }
}
