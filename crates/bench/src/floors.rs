//! Floors: what every blocking invoke pays before any wasm runs, measured
//! on the main node so that the warm figures can be read against them.
//!
//! * **API round trip**: an authenticated `GET /namespaces` through the
//!   same client, in a closed loop at one client: HTTP/1.1 on loopback,
//!   routing, authentication and a JSON answer, no activation.
//! * **fsync**: rewriting 4 KiB of a file in the data directory and
//!   `fdatasync`ing it, one at a time. A blocking invoke answers only once
//!   its activation record is durable (the store's group commit), so with
//!   one client every invoke waits for at least one such flush.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::load::{LatencySummary, LoadSpec};
use super::progress::Progress;
use super::scenarios::{Node, Plan, closed_loop};
use crate::model::Quantiles;

/// Flushes timed.
const FSYNCS: usize = 200;
/// Longest API window.
const API_WINDOW: Duration = Duration::from_secs(2);

/// The floors measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Floors {
    /// `GET /namespaces`, one client.
    pub api_get: LatencySummary,
    /// One 4 KiB rewrite + `fdatasync` in the data directory, ms.
    pub fsync_ms: Quantiles,
}

/// Measures both floors.
pub async fn measure(node: &Node, plan: &Plan, progress: &Progress) -> anyhow::Result<Floors> {
    let client = node.client.clone();
    let operation = move || {
        let client = client.clone();
        async move {
            client.list_namespaces().await?;
            Ok(())
        }
    };
    let spec = LoadSpec {
        clients: 1,
        warmup: plan.warmup.min(API_WINDOW),
        duration: plan.duration.min(API_WINDOW),
    };
    let api_get = closed_loop("floor: GET /namespaces", spec, operation, progress).await?;
    let dir = node.data_dir().to_owned();
    let fsync = tokio::task::spawn_blocking(move || time_fsyncs(&dir, FSYNCS))
        .await
        .context("the fsync probe panicked")??;
    let fsync_ms = Quantiles::of(fsync.iter().map(|d| d.as_secs_f64() * 1e3));
    progress.note(&format!(
        "floor: 4 KiB write + fdatasync in the data dir: p50 {:.3} ms, p90 {:.3} ms",
        fsync_ms.p50, fsync_ms.p90
    ));
    Ok(Floors { api_get, fsync_ms })
}

/// `count` timed rewrites + `fdatasync` of a 4 KiB file in `dir`.
fn time_fsyncs(dir: &Path, count: usize) -> anyhow::Result<Vec<Duration>> {
    let path = dir.join("bench-fsync-probe");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5a_u8; 4096];
    file.write_all(&block).context("writing the probe")?;
    file.sync_all().context("syncing the probe")?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.seek(SeekFrom::Start(0)).context("seeking the probe")?;
        file.write_all(&block).context("writing the probe")?;
        file.sync_data().context("syncing the probe")?;
        times.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fsync_probe_times_each_flush_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let times = time_fsyncs(dir.path(), 3).expect("probe");
        assert_eq!(times.len(), 3);
        assert!(
            std::fs::read_dir(dir.path())
                .expect("read")
                .next()
                .is_none()
        );
    }
}
