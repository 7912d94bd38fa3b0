//! Chains: sequences of 1, 5 and 10 `noop` steps, plain and confidential,
//! invoked blocking by one client on the same node in the same run.
//!
//! A plain sequence is orchestrated by the controller, one activation per
//! step. A confidential one is the same sequence of a confidential `noop`,
//! measured two ways:
//! * in a chain session (the steady state of a client that runs the
//!   sequence more than once): the untimed first invoke opens the session,
//!   then each run seals its hops with the keys that run established, the
//!   broker admits each (run, step) once, and the client verifies every
//!   step's MAC receipt (position, code, input and output hashes);
//! * as first runs (a client without sessions, like the CLI): each invoke
//!   signs a chain ticket, seals each hop with HPKE to the next step's
//!   action key, and verifies every step's signed receipt and evidence.
//!
//! All of that is in the confidential latency.

use std::sync::Arc;

use serde::Serialize;

use super::alternate;
use super::load::LatencySummary;
use super::progress::Progress;
use super::scenarios::{
    Modules, Node, Plan, confidential_operation, invoke_confidential, invoke_operation,
};
use crate::model::Mode;

/// The chain lengths measured.
pub const LENGTHS: [usize; 3] = [1, 5, 10];
/// The plain and confidential `noop` the chains are made of (names of
/// nearly equal length, as for the warm actions).
const PLAIN_STEP: &str = "bench-step-plain";
const CONFIDENTIAL_STEP: &str = "bench-step-conf";

/// One chain length in one mode.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainRow {
    /// Steps in the sequence.
    pub steps: usize,
    /// Plain or confidential.
    pub mode: Mode,
    /// A confidential chain measured as first runs (no chain session).
    pub first_run: bool,
    /// End-to-end blocking invoke latency, one client.
    #[serde(flatten)]
    pub summary: LatencySummary,
}

/// What the chain rows say about the cost of a confidential hop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainSummary {
    /// The longest chain measured in both modes.
    pub steps: usize,
    /// (confidential p50 − plain p50) / steps at that length, ms.
    pub per_hop_overhead_ms: f64,
    /// The same from the slopes between the shortest and longest chain:
    /// ((conf(n) − conf(1)) − (plain(n) − plain(1))) / (n − 1), ms; it
    /// leaves out what a chain pays once (ticket, first sealing, opening).
    pub per_hop_overhead_slope_ms: f64,
    /// Plain p50 added per step (slope), ms.
    pub plain_per_hop_ms: f64,
    /// Confidential p50 added per step (slope), ms.
    pub confidential_per_hop_ms: f64,
    /// Confidential p50 / plain p50 at the longest length.
    pub ratio: f64,
    /// For first runs (no chain session) at the longest length, when
    /// measured: (first-run p50 − plain p50) / steps, ms.
    pub first_run_per_hop_overhead_ms: Option<f64>,
    /// First-run p50 / plain p50 at the longest length, when measured.
    pub first_run_ratio: Option<f64>,
}

impl ChainSummary {
    /// The summary of `rows`, if the shortest and longest lengths were
    /// measured in both modes (and they differ).
    pub fn of(rows: &[ChainRow]) -> Option<Self> {
        let p50_of = |steps: usize, mode: Mode, first_run: bool| {
            rows.iter()
                .find(|row| row.steps == steps && row.mode == mode && row.first_run == first_run)
                .map(|row| row.summary.p50_ms)
                .filter(|value| value.is_finite())
        };
        let p50 = |steps: usize, mode: Mode| p50_of(steps, mode, false);
        let both = |steps: usize| Some((p50(steps, Mode::Plain)?, p50(steps, Mode::Confidential)?));
        let mut lengths: Vec<usize> = rows
            .iter()
            .map(|row| row.steps)
            .filter(|&steps| both(steps).is_some())
            .collect();
        lengths.sort_unstable();
        let (&short, &long) = (lengths.first()?, lengths.last()?);
        if short == long {
            return None;
        }
        let (plain_short, conf_short) = both(short)?;
        let (plain_long, conf_long) = both(long)?;
        let span = (long - short) as f64;
        let plain_per_hop = (plain_long - plain_short) / span;
        let confidential_per_hop = (conf_long - conf_short) / span;
        let first_run_long = p50_of(long, Mode::Confidential, true);
        Some(Self {
            steps: long,
            per_hop_overhead_ms: (conf_long - plain_long) / long as f64,
            per_hop_overhead_slope_ms: confidential_per_hop - plain_per_hop,
            plain_per_hop_ms: plain_per_hop,
            confidential_per_hop_ms: confidential_per_hop,
            ratio: conf_long / plain_long,
            first_run_per_hop_overhead_ms: first_run_long
                .map(|first| (first - plain_long) / long as f64),
            first_run_ratio: first_run_long.map(|first| first / plain_long),
        })
    }
}

/// Creates the steps and the sequences, then measures every length: the
/// plain chain, the confidential one in a chain session, and the
/// confidential one as first runs, side by side (see [`alternate`]).
pub async fn measure(
    node: &Node,
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<Vec<ChainRow>> {
    node.put_plain(PLAIN_STEP, &modules.noop, true).await?;
    node.put_confidential(CONFIDENTIAL_STEP, &modules.noop, true)
        .await?;
    let one_shot = Arc::new(node.one_shot_owner().await?);
    let spec = super::load::LoadSpec {
        clients: 1,
        warmup: plan.warmup.min(plan.chain_duration),
        duration: plan.chain_duration,
    };
    let mut rows = Vec::new();
    for steps in LENGTHS {
        let mut names = Vec::new();
        for (tag, step) in [("plain", PLAIN_STEP), ("conf", CONFIDENTIAL_STEP)] {
            let name = format!("bench-chain-{steps}-{tag}");
            node.put_sequence(&name, vec![node.qualified(step); steps], tag == "conf")
                .await?;
            names.push(name);
        }
        let (plain, confidential) = (&names[0], &names[1]);
        // The first run of each client opens nothing (one-shot) or its
        // chain session (the owner), untimed.
        invoke_confidential(&one_shot, confidential).await?;
        let operations = [
            invoke_operation(node, plain, Mode::Plain).await?,
            invoke_operation(node, confidential, Mode::Confidential).await?,
            confidential_operation(one_shot.clone(), confidential.as_str().into()),
        ];
        let label = format!("chains of {steps}: plain, session, first runs");
        let summaries = alternate::side_by_side(&label, spec, &operations, progress).await?;
        let variants = [
            (Mode::Plain, false),
            (Mode::Confidential, false),
            (Mode::Confidential, true),
        ];
        for ((mode, first_run), measured) in variants.into_iter().zip(summaries) {
            rows.push(ChainRow {
                steps,
                mode,
                first_run,
                summary: measured.summary,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(steps: usize, mode: Mode, p50: f64) -> ChainRow {
        ChainRow {
            steps,
            mode,
            first_run: false,
            summary: LatencySummary {
                requests: 10,
                errors: 0,
                window_s: 1.0,
                throughput_rps: 1e3 / p50,
                mean_ms: p50,
                p50_ms: p50,
                p90_ms: p50,
                p99_ms: p50,
                min_ms: p50,
                max_ms: p50,
                cpu_us_per_request: f64::NAN,
                node_cpu_us_per_request: f64::NAN,
                client_cpu_us_per_request: f64::NAN,
            },
        }
    }

    #[test]
    fn overheads_come_from_the_longest_chain_and_the_slopes() {
        let rows = vec![
            row(1, Mode::Plain, 1.0),
            row(1, Mode::Confidential, 2.0),
            row(5, Mode::Plain, 3.0),
            row(5, Mode::Confidential, 5.5),
            row(10, Mode::Plain, 5.5),
            row(10, Mode::Confidential, 8.0),
        ];
        let summary = ChainSummary::of(&rows).expect("summary");
        assert_eq!(summary.steps, 10);
        assert!((summary.per_hop_overhead_ms - 0.25).abs() < 1e-12);
        // Plain adds 0.5 ms a step, confidential 6/9 ms.
        assert!((summary.plain_per_hop_ms - 0.5).abs() < 1e-12);
        assert!((summary.confidential_per_hop_ms - 6.0 / 9.0).abs() < 1e-12);
        assert!((summary.per_hop_overhead_slope_ms - (6.0 / 9.0 - 0.5)).abs() < 1e-12);
        assert!((summary.ratio - 8.0 / 5.5).abs() < 1e-12);
        assert_eq!(summary.first_run_ratio, None, "no first runs measured");

        let mut with_first_runs = rows.clone();
        let mut first = row(10, Mode::Confidential, 11.0);
        first.first_run = true;
        with_first_runs.push(first);
        let summary = ChainSummary::of(&with_first_runs).expect("summary");
        assert!(
            (summary.ratio - 8.0 / 5.5).abs() < 1e-12,
            "sessions unchanged"
        );
        assert_eq!(summary.first_run_ratio, Some(2.0));
        assert!((summary.first_run_per_hop_overhead_ms.expect("measured") - 0.55).abs() < 1e-12);
    }

    #[test]
    fn lengths_missing_a_mode_are_left_out() {
        let rows = vec![
            row(1, Mode::Plain, 1.0),
            row(1, Mode::Confidential, 2.0),
            row(5, Mode::Plain, 3.0),
            row(5, Mode::Confidential, 4.0),
            row(10, Mode::Plain, 5.0),
        ];
        let summary = ChainSummary::of(&rows).expect("1 and 5");
        assert_eq!(summary.steps, 5);
        assert!((summary.ratio - 4.0 / 3.0).abs() < 1e-12);
        assert!(ChainSummary::of(&rows[..2]).is_none(), "one length");
        assert!(ChainSummary::of(&[]).is_none());
        let mut unmeasured = rows.clone();
        unmeasured[3].summary.p50_ms = f64::NAN;
        assert!(
            ChainSummary::of(&unmeasured).is_none(),
            "5 has no confidential figure and 10 no confidential row"
        );
    }
}
