//! The README's results block, written by `--publish` between two marker
//! lines, so that the README shows the figures of the published run and
//! nothing else: in particular the `wasmtime serve` peer measured in that
//! run, or "not measured in this run", never a figure of an earlier run.

use std::fmt::Write as _;

use crate::goals::{Verdict, clients_label};
use crate::model::{Mode, Report, percentile};

use super::{ms, rate, ratio};

/// The line that opens the block in README.md.
pub const BEGIN: &str = "<!-- bench-results:begin (written by clemmys-bench --publish) -->";
/// The line that closes it.
pub const END: &str = "<!-- bench-results:end -->";

/// Why the block could not be put into a README.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarkerError {
    /// A marker line is missing, or the end comes before the begin.
    #[error("the README has no `{BEGIN}` line followed by a `{END}` line")]
    Missing,
}

/// `readme` with the text between its marker lines replaced by `block`.
pub fn replace_block(readme: &str, block: &str) -> Result<String, MarkerError> {
    let begin = readme.find(BEGIN).ok_or(MarkerError::Missing)?;
    let after_begin = begin + BEGIN.len();
    let end = readme
        .get(after_begin..)
        .and_then(|rest| rest.find(END))
        .map(|offset| after_begin + offset)
        .ok_or(MarkerError::Missing)?;
    let mut out = String::with_capacity(readme.len() + block.len());
    out.push_str(&readme[..after_begin]);
    out.push('\n');
    out.push_str(block.trim_end());
    out.push('\n');
    out.push_str(&readme[end..]);
    Ok(out)
}

/// The median (nearest rank) of the finite `values`; NaN without any.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

/// `low-high` of the finite `values` (one value alone), `-` without any.
fn range(values: impl IntoIterator<Item = f64>) -> String {
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    let low = values.iter().copied().reduce(f64::min);
    let high = values.iter().copied().reduce(f64::max);
    match (low, high) {
        (Some(low), Some(high)) if ratio(low) == ratio(high) => ratio(low),
        (Some(low), Some(high)) => format!("{}-{}", ratio(low), ratio(high)),
        _ => "-".into(),
    }
}

impl Report {
    /// The README's results block for this run, measured on `date`
    /// (`YYYY-MM-DD`).
    pub fn render_markdown(&self, date: &str) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(
            out,
            "Results of the published run ({date}, {} build, {} cores, {}, `{}` TEE{}; {} s \
             windows, the warm plain/confidential pair in {} separate runs, each side by side in \
             alternating slices):\n",
            m.build_profile,
            m.cores,
            m.cpu.as_deref().unwrap_or("unknown CPU"),
            self.tee.kind,
            if self.tee.hardware {
                ""
            } else {
                ": no hardware protection"
            },
            super::trim_float(s.duration_s),
            s.runs,
        );
        let _ = writeln!(
            out,
            "| measurement (p50 unless said; median of the runs) | plain | confidential | conf / \
             plain (every run) |\n| --- | --- | --- | --- |"
        );
        let mut clients: Vec<usize> = self
            .warm
            .iter()
            .filter(|row| row.action == "noop")
            .map(|row| row.clients)
            .collect();
        clients.sort_unstable();
        clients.dedup();
        for &n in &clients {
            let rows = |mode: Mode| {
                self.warm
                    .iter()
                    .filter(move |row| row.action == "noop" && row.clients == n && row.mode == mode)
            };
            let ratios: Vec<_> = self
                .ratios
                .iter()
                .filter(|row| row.action == "noop" && row.clients == n)
                .collect();
            let label = clients_label(n);
            let _ = writeln!(
                out,
                "| warm `noop`, {label}: req/s | {} | {} | {} |",
                rate(median(rows(Mode::Plain).map(|r| r.summary.throughput_rps))),
                rate(median(
                    rows(Mode::Confidential).map(|r| r.summary.throughput_rps)
                )),
                range(ratios.iter().map(|r| r.throughput_ratio)),
            );
            let _ = writeln!(
                out,
                "| warm `noop`, {label}: latency | {} ms | {} ms | {} |",
                ms(median(rows(Mode::Plain).map(|r| r.summary.p50_ms))),
                ms(median(rows(Mode::Confidential).map(|r| r.summary.p50_ms))),
                range(ratios.iter().map(|r| r.p50_ratio)),
            );
            let _ = writeln!(
                out,
                "| warm `noop`, {label}: node CPU per request | {} µs | {} µs | {} |",
                rate(median(
                    rows(Mode::Plain).map(|r| r.summary.node_cpu_us_per_request)
                )),
                rate(median(
                    rows(Mode::Confidential).map(|r| r.summary.node_cpu_us_per_request)
                )),
                range(ratios.iter().map(|r| r.node_cpu_ratio)),
            );
        }
        let cold = |mode: Mode| {
            self.cold
                .iter()
                .find(|row| row.action == "noop" && row.mode == mode && row.runs > 0)
                .map(|row| row.total_ms.p50)
                .unwrap_or(f64::NAN)
        };
        if !self.cold.is_empty() {
            let (plain, sealed) = (cold(Mode::Plain), cold(Mode::Confidential));
            let _ = writeln!(
                out,
                "| cold start, create + first invoke of `noop` | {} ms | {} ms | {} |",
                ms(plain),
                ms(sealed),
                ratio(sealed / plain)
            );
        }
        if let Some(c) = self.chain_summary {
            let plain = self
                .chains
                .iter()
                .find(|row| row.steps == c.steps && row.mode == Mode::Plain)
                .map_or(f64::NAN, |row| row.summary.p50_ms);
            let _ = writeln!(
                out,
                "| chain of {} `noop` steps, in a chain session ({} µs per hop over plain) | {} ms \
                 | {} ms | {} |",
                c.steps,
                super::micros(c.per_hop_overhead_ms),
                ms(plain),
                ms(plain * c.ratio),
                ratio(c.ratio)
            );
            if let (Some(per_hop), Some(first)) =
                (c.first_run_per_hop_overhead_ms, c.first_run_ratio)
            {
                let _ = writeln!(
                    out,
                    "| chain of {} `noop` steps, first runs ({} µs per hop over plain) | {} ms | \
                     {} ms | {} |",
                    c.steps,
                    super::micros(per_hop),
                    ms(plain),
                    ms(plain * first),
                    ratio(first)
                );
            }
        }
        out.push('\n');
        self.render_markdown_peer(&mut out);
        if let Some(g) = &self.growth {
            let ratios: Vec<String> = g
                .rows
                .iter()
                .map(|row| {
                    format!(
                        "{} at {}",
                        ratio(row.throughput_ratio),
                        clients_label(row.clients)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "\nA store grown to {} activation records (preloaded in {:.0} s, {:.0} MiB): warm \
                 plain throughput {} of an empty store's.",
                g.records,
                g.preload_s,
                g.data_dir_bytes as f64 / f64::from(1u32 << 20),
                ratios.join(", ")
            );
        } else {
            let _ = writeln!(out, "\nStore growth: not measured in this run.");
        }
        let count = |verdict: Verdict| self.goals.iter().filter(|g| g.verdict == verdict).count();
        let _ = writeln!(
            out,
            "\nGoals of this run: {} PASS, {} FAIL, {} not measured (the table and the method are \
             in [docs/BENCHMARKS.md](docs/BENCHMARKS.md)).",
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::NotMeasured)
        );
        out
    }

    fn render_markdown_peer(&self, out: &mut String) {
        let peer = &self.peer;
        if !peer.measured || peer.rows.is_empty() {
            let _ = writeln!(out, "{}.", peer.not_measured_text());
            return;
        }
        let mut clients: Vec<usize> = peer.rows.iter().map(|row| row.clients).collect();
        clients.sort_unstable();
        clients.dedup();
        let header: Vec<String> = clients.iter().map(|&n| clients_label(n)).collect();
        let _ = writeln!(
            out,
            "| against `{}` serve (hello, same load generator, this run) | {} |",
            peer.version.as_deref().unwrap_or("wasmtime"),
            header.join(" | ")
        );
        let _ = writeln!(out, "| --- |{}", " --- |".repeat(clients.len()));
        let cells = |value: &dyn Fn(usize) -> String| {
            clients
                .iter()
                .map(|&n| value(n))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let peer_row = |n: usize| peer.rows.iter().find(|row| row.clients == n);
        let peer_ratio = |n: usize| peer.ratios.iter().find(|row| row.clients == n);
        let _ = writeln!(
            out,
            "| `wasmtime serve` req/s | {} |",
            cells(&|n| peer_row(n).map_or("-".into(), |r| rate(r.summary.throughput_rps)))
        );
        let _ = writeln!(
            out,
            "| Clemmys plain / wasmtime serve, req/s | {} |",
            cells(&|n| peer_ratio(n).map_or("-".into(), |r| ratio(r.plain_throughput)))
        );
        let _ = writeln!(
            out,
            "| Clemmys confidential / wasmtime serve, req/s | {} |",
            cells(&|n| peer_ratio(n).map_or("-".into(), |r| ratio(r.confidential_throughput)))
        );
    }
}

/// The UTC calendar date of `unix_seconds`, `YYYY-MM-DD` (Howard Hinnant's
/// days-to-civil algorithm).
pub fn utc_date(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(i64::MAX / 2) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
