//! Density: how many warm instances fit in 2 GiB, measured in this process.
//!
//! A sandbox like the node's (pooling allocator, copy-on-write images,
//! default limits) but with enough instance slots prepares a module (`noop`,
//! or the node's JavaScript engine), then
//! instantiates it `count` times and keeps every instance alive: each has
//! its own store, WASI context, instance and linear memory, initialised and
//! not yet run (a "warm instance"). The resident set size of the process
//! (`VmRSS` in `/proc/self/status`) is sampled before and after; the
//! difference divided by `count` is the memory of one warm instance. Then
//! `_start` runs once in every instance (which touches its stack and heap
//! pages, as a run would) and the RSS is sampled again.
//!
//! `VmRSS` counts a page once per mapping, so copy-on-write image pages that
//! many instances share are counted many times: it overstates. The
//! proportional set size (`Pss` in `/proc/self/smaps_rollup`) divides shared
//! pages among their mappings and is reported beside it. The goal uses RSS.
//!
//! A JavaScript action runs as the node's engine module (`clemmys-js.wasm`,
//! its QuickJS heap pre-initialized in the module's image) with the
//! action's source or bytecode as data on stdin: a warm instance of one
//! JavaScript action is an instance of the engine, the same for every JS
//! action. Its `_start` here gets no stdin (an idle instance has none), so
//! the engine starts, reads no envelope and answers with an error line: the
//! action's own code does not run in that second sample.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clemmys_sandbox::{CodeDigest, Sandbox, SandboxConfig};
use serde::Serialize;

use super::progress::Progress;

/// The memory the goal is about.
pub const BUDGET_BYTES: u64 = 2 << 30;
/// Issue 18's goal: warm instances of one JavaScript action in 2 GiB.
pub const JS_GOAL: f64 = 2_000.0;
/// The older goal for warm instances of `noop`.
pub const WASM_GOAL: f64 = 5_000.0;
/// What the JavaScript measurement's instances are warm instances of.
pub const JS_ACTION: &str = "JavaScript action";
/// Slots beyond `count`, so that slot exhaustion never cuts the run short.
const SPARE_SLOTS: u32 = 16;
/// How long the density run waits for noop's optimising compile.
pub const TIER_UP_WAIT: Duration = Duration::from_secs(30);
/// The same for the JavaScript engine, a module of about a megabyte.
pub const JS_TIER_UP_WAIT: Duration = Duration::from_secs(120);

/// What the density measurement found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DensityReport {
    /// The action whose warm instances these are (`noop`, or
    /// [`JS_ACTION`]: any one JavaScript action).
    pub action: String,
    /// What one `_start` runs, when it is not the action itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_note: Option<String>,
    /// Instances kept alive at once.
    pub instances: usize,
    /// `pooling` or `on-demand` (when the pool's address space could not be
    /// reserved).
    pub allocator: String,
    /// Why the allocator is not the pooling one, if it is not.
    pub fallback: Option<String>,
    /// Time to instantiate all of them, ms.
    pub instantiate_ms: f64,
    /// Time to run `_start` in all of them, ms.
    pub start_ms: f64,
    /// Process memory before any instance.
    pub before: MemorySample,
    /// With every instance alive, none run.
    pub idle: MemorySample,
    /// With every instance alive after one run of `_start`.
    pub started: MemorySample,
    /// Figures per instance, instantiated and not run.
    pub per_idle: PerInstance,
    /// Figures per instance, after `_start`.
    pub per_started: PerInstance,
}

/// The process's memory at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySample {
    /// `VmRSS`, bytes.
    pub rss_bytes: u64,
    /// `RssAnon`, bytes.
    pub rss_anon_bytes: u64,
    /// `RssShmem` (copy-on-write images live in memfd shared memory), bytes.
    pub rss_shmem_bytes: u64,
    /// `Pss` from `smaps_rollup`, bytes, when readable.
    pub pss_bytes: Option<u64>,
}

/// One instance's share of the growth between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerInstance {
    /// RSS growth per instance, bytes.
    pub rss_bytes: f64,
    /// PSS growth per instance, bytes.
    pub pss_bytes: Option<f64>,
    /// How many such instances fit in 2 GiB of RSS (`None` when the RSS did
    /// not grow, which only a broken measurement gives).
    pub fit_in_budget: Option<u64>,
    /// Measured RSS growth with all `instances` alive, bytes.
    pub total_rss_bytes: u64,
}

impl PerInstance {
    /// The growth from `before` to `after` spread over `count` instances.
    pub fn between(before: &MemorySample, after: &MemorySample, count: usize) -> Self {
        let count = count.max(1) as f64;
        let total = after.rss_bytes.saturating_sub(before.rss_bytes);
        let per = total as f64 / count;
        let pss = match (before.pss_bytes, after.pss_bytes) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / count),
            _ => None,
        };
        Self {
            rss_bytes: per,
            pss_bytes: pss,
            fit_in_budget: fit_in(BUDGET_BYTES, per),
            total_rss_bytes: total,
        }
    }
}

/// How many of `per_instance` bytes fit in `budget`; `None` for a size that
/// is not positive.
pub fn fit_in(budget: u64, per_instance: f64) -> Option<u64> {
    (per_instance.is_finite() && per_instance > 0.0)
        .then(|| (budget as f64 / per_instance).floor() as u64)
}

/// Reads a `Key:   123 kB` field of `/proc/self/status` or `smaps_rollup`
/// text, in bytes.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim() != key {
            return None;
        }
        let mut words = value.split_whitespace();
        let number: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => number.checked_mul(1024),
            None => Some(number),
            Some(_) => None,
        }
    })
}

/// The process's memory now.
pub fn sample_memory() -> anyhow::Result<MemorySample> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let field = |key: &str| kb_field(&status, key);
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok();
    Ok(MemorySample {
        rss_bytes: field("VmRSS").context("no VmRSS in /proc/self/status")?,
        rss_anon_bytes: field("RssAnon").unwrap_or(0),
        rss_shmem_bytes: field("RssShmem").unwrap_or(0),
        pss_bytes: rollup.as_deref().and_then(|text| kb_field(text, "Pss")),
    })
}

/// What [`measure`] instantiates.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The action the instances are warm instances of.
    pub action: &'a str,
    /// The module instantiated: the action's, or the engine that runs it.
    pub module: &'a [u8],
    /// How long to wait for the module's optimising compile.
    pub tier_up_wait: Duration,
    /// What one `_start` runs, when it is not the action itself.
    pub start_note: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// Warm instances of `noop`.
    pub fn noop(noop: &'a [u8]) -> Self {
        Self {
            action: "noop",
            module: noop,
            tier_up_wait: TIER_UP_WAIT,
            start_note: None,
        }
    }

    /// Warm instances of one JavaScript action: instances of `engine`.
    pub fn javascript(engine: &'a [u8]) -> Self {
        Self {
            action: JS_ACTION,
            module: engine,
            tier_up_wait: JS_TIER_UP_WAIT,
            start_note: Some(
                "the engine's _start with no envelope on stdin: it starts and answers an error \
                 line; the action's code does not run",
            ),
        }
    }
}

/// Keeps `count` warm instances of `subject` alive in a sandbox of this
/// process and measures their memory; blocking (seconds).
pub fn measure(
    subject: Subject<'_>,
    count: usize,
    progress: &Progress,
) -> anyhow::Result<DensityReport> {
    let Subject {
        action,
        module,
        tier_up_wait,
        start_note,
    } = subject;
    let slots = u32::try_from(count)
        .unwrap_or(u32::MAX)
        .saturating_add(SPARE_SLOTS);
    let pooled = SandboxConfig {
        // The node's modules and instances are not these; nothing is cached.
        module_cache_capacity: 1,
        ..SandboxConfig::with_slots(slots)
    };
    let (sandbox, fallback) = match Sandbox::new(&pooled) {
        Ok(sandbox) => (sandbox, None),
        Err(error) => {
            let reason = format!("the pooling allocator could not reserve {slots} slots: {error}");
            progress.note(&format!("density: {reason}; using on-demand allocation"));
            let on_demand = SandboxConfig {
                pooling: false,
                ..pooled
            };
            let sandbox = Sandbox::new(&on_demand).context("creating an on-demand sandbox")?;
            (sandbox, Some(reason))
        }
    };
    let prepared = sandbox
        .prepare(CodeDigest::of(module), module)
        .with_context(|| format!("compiling the module of {action}"))?;
    // The steady state: a tiered sandbox's instances come from the pool
    // once the optimised code is in.
    if !sandbox.wait_for_tier_ups(tier_up_wait) {
        bail!("{action}'s optimising compile did not finish within {tier_up_wait:?}");
    }
    // One instance made and dropped first, so that lazily built engine
    // state is not counted as the first instance's.
    drop(
        sandbox
            .instantiate_idle(&prepared.module)
            .map_err(|failure| anyhow!(failure.message()))?,
    );
    let before = sample_memory()?;
    let step = progress.counted(
        &format!("density: {count} warm instances of {action}"),
        count as u64,
    );
    let mut instances = Vec::with_capacity(count);
    let started = Instant::now();
    for made in 0..count {
        let instance = sandbox
            .instantiate_idle(&prepared.module)
            .map_err(|failure| anyhow!("instance {made}: {}", failure.message()))?;
        instances.push(instance);
        if made % 256 == 0 {
            step.set(made as u64);
        }
    }
    let instantiate = started.elapsed();
    let idle = sample_memory()?;
    let started = Instant::now();
    for (index, instance) in instances.iter_mut().enumerate() {
        instance
            .run_start()
            .map_err(|failure| anyhow!("_start of instance {index}: {}", failure.message()))?;
    }
    let start = started.elapsed();
    let after_start = sample_memory()?;
    drop(instances);
    let per_idle = PerInstance::between(&before, &idle, count);
    let per_started = PerInstance::between(&before, &after_start, count);
    step.finish(&format!(
        "{:.1} KiB RSS per idle instance ({} in 2 GiB), {:.1} KiB after _start ({} in 2 GiB)",
        per_idle.rss_bytes / 1024.0,
        count_text(per_idle.fit_in_budget),
        per_started.rss_bytes / 1024.0,
        count_text(per_started.fit_in_budget)
    ));
    Ok(DensityReport {
        action: action.to_owned(),
        start_note: start_note.map(str::to_owned),
        instances: count,
        allocator: if fallback.is_some() {
            "on-demand".into()
        } else {
            "pooling".into()
        },
        fallback,
        instantiate_ms: ms(instantiate),
        start_ms: ms(start),
        before,
        idle,
        started: after_start,
        per_idle,
        per_started,
    })
}

fn count_text(count: Option<u64>) -> String {
    count.map_or_else(|| "-".into(), |n| n.to_string())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tclemmys\nVmPeak:\t 9999 kB\nVmRSS:\t   20480 kB\n\
                          RssAnon:\t   10240 kB\nRssFile:\t 2048 kB\nRssShmem:\t     512 kB\n\
                          Threads:\t4\n";

    #[test]
    fn reads_kilobyte_fields_in_bytes() {
        assert_eq!(kb_field(STATUS, "VmRSS"), Some(20480 * 1024));
        assert_eq!(kb_field(STATUS, "RssAnon"), Some(10240 * 1024));
        assert_eq!(kb_field(STATUS, "RssShmem"), Some(512 * 1024));
        assert_eq!(kb_field(STATUS, "Threads"), Some(4), "a count has no unit");
        assert_eq!(kb_field(STATUS, "Rss"), None, "whole names only");
        assert_eq!(kb_field(STATUS, "Missing"), None);
        assert_eq!(kb_field("VmRSS: lots kB\n", "VmRSS"), None);
        assert_eq!(kb_field("VmRSS: 1 MB\n", "VmRSS"), None);
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  300 kB\nPss:  120 kB\n";
        assert_eq!(kb_field(rollup, "Pss"), Some(120 * 1024));
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let sample = sample_memory().expect("sample");
        assert!(sample.rss_bytes > 0);
    }

    #[test]
    fn growth_is_shared_among_the_instances() {
        let before = MemorySample {
            rss_bytes: 100 << 20,
            pss_bytes: Some(90 << 20),
            ..MemorySample::default()
        };
        let after = MemorySample {
            rss_bytes: (100 << 20) + 5_000 * 100 * 1024,
            pss_bytes: Some((90 << 20) + 5_000 * 50 * 1024),
            ..MemorySample::default()
        };
        let per = PerInstance::between(&before, &after, 5_000);
        assert_eq!(per.rss_bytes, 100.0 * 1024.0);
        assert_eq!(per.pss_bytes, Some(50.0 * 1024.0));
        assert_eq!(per.fit_in_budget, Some((2 << 30) / (100 * 1024)));
        assert_eq!(per.total_rss_bytes, 5_000 * 100 * 1024);
        // Memory given back meanwhile is no negative size.
        let shrunk = PerInstance::between(&after, &before, 10);
        assert_eq!(shrunk.rss_bytes, 0.0);
        assert_eq!(shrunk.fit_in_budget, None);
    }

    #[test]
    fn fitting_rounds_down() {
        assert_eq!(fit_in(1000, 300.0), Some(3));
        assert_eq!(fit_in(BUDGET_BYTES, 262_144.0), Some(8_192));
        assert_eq!(fit_in(BUDGET_BYTES, 262_145.0), Some(8_191));
        assert_eq!(fit_in(10, f64::NAN), None);
        assert_eq!(fit_in(10, 0.0), None);
    }
}
