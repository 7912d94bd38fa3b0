//! Side-by-side measurement: several operations (plain and confidential
//! invokes, say) measured in alternating slices of one window instead of
//! one whole window after the other.
//!
//! Why: a node drifts during a run (its store grows, the disk's flush time
//! wanders, caches fill), and whatever ran second always ran on the later,
//! usually slower, node. Alternating in ABBA order (A B, then B A, …) puts
//! every operation on every part of the drift, so the ratios compare like
//! with like.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::load::{self, LatencySummary, LoadSpec, Recording};
use super::progress::Progress;

/// One operation of the load generator, boxed so that different ones can
/// be measured side by side.
pub type Operation =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// Wraps `operation` as an [`Operation`].
pub fn operation<F, Fut>(operation: F) -> Operation
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    Arc::new(move || Box::pin(operation()))
}

/// Fewest slices each operation's window is cut into.
const MIN_ROUNDS: u32 = 5;
/// Most slices: past this the per-slice warm-ups cost more than the
/// finer interleaving gains.
const MAX_ROUNDS: u32 = 60;

/// Slices a window of `duration` is cut into: about one per second, so a
/// long window follows the node's drift (and a neighbour's bursts of CPU)
/// as closely as a short one; between [`MIN_ROUNDS`] and [`MAX_ROUNDS`].
fn rounds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(MIN_ROUNDS, MAX_ROUNDS)
}
/// Unrecorded warm-up before every slice after the first (the first has the
/// whole warm-up of `spec`): enough for the clients to reach steady state
/// again after the other operation ran.
const SLICE_WARMUP: Duration = Duration::from_millis(200);

/// What [`side_by_side`] measured of one operation.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The whole window.
    pub summary: LatencySummary,
    /// Successful requests in each slice, in round order: slice `k` of two
    /// operations ran next to each other, so their ratio is one sample of
    /// the ratio, and the spread of those samples says how far to trust
    /// the whole window's.
    pub slice_requests: Vec<u64>,
}

/// Measures each of `operations` with `spec.clients` closed-loop clients
/// for `spec.duration` in all, in [`rounds`] alternating slices; one
/// [`Measured`] per operation, in order. `label` names the progress bar.
pub async fn side_by_side(
    label: &str,
    spec: LoadSpec,
    operations: &[Operation],
    progress: &Progress,
) -> anyhow::Result<Vec<Measured>> {
    let rounds = rounds(spec.duration);
    let slice = spec.duration / rounds;
    let later_warmup = SLICE_WARMUP.min(spec.warmup);
    let per_operation = spec.warmup + spec.duration + later_warmup * rounds.saturating_sub(1);
    let total = per_operation * u32::try_from(operations.len()).unwrap_or(u32::MAX);
    let finished = Arc::new(AtomicU64::new(0));
    let step = progress.timed(label, total, finished.clone());
    let mut recordings = operations
        .iter()
        .map(|_| Recording::new())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut slice_requests = vec![Vec::with_capacity(rounds as usize); operations.len()];
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..operations.len()).collect()
        } else {
            (0..operations.len()).rev().collect()
        };
        for index in order {
            let slice_spec = LoadSpec {
                clients: spec.clients,
                warmup: if round == 0 {
                    spec.warmup
                } else {
                    later_warmup
                },
                duration: slice,
            };
            let operation = operations[index].clone();
            let (recording, _) =
                load::generate(slice_spec, move || operation(), finished.clone()).await?;
            slice_requests[index].push(recording.count());
            recordings[index].merge(&recording)?;
        }
    }
    let window = slice * rounds;
    let summaries = recordings
        .iter()
        .map(|recording| recording.summarize_successes(label, window))
        .collect::<anyhow::Result<Vec<LatencySummary>>>()?;
    let figures: Vec<String> = summaries
        .iter()
        .map(|s| format!("{:.0} req/s p50 {:.3} ms", s.throughput_rps, s.p50_ms))
        .collect();
    step.finish(&figures.join(" | "));
    Ok(summaries
        .into_iter()
        .zip(slice_requests)
        .map(|(summary, slice_requests)| Measured {
            summary,
            slice_requests,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_into_slices_of_about_a_second() {
        assert_eq!(rounds(Duration::from_millis(1500)), MIN_ROUNDS);
        assert_eq!(rounds(Duration::from_secs(5)), 5);
        assert_eq!(rounds(Duration::from_secs(20)), 20);
        assert_eq!(rounds(Duration::from_secs(3600)), MAX_ROUNDS);
    }
}
