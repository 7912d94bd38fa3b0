//! `clemmys-soak`: runs a real `clemmys serve` process for a long time
//! under a mixed load (plain and confidential, blocking and non-blocking,
//! a sequence, creates and deletes, and functions that trap, loop, hog
//! memory and flood logs), optionally killing it (SIGKILL) and starting it
//! again every few minutes. Every sampling window it prints throughput,
//! p50 and p99, errors, and the node's RSS and open descriptors; at the
//! end it checks that every acknowledged (202) activation has a record and
//! that neither RSS nor descriptors grew without bound, and exits non-zero
//! if not. `scripts/soak.sh` builds and runs it.

mod load;
mod node;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use clemmys_client::confidential::{
    BrokerIdentityDoc, ClientHome, Confidential, expected_broker_measurement,
};
use clemmys_whisk::ActivationId;
use serde::Serialize;

use crate::load::{Modules, Shared};
use crate::node::{Footprint, NodeProcess};

/// Soak a Clemmys node: a long mixed load, crashes, and a check that
/// nothing leaks and nothing acknowledged is lost.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// How long to run, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seconds per sampling window (one printed line each).
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Cap on the total request rate (operations per second, all clients
    /// together); unlimited when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Kill the node with SIGKILL and restart it every this many minutes;
    /// never when absent.
    #[arg(long, value_name = "MINUTES")]
    crash_every: Option<f64>,
    /// The `clemmys` binary to run (default: next to this one).
    #[arg(long)]
    clemmys: Option<PathBuf>,
    /// Where the example actions are.
    #[arg(long, default_value = "target/examples/wasm32-wasip1/release")]
    actions_dir: PathBuf,
    /// Also write the samples and the verdict as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the node's data directory and log (printed at the end).
    #[arg(long)]
    keep: bool,
    /// One more argument for `clemmys serve` (repeat for several), e.g.
    /// `--serve-arg=--crash-recovery --serve-arg=quick`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

/// One sampling window.
#[derive(Debug, Serialize)]
struct Sample {
    /// Seconds since the load started, at the window's end.
    at_secs: f64,
    /// Which life of the node (0, then +1 after each restart).
    life: u32,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    unexpected: u64,
    unavailable: u64,
    footprint: Option<Footprint>,
}

/// The end of the run.
#[derive(Debug, Serialize)]
struct Verdict {
    operations: u64,
    unexpected: u64,
    restarts: u32,
    acknowledged: usize,
    acknowledged_without_record: usize,
    rss_growth_kib: Option<i64>,
    fd_growth: Option<i64>,
    failures: Vec<String>,
}

/// More RSS than this above the first half's peak, in the last half of a
/// node's life, is growth (as well as 20% of that peak).
const RSS_SLACK_KIB: u64 = 32 * 1024;
/// More descriptors than this above the first half's peak is growth.
const FD_SLACK: u64 = 32;
/// How long after a restart errors still count as unavailability.
const RESTART_GRACE: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the load's runtime")?;
    let verdict = runtime.block_on(soak(&args))?;
    if verdict.failures.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        for failure in &verdict.failures {
            eprintln!("soak: FAILED: {failure}");
        }
        bail!("the soak failed ({} problems)", verdict.failures.len())
    }
}

async fn soak(args: &Args) -> anyhow::Result<Verdict> {
    if args.minutes.is_nan() || args.minutes <= 0.0 || args.clients == 0 || args.sample_secs == 0 {
        bail!("--minutes, --clients and --sample-secs must be positive");
    }
    let binary = match &args.clemmys {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("clemmys"),
    };
    let modules = Modules::load(&args.actions_dir)?;
    let root = tempfile::Builder::new().prefix("clemmys-soak-").tempdir()?;
    let mut node = NodeProcess::start(&binary, root.path(), args.serve_arg.clone())?;
    node.admin(&[
        "namespace",
        "set-limits",
        "guest",
        "--invocations-per-minute",
        "1000000000",
        "--concurrent-invocations",
        "1000",
    ])?;
    let client = node.guest_client()?;
    let owner = Arc::new(connect_owner(&client, root.path()).await?);
    load::deploy(&client, &owner, &modules).await?;
    println!(
        "soak: {} clients for {} min{}{}; node log {}",
        args.clients,
        args.minutes,
        args.rate
            .map(|r| format!(", at most {r} ops/s"))
            .unwrap_or_default(),
        args.crash_every
            .map(|m| format!(", SIGKILL every {m} min"))
            .unwrap_or_default(),
        node.log_path().display()
    );

    let shared = Arc::new(Shared::new(modules.noop.clone()));
    let mix: Arc<[load::Operation]> = load::mix().into();
    let pace = args
        .rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(args.clients as f64 / rate));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            tokio::spawn(load::client_loop(
                client.clone(),
                owner.clone(),
                shared.clone(),
                mix.clone(),
                i * mix.len() / args.clients,
                pace,
            ))
        })
        .collect();

    let started = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let window = Duration::from_secs(args.sample_secs);
    let crash_every = args.crash_every.map(|m| Duration::from_secs_f64(m * 60.0));
    let mut next_crash = crash_every.map(|every| started + every);
    let mut samples = Vec::new();
    let (mut life, mut operations, mut unexpected) = (0u32, 0u64, 0u64);
    let mut examples = Vec::new();
    println!("  time  life    ops/s   p50 ms   p99 ms  errors  away  RSS MiB  fds");
    while started.elapsed() < total {
        let window_end = (started.elapsed() + window).min(total);
        loop {
            let now = started.elapsed();
            if now >= window_end {
                break;
            }
            match next_crash {
                Some(at) if Instant::now() >= at => {
                    shared.restarting.store(true, Ordering::SeqCst);
                    let away = tokio::task::block_in_place(|| node.crash_and_restart())?;
                    life += 1;
                    println!("  -- SIGKILL, restarted in {:.1} s", away.as_secs_f64());
                    tokio::time::sleep(RESTART_GRACE).await;
                    shared.restarting.store(false, Ordering::SeqCst);
                    next_crash = crash_every.map(|every| Instant::now() + every);
                }
                _ => tokio::time::sleep((window_end - now).min(Duration::from_millis(200))).await,
            }
        }
        let tallies = shared.take_window();
        let seconds = window.as_secs_f64();
        let sample = Sample {
            at_secs: started.elapsed().as_secs_f64(),
            life,
            ops_per_sec: tallies.expected as f64 / seconds,
            p50_ms: tallies.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: tallies.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
            unexpected: tallies.unexpected,
            unavailable: tallies.unavailable,
            footprint: node.footprint().ok(),
        };
        operations += tallies.expected + tallies.unexpected + tallies.unavailable;
        unexpected += tallies.unexpected;
        examples.extend(
            tallies
                .examples
                .into_iter()
                .take(5usize.saturating_sub(examples.len())),
        );
        print_sample(&sample);
        samples.push(sample);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        let _ = client.await;
    }

    let acknowledged = std::mem::take(
        &mut *shared
            .acknowledged
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let missing = without_record(&client, &acknowledged).await?;
    let mut failures = Vec::new();
    if unexpected > 0 {
        failures.push(format!(
            "{unexpected} of {operations} operations ended unexpectedly, e.g. {examples:?}"
        ));
    }
    if !missing.is_empty() {
        failures.push(format!(
            "{} of {} acknowledged activations have no record, e.g. {}",
            missing.len(),
            acknowledged.len(),
            missing[0]
        ));
    }
    let growth = growth_in_last_life(&samples, life);
    if let Some(growth) = &growth {
        failures.extend(growth.failures.iter().cloned());
    } else {
        println!("soak: the node's last life was too short to judge growth (needs 4 samples)");
    }
    let verdict = Verdict {
        operations,
        unexpected,
        restarts: life,
        acknowledged: acknowledged.len(),
        acknowledged_without_record: missing.len(),
        rss_growth_kib: growth.as_ref().map(|growth| growth.rss_kib),
        fd_growth: growth.as_ref().map(|growth| growth.fds),
        failures,
    };
    println!(
        "soak: {operations} operations, {unexpected} unexpected, {} restarts, {} acknowledged \
         (202) activations checked, {} without a record",
        verdict.restarts, verdict.acknowledged, verdict.acknowledged_without_record
    );
    if let Some(path) = &args.json {
        let report = serde_json::json!({ "samples": samples, "verdict": verdict });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.keep {
        let kept = root.keep();
        println!("soak: kept the node's directory {}", kept.display());
    }
    node.kill();
    Ok(verdict)
}

/// A confidential client of the guest namespace with a fresh home, the
/// node's broker verified and pinned.
async fn connect_owner(
    client: &clemmys_client::Client,
    root: &std::path::Path,
) -> anyhow::Result<Confidential> {
    let broker = BrokerIdentityDoc::fetch(client).await?;
    let mut pin = broker
        .verify(expected_broker_measurement(), broker.sim_platform_key)
        .context("verifying the node's broker")?;
    pin.namespace = client.list_namespaces().await?.into_iter().next();
    let home = ClientHome::open(root.join("client-home"))?;
    home.save_broker_pin(client.api_host(), &pin)?;
    Ok(Confidential::connect(client.clone(), home).await?)
}

fn print_sample(sample: &Sample) {
    let (rss, fds) = sample
        .footprint
        .map_or((String::from("-"), String::from("-")), |f| {
            (
                format!("{:.0}", f.rss_kib as f64 / 1024.0),
                f.fds.to_string(),
            )
        });
    println!(
        "{:5.0}s {:5} {:8.0} {:8.2} {:8.2} {:7} {:5} {:>8} {:>4}",
        sample.at_secs,
        sample.life,
        sample.ops_per_sec,
        sample.p50_ms,
        sample.p99_ms,
        sample.unexpected,
        sample.unavailable,
        rss,
        fds
    );
}

/// The acknowledged activations that have no record, looked up eight at a
/// time.
async fn without_record(
    client: &clemmys_client::Client,
    ids: &[ActivationId],
) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for batch in ids.chunks(8) {
        let mut lookups = tokio::task::JoinSet::new();
        for id in batch {
            let (client, id) = (client.clone(), *id);
            lookups.spawn(async move { (id, client.get_activation(id).await) });
        }
        while let Some(looked_up) = lookups.join_next().await {
            match looked_up.context("a lookup task")? {
                (_, Ok(_)) => {}
                (id, Err(clemmys_client::ClientError::Api { status: 404, .. })) => {
                    missing.push(id.to_string());
                }
                (_, Err(error)) => {
                    return Err(error).context("reading an acknowledged activation");
                }
            }
        }
    }
    Ok(missing)
}

/// How much the node grew in its last life.
struct Growth {
    /// The peak RSS of the second half over that of the first, KiB.
    rss_kib: i64,
    /// The same, of open descriptors.
    fds: i64,
    /// Growth past the slack, said in words.
    failures: Vec<String>,
}

/// Growth of RSS and descriptors in the node's last life: the peak of its
/// second half against the peak of its first (its first sample, still
/// warming up, left out). `None` when that life has fewer than four
/// samples.
fn growth_in_last_life(samples: &[Sample], life: u32) -> Option<Growth> {
    let footprints: Vec<Footprint> = samples
        .iter()
        .filter(|sample| sample.life == life)
        .filter_map(|sample| sample.footprint)
        .skip(1)
        .collect();
    if footprints.len() < 3 {
        return None;
    }
    let (first, second) = footprints.split_at(footprints.len() / 2);
    let peak =
        |half: &[Footprint], of: fn(&Footprint) -> u64| half.iter().map(of).max().unwrap_or(0);
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (rss_before, rss_after) = (peak(first, |f| f.rss_kib), peak(second, |f| f.rss_kib));
    let (fds_before, fds_after) = (peak(first, |f| f.fds), peak(second, |f| f.fds));
    let mut failures = Vec::new();
    if rss_after > rss_before + rss_before / 5 + RSS_SLACK_KIB {
        failures.push(format!(
            "the node's RSS grew from a peak of {rss_before} KiB to {rss_after} KiB"
        ));
    }
    if fds_after > fds_before + FD_SLACK {
        failures.push(format!(
            "the node's open descriptors grew from a peak of {fds_before} to {fds_after}"
        ));
    }
    Some(Growth {
        rss_kib: signed(rss_after).saturating_sub(signed(rss_before)),
        fds: signed(fds_after).saturating_sub(signed(fds_before)),
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(life: u32, footprints: &[(u64, u64)]) -> Vec<Sample> {
        footprints
            .iter()
            .map(|&(rss_kib, fds)| Sample {
                at_secs: 0.0,
                life,
                ops_per_sec: 0.0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                unexpected: 0,
                unavailable: 0,
                footprint: Some(Footprint { rss_kib, fds }),
            })
            .collect()
    }

    #[test]
    fn a_steady_node_passes_and_a_leaking_one_fails() {
        let steady = samples(
            0,
            &[
                (10, 5),
                (200_000, 30),
                (210_000, 31),
                (205_000, 30),
                (208_000, 31),
            ],
        );
        let growth = growth_in_last_life(&steady, 0).expect("enough samples");
        assert!(growth.failures.is_empty(), "{:?}", growth.failures);
        assert_eq!((growth.rss_kib, growth.fds), (-2_000, 0));

        let leaking = samples(
            0,
            &[
                (10, 5),
                (200_000, 30),
                (230_000, 60),
                (300_000, 90),
                (400_000, 120),
            ],
        );
        let growth = growth_in_last_life(&leaking, 0).expect("enough samples");
        assert_eq!(growth.failures.len(), 2, "{:?}", growth.failures);
    }

    #[test]
    fn only_the_last_life_counts_and_it_needs_four_samples() {
        let mut all = samples(0, &[(1, 1), (1, 1), (900_000, 900), (900_000, 900)]);
        all.extend(samples(1, &[(10, 5), (200_000, 30), (200_000, 30)]));
        assert!(growth_in_last_life(&all, 1).is_none());
        all.extend(samples(1, &[(200_000, 30)]));
        let growth = growth_in_last_life(&all, 1).expect("four samples");
        assert!(growth.failures.is_empty(), "{:?}", growth.failures);
    }
}
