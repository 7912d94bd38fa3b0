//! Growth: does a node slow down as its store grows? Two nodes side by
//! side, one on an empty data directory and one on a data directory
//! preloaded with many activation records (default 1,000,000), warm plain
//! `noop` on each in alternating slices of one window (see
//! [`crate::alternate`]), at 1 and N clients.
//!
//! The preload is honest: before the second node starts, the bench opens
//! the store file that node will use (`DATA_DIR/store.redb`, as
//! `RunningServer::start` lays it out) with [`RedbStore::open`] and stores
//! each record with [`EntityStore::put_activation`], many at once, so the
//! store's group commit batches them as it batches a busy node's. The
//! records are copies of a real record of the measured action (same
//! namespace and action, read back from the empty node), each with its own
//! id and a start time spread over the last [`SPREAD_DAYS`] days.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use clemmys_store::{EntityStore, RedbStore};
use clemmys_whisk::{Activation, ActivationId};
use serde::Serialize;

use crate::alternate;
use crate::load::LatencySummary;
use crate::model::Mode;
use crate::progress::Progress;
use crate::scenarios::{Modules, Node, Plan, invoke_operation};

/// Over how many days the preloaded records' start times are spread.
pub const SPREAD_DAYS: u64 = 30;
/// Writes in flight at once while preloading: more than the store's batch
/// (512), so that every commit can be full.
const PRELOAD_IN_FLIGHT: usize = 2_048;
/// The measured action, on both nodes.
const ACTION: &str = "bench-noop-plain";

/// What the growth comparison found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrowthReport {
    /// Activation records preloaded.
    pub records: usize,
    /// How long the preload took, seconds.
    pub preload_s: f64,
    /// The preloaded data directory's size before its node started, bytes.
    pub data_dir_bytes: u64,
    /// Its file system.
    pub data_dir_fs: Option<String>,
    /// One row per client count.
    pub rows: Vec<GrowthRow>,
}

/// Both nodes at one client count.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrowthRow {
    /// Concurrent clients.
    pub clients: usize,
    /// The node on an empty store.
    pub empty: LatencySummary,
    /// The node on the preloaded store.
    pub preloaded: LatencySummary,
    /// Preloaded throughput / empty throughput (higher is better).
    pub throughput_ratio: f64,
    /// Preloaded p50 / empty p50 (lower is better).
    pub p50_ratio: f64,
}

impl GrowthRow {
    /// The row of two measurements.
    pub fn new(clients: usize, empty: LatencySummary, preloaded: LatencySummary) -> Self {
        Self {
            clients,
            throughput_ratio: preloaded.throughput_rps / empty.throughput_rps,
            p50_ratio: preloaded.p50_ms / empty.p50_ms,
            empty,
            preloaded,
        }
    }
}

/// Runs the comparison with `records` preloaded records.
pub async fn measure(
    plan: &Plan,
    modules: &Modules,
    records: usize,
    progress: &Progress,
) -> anyhow::Result<GrowthReport> {
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let empty_dir = crate::temporary_dir()?;
    let preloaded_dir = crate::temporary_dir()?;
    let empty = Node::start(empty_dir.path(), largest).await?;
    let measured = async {
        empty.put_plain(ACTION, &modules.noop, true).await?;
        let id = empty.invoke(ACTION, Mode::Plain).await?;
        let template = empty
            .client
            .get_activation(id)
            .await
            .with_context(|| format!("reading activation {id}"))?;
        let store_path = preloaded_dir.path().join("store.redb");
        progress.note(&format!(
            "growth: preloading {records} activation records into {}",
            store_path.display()
        ));
        let started = Instant::now();
        preload(&store_path, &template, records, progress).await?;
        let preload_s = started.elapsed().as_secs_f64();
        let data_dir_bytes = dir_size(preloaded_dir.path())?;
        progress.note(&format!(
            "growth: preloaded {records} records in {preload_s:.1} s; data dir {:.1} MiB",
            data_dir_bytes as f64 / f64::from(1u32 << 20)
        ));
        let preloaded = Node::start(preloaded_dir.path(), largest).await?;
        let rows = side_by_side(&empty, &preloaded, plan, modules, progress).await;
        preloaded.shutdown().await;
        Ok::<_, anyhow::Error>(GrowthReport {
            records,
            preload_s,
            data_dir_bytes,
            data_dir_fs: crate::fs_type_of_path(preloaded_dir.path()),
            rows: rows?,
        })
    }
    .await;
    empty.shutdown().await;
    measured
}

/// Warm plain noop on both nodes, side by side, at each client count.
async fn side_by_side(
    empty: &Node,
    preloaded: &Node,
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<Vec<GrowthRow>> {
    preloaded.put_plain(ACTION, &modules.noop, true).await?;
    let mut rows = Vec::new();
    for &clients in &plan.clients {
        let operations = [
            invoke_operation(empty, ACTION, Mode::Plain).await?,
            invoke_operation(preloaded, ACTION, Mode::Plain).await?,
        ];
        let label = format!("growth: empty vs preloaded store, {clients} client(s)");
        let mut measured =
            alternate::side_by_side(&label, plan.spec(clients), &operations, progress)
                .await?
                .into_iter();
        let (Some(on_empty), Some(on_preloaded)) = (measured.next(), measured.next()) else {
            anyhow::bail!("{label}: the side-by-side window measured fewer than two operations");
        };
        rows.push(GrowthRow::new(
            clients,
            on_empty.summary,
            on_preloaded.summary,
        ));
    }
    Ok(rows)
}

/// Stores `records` copies of `template` in the store at `path`, each with
/// its own id and start time, [`PRELOAD_IN_FLIGHT`] at a time; closes the
/// store when done.
async fn preload(
    path: &Path,
    template: &Activation,
    records: usize,
    progress: &Progress,
) -> anyhow::Result<()> {
    let store: Arc<dyn EntityStore> = Arc::new(
        RedbStore::open(path).with_context(|| format!("opening the store {}", path.display()))?,
    );
    let now_ms = clemmys_whisk::now_ms();
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).context("reading the OS RNG")?;
    let next = Arc::new(AtomicU64::new(0));
    let total = u64::try_from(records).unwrap_or(u64::MAX);
    let step = progress.counted("growth: preloading records", total);
    let step = Arc::new(step);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..PRELOAD_IN_FLIGHT.min(records.max(1)) {
        let (store, next, step) = (store.clone(), next.clone(), step.clone());
        let template = template.clone();
        let mut random =
            SplitMix64(u64::from_le_bytes(seed) ^ (writer as u64).wrapping_mul(0x9e37));
        writers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let record = preloaded_record(&template, &mut random, now_ms);
                store
                    .put_activation(record)
                    .await
                    .with_context(|| format!("storing preloaded record {index}"))?;
                step.inc();
            }
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.context("a preload writer panicked")??;
    }
    if let Ok(step) = Arc::try_unwrap(step) {
        step.finish(&format!("{records} records"));
    }
    drop(store);
    Ok(())
}

/// A copy of `template` with a fresh id, started at a random moment of the
/// last [`SPREAD_DAYS`] days before `now_ms`, lasting as long as it did.
fn preloaded_record(template: &Activation, random: &mut SplitMix64, now_ms: u64) -> Activation {
    let mut record = template.clone();
    let high = random.next().to_le_bytes();
    let low = random.next().to_le_bytes();
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high);
    id[8..].copy_from_slice(&low);
    record.activation_id = ActivationId::from_bytes(id);
    let spread_ms = SPREAD_DAYS * 86_400_000;
    let start = now_ms.saturating_sub(random.next() % spread_ms);
    let took = template.end.saturating_sub(template.start);
    record.start = start;
    record.end = start.saturating_add(took);
    record
}

/// SplitMix64: fast, good enough to spread ids and times (not for keys).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The bytes of the files under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total: u64 = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        total = total.saturating_add(if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::{ActivationResponse, ActivationStatus, KeyValues};
    use std::time::Duration;

    fn template() -> Activation {
        Activation {
            namespace: "guest".into(),
            name: ACTION.into(),
            subject: "guest".into(),
            activation_id: ActivationId::from_bytes([7; 16]),
            version: "0.0.1".into(),
            publish: false,
            start: 1_000,
            end: 1_003,
            duration: 3,
            cause: None,
            response: ActivationResponse {
                status: ActivationStatus::Success,
                success: true,
                result: Some(serde_json::json!({})),
            },
            logs: Vec::new(),
            annotations: KeyValues::default(),
        }
    }

    #[test]
    fn preloaded_records_are_the_template_at_other_ids_and_times() {
        let template = template();
        let mut random = SplitMix64(42);
        let now = 40 * 86_400_000;
        let records: Vec<Activation> = (0..200)
            .map(|_| preloaded_record(&template, &mut random, now))
            .collect();
        let mut ids: Vec<_> = records.iter().map(|r| r.activation_id).collect();
        ids.sort_by_key(|id| *id.as_bytes());
        ids.dedup();
        assert_eq!(ids.len(), 200, "every id differs");
        for record in &records {
            assert_eq!(
                (record.namespace.as_str(), record.name.as_str()),
                ("guest", ACTION)
            );
            assert!(record.start <= now && record.start >= now - SPREAD_DAYS * 86_400_000);
            assert_eq!(record.end - record.start, 3);
        }
        let days: std::collections::BTreeSet<u64> =
            records.iter().map(|r| r.start / 86_400_000).collect();
        assert!(days.len() > 10, "spread over days: {days:?}");
    }

    #[tokio::test]
    async fn preload_stores_every_record_through_the_store_api() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        preload(&path, &template(), 1_500, &Progress::new())
            .await
            .expect("preload");
        // The writer thread releases the file a moment after the handle.
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match RedbStore::open(&path) {
                Ok(store) => break store,
                Err(clemmys_store::StoreError::Locked) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(error) => panic!("reopening: {error}"),
            }
        };
        let filter = clemmys_store::ActivationFilter {
            name: Some(ACTION.into()),
            ..Default::default()
        };
        assert_eq!(
            store
                .count_activations("guest", &filter)
                .await
                .expect("count"),
            1_500
        );
        assert!(dir_size(dir.path()).expect("size") > 1_500 * 100);
    }

    #[test]
    fn ratios_are_preloaded_over_empty() {
        let summary = |rps: f64, p50: f64| LatencySummary {
            requests: 10,
            errors: 0,
            window_s: 1.0,
            throughput_rps: rps,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: p50,
            min_ms: p50,
            max_ms: p50,
            cpu_us_per_request: f64::NAN,
            node_cpu_us_per_request: f64::NAN,
            client_cpu_us_per_request: f64::NAN,
        };
        let row = GrowthRow::new(8, summary(1000.0, 1.0), summary(900.0, 1.2));
        assert!((row.throughput_ratio - 0.9).abs() < 1e-12);
        assert!((row.p50_ratio - 1.2).abs() < 1e-12);
    }
}
