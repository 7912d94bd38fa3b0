//! Listing activations on a PostgreSQL store that has grown: loads
//! `RECORDS` records of one action (plus one record of another action
//! every 100, so that a name filter has to skip), then times the API's
//! listings: newest 30 of the namespace, newest 30 of one action, a page
//! deep in the history, one by id, and the counts.
//!
//! ```sh
//! dir=$(mktemp -d); url=$(bash scripts/postgres.sh start "$dir")
//! cargo run --release -p clemmys-store --features postgres --example postgres_listing -- "$url" 1000000
//! bash scripts/postgres.sh destroy "$dir"
//! ```

use std::time::{Duration, Instant};

use clemmys_store::{ActivationFilter, EntityStore, PostgresConfig, PostgresStore, StoreConfig};

/// Runs `read` `times` times; answers the median and the worst.
async fn time<F: Future<Output = ()>>(
    times: usize,
    mut read: impl FnMut() -> F,
) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        read().await;
        took.push(started.elapsed());
    }
    took.sort();
    (took[times / 2], took[times - 1])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: postgres_listing URL [RECORDS]")?;
    let records: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let store = PostgresStore::connect(&PostgresConfig::new(&url), StoreConfig::default()).await?;

    let started = Instant::now();
    let mut loaded = 0;
    while loaded < records {
        let chunk = (records - loaded).min(100_000);
        loaded += store
            .preload_activations("guest", "echo", chunk * 99 / 100)
            .await?;
        loaded += store
            .preload_activations("guest", "other", chunk - chunk * 99 / 100)
            .await?;
    }
    let load = started.elapsed();
    println!(
        "loaded {loaded} records in {:.1} s ({:.0} records/s)",
        load.as_secs_f64(),
        loaded as f64 / load.as_secs_f64()
    );

    let newest = ActivationFilter {
        limit: 30,
        ..ActivationFilter::default()
    };
    let by_name = ActivationFilter {
        name: Some("other".into()),
        limit: 30,
        ..ActivationFilter::default()
    };
    let deep = ActivationFilter {
        skip: 100_000,
        limit: 30,
        ..ActivationFilter::default()
    };
    let newest_page = store.list_activations("guest", &newest).await?;
    let id = newest_page.last().ok_or("no records")?.activation_id;
    const TIMES: usize = 200;
    let rows = [
        (
            "list newest 30 of the namespace",
            time(TIMES, || async {
                store
                    .list_activations("guest", &newest)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
        (
            "list newest 30 of one action (1% of records)",
            time(TIMES, || async {
                store
                    .list_activations("guest", &by_name)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
        (
            "list 30 after skipping 100000",
            time(20, || async {
                store
                    .list_activations("guest", &deep)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
        (
            "get one by id",
            time(TIMES, || async {
                store
                    .get_activation("guest", &id)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
        (
            "count the namespace's",
            time(20, || async {
                store
                    .count_activations("guest", &newest)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
        (
            "count one action's",
            time(20, || async {
                store
                    .count_activations("guest", &by_name)
                    .await
                    .map(drop)
                    .expect("a read of the store")
            })
            .await,
        ),
    ];
    println!("| operation ({loaded} records) | median | worst |");
    println!("| --- | --- | --- |");
    for (name, (median, worst)) in rows {
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            median.as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
