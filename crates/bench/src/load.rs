//! The closed-loop load generator and the latency summaries it produces.
//!
//! [`generate`] runs `clients` tasks on the current tokio runtime; each one
//! loops "start an operation, await it, record its latency" until the
//! deadline, so at most `clients` operations are in flight (a closed loop,
//! like N users each waiting for their answer before asking again).
//!
//! Time is split into a warm-up, whose requests are not recorded, and a
//! measurement window. A request counts when it *started* inside the window
//! and *finished* before its end; throughput is counted requests divided by
//! the window. Requests straddling either edge (at most `clients` per edge)
//! are dropped, which understates throughput by at most `clients / count`.
//!
//! Latencies go into an [`hdrhistogram::Histogram`] per task, merged at the
//! end: recording is allocation-free and lock-free in the hot loop, memory
//! stays bounded whatever `--duration` is, and quantiles are within 0.1%
//! (3 significant digits). The mean, minimum and maximum are kept exactly.
//!
//! The operations are Clemmys invokes through `clemmys_client`, or, for a
//! server that is not Clemmys, [`RawGet`]: the same closed loop over the
//! same kind of keep-alive HTTP/1.1 connections.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;

/// Largest latency the histogram holds, in nanoseconds (longer ones are
/// recorded as this): the server's blocking-invoke wait is 60 s.
const MAX_LATENCY_NS: u64 = 120_000_000_000;
/// Significant decimal digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;
/// How long one operation may take before it counts as an error: longer
/// than the server's 60 s blocking-invoke wait, so only an operation that
/// will never end meets it. Without it, one lost answer (a connection
/// neither side closes) would hold the whole measurement forever.
const OPERATION_DEADLINE: Duration = Duration::from_secs(90);

/// How much load to offer and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSpec {
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// Unrecorded time before the window.
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
}

/// Latencies and errors recorded in one window (by one task, or merged).
#[derive(Debug, Clone)]
pub struct Recording {
    histogram: Histogram<u64>,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    errors: u64,
    first_error: Option<String>,
    /// This process's CPU ticks (node and clients) inside the window(s);
    /// `None` where `/proc` cannot be read.
    cpu_ticks: Option<u64>,
    /// The clients' share of `cpu_ticks` (the load generator's threads).
    client_ticks: Option<u64>,
}

impl Recording {
    /// An empty recording.
    pub fn new() -> anyhow::Result<Self> {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGNIFICANT_DIGITS)
            .context("creating a latency histogram")?;
        Ok(Self {
            histogram,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            errors: 0,
            first_error: None,
            cpu_ticks: None,
            client_ticks: None,
        })
    }

    /// Records one successful operation that took `latency`.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_NS);
        self.histogram.saturating_record(ns);
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Records one failed operation (its latency is not recorded).
    pub fn record_error(&mut self, error: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{error:#}"));
        }
    }

    /// Adds `other`'s operations to this recording.
    pub fn merge(&mut self, other: &Recording) -> anyhow::Result<()> {
        self.histogram
            .add(&other.histogram)
            .context("merging latency histograms")?;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        let add = |ours: Option<u64>, theirs: Option<u64>| match (ours, theirs) {
            (Some(ours), Some(theirs)) => Some(ours.saturating_add(theirs)),
            (ours, theirs) => ours.or(theirs),
        };
        self.cpu_ticks = add(self.cpu_ticks, other.cpu_ticks);
        self.client_ticks = add(self.client_ticks, other.client_ticks);
        Ok(())
    }

    /// Successful operations recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The message of the first failure, if any.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    /// [`summarize`](Self::summarize), or an error naming `label` and the
    /// first failure if no operation succeeded (a window full of errors is
    /// a broken setup, not a figure).
    pub fn summarize_successes(
        &self,
        label: &str,
        window: Duration,
    ) -> anyhow::Result<LatencySummary> {
        let summary = self.summarize(window);
        if summary.requests == 0 {
            anyhow::bail!(
                "{label}: no request succeeded{}",
                self.first_error()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        Ok(summary)
    }

    /// The figures of this recording over a window of `window`.
    pub fn summarize(&self, window: Duration) -> LatencySummary {
        let count = self.count();
        let quantile = |q: f64| {
            if count == 0 {
                f64::NAN
            } else {
                ns_to_ms(self.histogram.value_at_quantile(q) as f64)
            }
        };
        let seconds = window.as_secs_f64();
        LatencySummary {
            requests: count,
            errors: self.errors,
            window_s: seconds,
            throughput_rps: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                f64::NAN
            },
            mean_ms: if count == 0 {
                f64::NAN
            } else {
                ns_to_ms(self.sum_ns as f64 / count as f64)
            },
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            min_ms: if count == 0 {
                f64::NAN
            } else {
                ns_to_ms(self.min_ns as f64)
            },
            max_ms: if count == 0 {
                f64::NAN
            } else {
                ns_to_ms(self.max_ns as f64)
            },
            cpu_us_per_request: per_request_us(self.cpu_ticks, count),
            node_cpu_us_per_request: per_request_us(
                self.cpu_ticks
                    .zip(self.client_ticks)
                    .map(|(all, clients)| all.saturating_sub(clients)),
                count,
            ),
            client_cpu_us_per_request: per_request_us(self.client_ticks, count),
        }
    }
}

/// `ticks` of CPU over `count` requests, in µs each; NaN when unmeasured.
fn per_request_us(ticks: Option<u64>, count: u64) -> f64 {
    match ticks {
        Some(ticks) if count > 0 => ticks as f64 / crate::cpu::USER_HZ * 1e6 / count as f64,
        _ => f64::NAN,
    }
}

fn ns_to_ms(ns: f64) -> f64 {
    ns / 1e6
}

/// The figures of one measurement. Latencies are in milliseconds; a figure
/// that could not be measured (no successful request) is NaN, shown as
/// `null` in JSON and `-` in tables.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Successful requests counted in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
    /// The window, in seconds.
    pub window_s: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Fastest request.
    pub min_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
    /// CPU time of this process (node and clients together) inside the
    /// window, per counted request, in µs; NaN where `/proc` cannot be
    /// read. Steadier than req/s as a measure of what a request costs.
    pub cpu_us_per_request: f64,
    /// The node's part of it: the process's CPU time less the load
    /// generator's threads' (see [`crate::cpu::client_ticks_now`]).
    pub node_cpu_us_per_request: f64,
    /// The clients' part of it: the load generator's threads (sealing,
    /// opening and verifying for a confidential client, HTTP for all).
    pub client_cpu_us_per_request: f64,
}

/// Runs `operation` in a closed loop from `spec.clients` tasks through the
/// warm-up and the window, and returns what the window recorded. Every
/// finished operation (warm-up included) increments `finished`, for
/// progress display.
pub async fn generate<F, Fut>(
    spec: LoadSpec,
    operation: F,
    finished: Arc<AtomicU64>,
) -> anyhow::Result<(Recording, Duration)>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    generate_with_deadline(spec, operation, finished, OPERATION_DEADLINE).await
}

/// [`generate`], an operation counting as an error once it has run for
/// `deadline`.
async fn generate_with_deadline<F, Fut>(
    spec: LoadSpec,
    operation: F,
    finished: Arc<AtomicU64>,
    deadline: Duration,
) -> anyhow::Result<(Recording, Duration)>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let window_start = started + spec.warmup;
    let window_end = window_start + spec.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..spec.clients.max(1) {
        let operation = operation.clone();
        let finished = finished.clone();
        let mut recording = Recording::new()?;
        tasks.spawn(async move {
            loop {
                let begun = Instant::now();
                if begun >= window_end {
                    break;
                }
                let outcome = match tokio::time::timeout(deadline, operation()).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(anyhow::anyhow!("no answer within {deadline:?}")),
                };
                let done = Instant::now();
                finished.fetch_add(1, Ordering::Relaxed);
                let counted = begun >= window_start && done <= window_end;
                match outcome {
                    Ok(()) if counted => recording.record(done - begun),
                    Ok(()) => {}
                    // Errors count wherever they happen: a warm-up failure
                    // is as much a finding as one in the window.
                    Err(error) => recording.record_error(&error),
                }
            }
            recording
        });
    }
    // This process's CPU time inside the window: sampled at its edges
    // while the clients run.
    let ticks_at = |instant: Instant| async move {
        tokio::time::sleep_until(instant.into()).await;
        (crate::cpu::own_ticks_now(), crate::cpu::client_ticks_now())
    };
    let (start, end) = (ticks_at(window_start).await, ticks_at(window_end).await);
    let between = |start: Option<u64>, end: Option<u64>| Some(end?.saturating_sub(start?));
    let mut total = Recording::new()?;
    total.cpu_ticks = between(start.0, end.0);
    total.client_ticks = between(start.1, end.1);
    while let Some(joined) = tasks.join_next().await {
        let recording = joined.context("a load-generator task failed")?;
        total.merge(&recording)?;
    }
    Ok((total, spec.duration))
}

/// A raw HTTP/1.1 `GET` of one URL, answered with an expected body: the
/// operation the load generator drives a server that is not Clemmys with
/// (the `wasmtime serve` peer). Like [`clemmys_client::Client`], it keeps a
/// pool of keep-alive connections with `TCP_NODELAY`, shared by its clones,
/// so each closed-loop client reuses one connection.
#[derive(Clone)]
pub struct RawGet {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    expected: Bytes,
}

impl std::fmt::Debug for RawGet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawGet")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl RawGet {
    /// A `GET uri` whose answer must be `200` with body `expected`.
    pub fn new(uri: &str, expected: &[u8]) -> anyhow::Result<Self> {
        let uri: hyper::Uri = uri.parse().with_context(|| format!("parsing {uri}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            http,
            uri,
            expected: Bytes::copy_from_slice(expected),
        })
    }

    /// One request; an error unless it answered `200` with the expected body.
    pub async fn get(&self) -> anyhow::Result<()> {
        let request = hyper::Request::get(self.uri.clone())
            .body(Full::new(Bytes::new()))
            .context("building the request")?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("GET {}", self.uri))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of GET {}", self.uri))?
            .to_bytes();
        check_answer(status.as_u16(), &body, &self.expected)
    }
}

/// `Ok` when an answer is `200` with `expected` as its body.
pub(crate) fn check_answer(status: u16, body: &[u8], expected: &[u8]) -> anyhow::Result<()> {
    if status != 200 {
        anyhow::bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(body.get(..200).unwrap_or(body))
        );
    }
    if body != expected {
        anyhow::bail!(
            "unexpected answer {:?} (expected {:?})",
            String::from_utf8_lossy(body.get(..200).unwrap_or(body)),
            String::from_utf8_lossy(expected)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn summary_of_known_latencies() {
        let mut recording = Recording::new().expect("recording");
        for value in 1..=100 {
            recording.record(ms(value));
        }
        let summary = recording.summarize(Duration::from_secs(4));
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.errors, 0);
        assert!((summary.throughput_rps - 25.0).abs() < 1e-9);
        // The mean, min and max are exact.
        assert!((summary.mean_ms - 50.5).abs() < 1e-9);
        assert!((summary.min_ms - 1.0).abs() < 1e-9);
        assert!((summary.max_ms - 100.0).abs() < 1e-9);
        // Quantiles are within the histogram's 0.1%.
        let close = |found: f64, expected: f64| (found - expected).abs() <= expected * 1e-3;
        assert!(close(summary.p50_ms, 50.0), "{}", summary.p50_ms);
        assert!(close(summary.p90_ms, 90.0), "{}", summary.p90_ms);
        assert!(close(summary.p99_ms, 99.0), "{}", summary.p99_ms);
    }

    #[test]
    fn sub_millisecond_latencies_keep_microsecond_precision() {
        let mut recording = Recording::new().expect("recording");
        for _ in 0..10 {
            recording.record(Duration::from_micros(437));
        }
        let summary = recording.summarize(Duration::from_secs(1));
        assert!((summary.p50_ms - 0.437).abs() < 0.001, "{}", summary.p50_ms);
        assert!((summary.mean_ms - 0.437).abs() < 1e-9);
    }

    #[tokio::test]
    async fn an_operation_that_never_ends_is_an_error_not_a_hang() {
        let spec = LoadSpec {
            clients: 2,
            warmup: Duration::ZERO,
            duration: ms(1000),
        };
        let never = || std::future::pending::<anyhow::Result<()>>();
        let finished = Arc::new(AtomicU64::new(0));
        let (recording, _) = generate_with_deadline(spec, never, finished.clone(), ms(20))
            .await
            .expect("the run ends");
        let summary = recording.summarize(spec.duration);
        assert_eq!(summary.requests, 0);
        assert!(summary.errors >= 2, "each client's operation timed out");
        assert_eq!(finished.load(Ordering::Relaxed), summary.errors);
        assert_eq!(recording.first_error(), Some("no answer within 20ms"));
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes_and_first_error() {
        let mut one = Recording::new().expect("recording");
        one.record(ms(2));
        let mut two = Recording::new().expect("recording");
        two.record(ms(8));
        two.record(ms(5));
        two.record_error(&anyhow::anyhow!("first"));
        two.record_error(&anyhow::anyhow!("second"));
        one.merge(&two).expect("merge");
        let summary = one.summarize(Duration::from_secs(1));
        assert_eq!(summary.requests, 3);
        assert_eq!(summary.errors, 2);
        assert!((summary.min_ms - 2.0).abs() < 1e-9);
        assert!((summary.max_ms - 8.0).abs() < 1e-9);
        assert!((summary.mean_ms - 5.0).abs() < 1e-9);
        assert_eq!(one.first_error(), Some("first"));
    }

    #[test]
    fn cpu_per_request_sums_the_windows_ticks_over_their_requests() {
        let mut one = Recording::new().expect("recording");
        one.cpu_ticks = Some(30);
        one.client_ticks = Some(10);
        one.record(ms(1));
        let mut two = Recording::new().expect("recording");
        two.cpu_ticks = Some(70);
        two.client_ticks = Some(30);
        for _ in 0..999 {
            two.record(ms(1));
        }
        one.merge(&two).expect("merge");
        // 100 ticks of 10 ms = 1 s of CPU over 1000 requests: 1000 µs each.
        let summary = one.summarize(Duration::from_secs(1));
        assert!((summary.cpu_us_per_request - 1000.0).abs() < 1e-9);
        // 40 of the 100 ticks were the clients': 400 µs, the node 600.
        assert!((summary.client_cpu_us_per_request - 400.0).abs() < 1e-9);
        assert!((summary.node_cpu_us_per_request - 600.0).abs() < 1e-9);
        // Unmeasured CPU is no figure, not zero.
        let mut unmeasured = Recording::new().expect("recording");
        unmeasured.record(ms(1));
        assert!(
            unmeasured
                .summarize(Duration::from_secs(1))
                .cpu_us_per_request
                .is_nan()
        );
    }

    #[test]
    fn an_empty_recording_has_no_figures() {
        let summary = Recording::new()
            .expect("recording")
            .summarize(Duration::from_secs(1));
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.throughput_rps, 0.0);
        assert!(summary.p50_ms.is_nan() && summary.mean_ms.is_nan() && summary.max_ms.is_nan());
    }

    #[test]
    fn out_of_range_latencies_saturate() {
        let mut recording = Recording::new().expect("recording");
        recording.record(Duration::ZERO);
        recording.record(Duration::from_secs(1_000));
        let summary = recording.summarize(Duration::from_secs(1));
        assert_eq!(summary.requests, 2);
        assert!(summary.min_ms > 0.0);
        assert!((summary.max_ms - 120_000.0).abs() < 1e-6);
    }

    #[test]
    fn raw_answers_must_be_200_with_the_expected_body() {
        let hello = br#"{"payload":"Hello, World!"}"#;
        assert!(check_answer(200, hello, hello).is_ok());
        let error = check_answer(500, b"boom", hello).expect_err("500");
        assert!(error.to_string().contains("HTTP 500: boom"), "{error}");
        let error = check_answer(200, b"Hello, WASI!", hello).expect_err("body");
        assert!(error.to_string().contains("Hello, WASI!"), "{error}");
        assert!(RawGet::new("not a uri", hello).is_err());
    }

    #[tokio::test]
    async fn generator_records_only_successes_and_counts_errors() {
        // Nothing here depends on timing: only relations that hold however
        // the scheduler runs the tasks.
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let operation = move || {
            let seen = seen.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                if n % 2 == 1 {
                    anyhow::bail!("every second call fails");
                }
                Ok(())
            }
        };
        let finished = Arc::new(AtomicU64::new(0));
        let spec = LoadSpec {
            clients: 3,
            warmup: Duration::from_millis(10),
            duration: Duration::from_millis(20),
        };
        let (recording, window) = generate(spec, operation, finished.clone())
            .await
            .expect("load");
        assert_eq!(window, spec.duration);
        let total = calls.load(Ordering::Relaxed);
        assert_eq!(finished.load(Ordering::Relaxed), total);
        let summary = recording.summarize(window);
        assert!(summary.requests + summary.errors <= total);
        assert!(summary.errors <= total.div_ceil(2));
        if summary.errors > 0 {
            assert_eq!(recording.first_error(), Some("every second call fails"));
        }
    }
}
