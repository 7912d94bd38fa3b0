//! How a run is shown: [`Report::render_table`] for people (stdout),
//! [`markdown`] for the README's results block (`--publish`) and [`svg`]
//! for the picture. Every figure comes from the [`Report`]; a figure that
//! was not measured shows as `-` and the peer, when it was not measured in
//! this run, as "not measured", never as a figure from another run.

pub mod markdown;
pub mod svg;

use std::fmt::Write as _;

use crate::goals::{Bound, GoalCheck, Unit};
use crate::model::{ColdRow, Mode, PEER_ACTION, Quantiles, RatioRow, Report, WarmRow};

impl GoalCheck {
    /// `<= 0.250 ms`, `>= 0.950`.
    pub fn target_text(&self) -> String {
        let sign = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        format!("{sign} {}", format_value(self.target, self.unit))
    }
}

/// `value` in `unit`, as shown.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => format!("{} ms", ms(value)),
        Unit::Ratio => ratio(value),
        Unit::Count => rate(value),
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
            "node      in-process, loopback HTTP/1.1 keep-alive; data dir on {} (the default --record-durability group: records answered from memory, fsynced in groups every {} ms)",
            m.data_dir_fs.as_deref().unwrap_or("an unknown file system"),
            clemmys_store::DEFAULT_COMMIT_INTERVAL.as_millis()
        );
        let _ = writeln!(
            out,
            "load      closed loop, {} s per measurement after {} s warm-up; N = {} clients; {} runs of the warm pair; {} cold starts per action; {} s per chain length{}",
            trim_float(s.duration_s),
            trim_float(s.warmup_s),
            s.concurrency,
            s.runs,
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
            "\nWarm blocking invokes (latency in ms; cpu: this process's CPU time per request, µs: \
             all, the node's, the clients')"
        );
        out.push_str(&warm_table(&self.warm).render());

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
        out.push_str(&ratio_table(&self.ratios).render());

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
        self.render_growth(&mut out);
        self.render_js(&mut out);
        self.render_gateway(&mut out);
        self.render_cluster(&mut out);

        let _ = writeln!(out, "\nGoals");
        let mut table = Table::new(&["goal", "target", "measured", "result", "note"]);
        for goal in &self.goals {
            table.row(vec![
                goal.goal.clone(),
                goal.target_text(),
                goal.measured
                    .map_or_else(|| "-".to_owned(), |v| format_value(v, goal.unit)),
                goal.verdict.label().into(),
                goal.note.clone().unwrap_or_default(),
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

impl crate::model::PeerSection {
    /// Why the peer has no figures in this run.
    pub fn not_measured_text(&self) -> String {
        format!(
            "wasmtime serve not measured in this run ({})",
            self.note
                .as_deref()
                .unwrap_or("install it with scripts/bench.sh")
        )
    }
}

impl Report {
    fn render_cluster(&self, out: &mut String) {
        let cluster = &self.cluster;
        if let Some(why) = &cluster.not_measured {
            let _ = writeln!(out, "\nCluster: {why}");
            return;
        }
        if cluster.rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nCluster: warm plain noop through a controller with invoker processes over NATS \
             + PostgreSQL vs the embedded node (latency in ms; goal: 1 invoker at least {}x the \
             embedded throughput)",
            crate::cluster::ONE_INVOKER_GOAL
        );
        let mut table = Table::new(&[
            "setup",
            "clients",
            "req/s",
            "p50",
            "p99",
            "errors",
            "machine CPU µs/req",
        ]);
        for row in &cluster.rows {
            table.row(vec![
                row.setup(),
                row.clients.to_string(),
                rate(row.summary.throughput_rps),
                ms(row.summary.p50_ms),
                ms(row.summary.p99_ms),
                row.summary.errors.to_string(),
                format!("{:.0}", row.machine_cpu_us_per_request),
            ]);
        }
        out.push_str(&table.render());
        let mut clients: Vec<usize> = cluster.rows.iter().map(|row| row.clients).collect();
        clients.sort_unstable();
        clients.dedup();
        for n in clients {
            if let (Some(ratio), Some((p50, cpu))) =
                (cluster.one_invoker_ratio(n), cluster.added_per_request(n))
            {
                let _ = writeln!(
                    out,
                    "{}: 1 invoker / embedded throughput {}; the distributed path adds {} ms p50 \
                     and {:.0} µs of machine CPU per request",
                    crate::goals::clients_label(n),
                    self::ratio(ratio),
                    ms(p50),
                    cpu
                );
            }
        }
    }

    fn render_js(&self, out: &mut String) {
        if self.js.rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nJavaScript: warm plain hello, nodejs:20 (QuickJS in clemmys-js.wasm) vs wasm, \
             side by side on one node (latency in ms; goal: JS p50 at most {}x wasm)",
            crate::javascript::JS_P50_GOAL
        );
        let mut table = Table::new(&[
            "clients",
            "wasm req/s",
            "js req/s",
            "wasm p50",
            "js p50",
            "wasm p99",
            "js p99",
            "js/wasm p50",
            "js/wasm req/s",
        ]);
        for row in &self.js.rows {
            table.row(vec![
                row.clients.to_string(),
                rate(row.wasm.throughput_rps),
                rate(row.js.throughput_rps),
                ms(row.wasm.p50_ms),
                ms(row.js.p50_ms),
                ms(row.wasm.p99_ms),
                ms(row.js.p99_ms),
                ratio(row.p50_ratio),
                ratio(row.throughput_ratio),
            ]);
        }
        out.push_str(&table.render());
        if !self.js.confidential.is_empty() {
            let _ = writeln!(
                out,
                "JavaScript hello, plain and confidential (source sealed for the engine), side by \
                 side (latency in ms; cpu as above; goal: confidential throughput at least {}x \
                 plain)",
                crate::javascript::CONFIDENTIAL_THROUGHPUT_GOAL
            );
            out.push_str(&warm_table(&self.js.confidential).render());
            let _ = writeln!(out, "JavaScript hello, confidential / plain");
            out.push_str(&ratio_table(&self.js.confidential_ratios).render());
        }
        if let Some(cold) = &self.js.cold {
            let _ = writeln!(
                out,
                "cold start (create + first invoke, {} runs, p50 / p90 ms): wasm hello {}, js hello {}",
                cold.runs,
                pair(&cold.wasm_ms),
                pair(&cold.js_ms)
            );
            let node = cold
                .node_ms
                .as_ref()
                .map_or_else(|| "not measured (no `node`)".to_owned(), pair);
            let _ = writeln!(
                out,
                "reference: Node.js started for one call of the same hello.js, {} runs, p50 / p90 ms: {node}",
                cold.runs
            );
        }
    }

    fn render_gateway(&self, out: &mut String) {
        let g = &self.gateway;
        if g.rows.is_empty() && g.handshakes.is_empty() {
            return;
        }
        if !g.rows.is_empty() {
            let _ = writeln!(
                out,
                "\nGateway: warm noop through the attested gateway (confidential) vs plain on the \
                 node, both over keep-alive TLS, side by side; link: how the gateway reaches the \
                 node, in-process beside it (serve --gateway) or over https (latency in ms; goal, \
                 in-process: gateway throughput at least {}x plain)",
                crate::gateway::GATEWAY_THROUGHPUT_GOAL
            );
            let mut table = Table::new(&[
                "clients",
                "link",
                "plain req/s",
                "gateway req/s",
                "plain p50",
                "gateway p50",
                "plain p99",
                "gateway p99",
                "gateway/plain req/s",
                "gateway/plain p50",
            ]);
            for row in &g.rows {
                table.row(vec![
                    row.clients.to_string(),
                    row.link.name().to_owned(),
                    rate(row.plain.throughput_rps),
                    rate(row.gateway.throughput_rps),
                    ms(row.plain.p50_ms),
                    ms(row.gateway.p50_ms),
                    ms(row.plain.p99_ms),
                    ms(row.gateway.p99_ms),
                    ratio(row.throughput_ratio),
                    ratio(row.p50_ratio),
                ]);
            }
            out.push_str(&table.render());
        }
        if !g.handshakes.is_empty() {
            let _ = writeln!(
                out,
                "\nTLS handshakes: connect + handshake + 1-byte echo, one connection at a time, on \
                 each listener's TLS configuration (ms; TCP without TLS is the floor)"
            );
            let mut table = Table::new(&[
                "listener",
                "connections",
                "tcp p50",
                "full p50",
                "full p90",
                "resumed p50",
                "resumed p90",
                "resumed",
            ]);
            for row in &g.handshakes {
                table.row(vec![
                    row.listener.clone(),
                    row.connections.to_string(),
                    ms(row.tcp_p50_ms),
                    ms(row.full_p50_ms),
                    ms(row.full_p90_ms),
                    ms(row.resumed_p50_ms),
                    ms(row.resumed_p90_ms),
                    format!("{}/{}", row.resumed, row.connections),
                ]);
            }
            out.push_str(&table.render());
        }
    }

    fn render_growth(&self, out: &mut String) {
        let Some(g) = &self.growth else {
            return;
        };
        let _ = writeln!(
            out,
            "\nGrowth: warm plain noop on a node whose store holds {} preloaded activation records \
             against a node on an empty store, side by side (latency in ms)",
            g.records
        );
        let _ = writeln!(
            out,
            "preload: {} records through EntityStore::put_activation in {:.1} s ({} records/s); \
             data dir {:.1} MiB on {}",
            g.records,
            g.preload_s,
            rate(g.records as f64 / g.preload_s),
            g.data_dir_bytes as f64 / f64::from(1u32 << 20),
            g.data_dir_fs.as_deref().unwrap_or("an unknown file system")
        );
        let mut table = Table::new(&[
            "clients",
            "store",
            "requests",
            "errors",
            "req/s",
            "p50",
            "p99",
            "throughput ratio",
            "p50 ratio",
        ]);
        for row in &g.rows {
            for (store, s) in [("empty", &row.empty), ("preloaded", &row.preloaded)] {
                let preloaded = store == "preloaded";
                table.row(vec![
                    row.clients.to_string(),
                    store.into(),
                    s.requests.to_string(),
                    s.errors.to_string(),
                    rate(s.throughput_rps),
                    ms(s.p50_ms),
                    ms(s.p99_ms),
                    if preloaded {
                        ratio(row.throughput_ratio)
                    } else {
                        String::new()
                    },
                    if preloaded {
                        ratio(row.p50_ratio)
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        out.push_str(&table.render());
    }

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
                    "first runs (no chain session: ticket signed, HPKE into step 0, hops over kept links, signed receipts): \
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
            let _ = writeln!(out, "\npeer: {}", peer.not_measured_text());
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
        for d in self.density.iter().chain(&self.js_density) {
            render_density(d, out);
        }
    }
}

fn render_density(d: &crate::density::DensityReport, out: &mut String) {
    let _ = writeln!(
        out,
        "\nDensity: {} warm {} instances alive at once in this process ({} allocator{})",
        d.instances,
        d.action,
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
    let within = |per: &crate::density::PerInstance| {
        if per.total_rss_bytes <= crate::density::BUDGET_BYTES {
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
    if let Some(note) = &d.start_note {
        let _ = writeln!(out, "_start: {note}");
    }
}

/// Warm rows with their latencies and CPU per request, one line each.
fn warm_table(rows: &[WarmRow]) -> Table {
    let mut table = Table::new(&[
        "action", "mode", "clients", "run", "requests", "errors", "req/s", "p50", "p90", "p99",
        "mean", "max", "cpu", "node", "client",
    ]);
    for row in rows {
        let s = &row.summary;
        table.row(vec![
            row.action.clone(),
            row.mode.name().into(),
            row.clients.to_string(),
            row.run.to_string(),
            s.requests.to_string(),
            s.errors.to_string(),
            rate(s.throughput_rps),
            ms(s.p50_ms),
            ms(s.p90_ms),
            ms(s.p99_ms),
            ms(s.mean_ms),
            ms(s.max_ms),
            rate(s.cpu_us_per_request),
            rate(s.node_cpu_us_per_request),
            rate(s.client_cpu_us_per_request),
        ]);
    }
    table
}

/// Confidential over plain, one line per action, client count and run.
fn ratio_table(rows: &[RatioRow]) -> Table {
    let mut table = Table::new(&[
        "action",
        "clients",
        "run",
        "throughput",
        "slices",
        "p50",
        "cpu/request",
        "node cpu",
    ]);
    for row in rows {
        table.row(vec![
            row.action.clone(),
            row.clients.to_string(),
            row.run.to_string(),
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
            ratio(row.node_cpu_ratio),
        ]);
    }
    table
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

pub(crate) fn micros(value_ms: f64) -> String {
    if value_ms.is_finite() {
        format!("{:.0}", value_ms * 1e3)
    } else {
        "-".into()
    }
}

pub(crate) fn kib(bytes: f64) -> String {
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
pub(crate) fn ms(value: f64) -> String {
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

pub(crate) fn pair(quantiles: &Quantiles) -> String {
    format!("{} / {}", ms(quantiles.p50), ms(quantiles.p90))
}

pub(crate) fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "-".into()
    }
}

pub(crate) fn rate(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.0}")
    } else {
        "-".into()
    }
}

pub(crate) fn trim_float(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{empty_report, report};
    use crate::model::title;

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
        assert!(text.contains("JavaScript: warm plain hello"), "{text}");
        assert!(text.contains("js hello 5.000 / 6.000"), "{text}");
        assert!(
            text.contains("goal: confidential throughput at least 0.95x plain"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("hello.js") && l.contains("confidential") && l.contains(" 8 "))
            .unwrap_or_else(|| panic!("confidential JS 8-client row:\n{text}"));
        assert!(line.contains("2700") && line.contains("2.600"), "{line}");
        let line = text
            .lines()
            .find(|l| l.starts_with("hello.js") && l.contains("0.960"))
            .unwrap_or_else(|| panic!("JS ratio row:\n{text}"));
        assert!(
            line.contains("0.950-0.970") && line.contains("1.050"),
            "{line}"
        );
        assert!(text.contains("Cluster: warm plain noop"), "{text}");
        assert!(
            text.contains(
                "8 clients: 1 invoker / embedded throughput 0.750; the distributed path adds \
                 0.600 ms p50 and 350 µs of machine CPU per request"
            ),
            "{text}"
        );
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
            "Density: 2000 warm JavaScript action instances",
            "_start: no envelope",
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
    fn the_gateway_rows_and_handshakes_are_shown() {
        let text = report().render_table();
        let line = text
            .lines()
            .find(|l| l.starts_with('8') && l.contains("3000"))
            .unwrap_or_else(|| panic!("gateway 8-client row:\n{text}"));
        for cell in ["in-process", "4000", "2.000", "2.600", "0.750", "1.300"] {
            assert!(line.contains(cell), "{cell} in {line}");
        }
        let line = text
            .lines()
            .find(|l| l.starts_with('8') && l.contains("3800"))
            .unwrap_or_else(|| panic!("gateway 8-client https row:\n{text}"));
        for cell in ["https", "4000", "0.950", "1.100"] {
            assert!(line.contains(cell), "{cell} in {line}");
        }
        assert!(
            text.contains("in-process: gateway throughput at least 0.8x plain"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("gateway ") && l.contains("1000/1000"))
            .unwrap_or_else(|| panic!("gateway handshake row:\n{text}"));
        assert!(line.contains("0.700") && line.contains("0.310"), "{line}");
        let line = text
            .lines()
            .find(|l| l.starts_with("gateway/plain throughput") && l.contains("8 clients"))
            .expect("gateway goal");
        assert!(line.contains(">= 0.800") && line.contains("FAIL"), "{line}");
        let text = empty_report().render_table();
        assert!(!text.contains("TLS handshakes"), "{text}");
        assert!(!text.contains("Gateway:"), "{text}");
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
    fn a_run_without_the_peer_says_not_measured_everywhere() {
        let report = empty_report();
        let text = report.render_table();
        assert!(
            text.contains("Cluster: not measured: nats-server/PostgreSQL missing"),
            "{text}"
        );
        assert!(
            text.contains(
                "peer: wasmtime serve not measured in this run (install it with scripts/bench.sh)"
            ),
            "{text}"
        );
        for absent in [
            "Chains:",
            "Density:",
            "Sandbox knobs",
            "enclave pool",
            "Growth:",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
        let block = report.render_markdown("2026-12-03");
        assert!(
            block.contains("wasmtime serve not measured in this run"),
            "{block}"
        );
        assert!(!block.contains("| `wasmtime serve` req/s"), "{block}");
        assert!(
            block.contains("Store growth: not measured in this run."),
            "{block}"
        );
        let picture = svg::PlotData::from_report(&report);
        assert!(
            picture
                .footer
                .iter()
                .any(|line| line.contains("wasmtime serve not measured in this run")),
            "{:?}",
            picture.footer
        );
        assert!(
            picture
                .throughput
                .iter()
                .all(|bar| bar.series != svg::Series::Peer)
        );
    }

    #[test]
    fn the_readme_block_shows_the_peer_of_this_run() {
        let report = report();
        let block = report.render_markdown("2026-12-03");
        assert!(block.starts_with("Results of the published run (2026-12-03, release build"));
        assert!(
            block.contains("| against `wasmtime 48.0.8 (abc 2025-11-20)` serve"),
            "{block}"
        );
        assert!(
            block.contains("| `wasmtime serve` req/s | 3800 | 5000 |"),
            "{block}"
        );
        assert!(
            block.contains("| Clemmys plain / wasmtime serve, req/s | 0.500 | 0.600 |"),
            "{block}"
        );
        assert!(
            block.contains("| warm `noop`, 1 client: req/s | 2000 | 1000 | 0.500 |"),
            "{block}"
        );
        assert!(
            block.contains("warm plain throughput 0.950 at 1 client, 0.850 at 8 clients"),
            "{block}"
        );
        assert!(!block.contains("not measured in this run"), "{block}");
    }

    #[test]
    fn the_block_replaces_only_the_text_between_the_markers() {
        let readme = format!(
            "# Title\nbefore\n{}\nold figures\n| old | table |\n{}\nafter\n",
            markdown::BEGIN,
            markdown::END
        );
        let updated = markdown::replace_block(&readme, "new block\n").expect("markers");
        assert_eq!(
            updated,
            format!(
                "# Title\nbefore\n{}\nnew block\n{}\nafter\n",
                markdown::BEGIN,
                markdown::END
            )
        );
        let again = markdown::replace_block(&updated, "newer").expect("markers");
        assert!(again.contains("newer") && !again.contains("new block"));
        assert_eq!(
            markdown::replace_block("no markers", "x"),
            Err(markdown::MarkerError::Missing)
        );
        let reversed = format!("{}\n{}\n", markdown::END, markdown::BEGIN);
        assert_eq!(
            markdown::replace_block(&reversed, "x"),
            Err(markdown::MarkerError::Missing)
        );
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(markdown::utc_date(0), "1970-01-01");
        assert_eq!(markdown::utc_date(951_782_400), "2000-02-29");
        assert_eq!(markdown::utc_date(1_798_243_199), "2026-12-25");
    }

    #[test]
    fn the_repository_readme_has_the_results_markers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let block = report().render_markdown("2026-12-03");
        let updated = markdown::replace_block(&readme, &block).expect("--publish can update it");
        assert!(updated.contains("| `wasmtime serve` req/s | 3800 | 5000 |"));
        assert_eq!(
            updated.matches(markdown::BEGIN).count(),
            1,
            "one block, replaced in place"
        );
    }
}
