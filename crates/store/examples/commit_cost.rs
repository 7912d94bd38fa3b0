//! What `CrashRecovery::Quick` costs a commit: times durable writes that
//! each wait for their own commit (as a 202-acknowledged activation's
//! stand-in does), under `Quick` and `Full`, alternated, on a store that
//! already holds `--records` activation records.
//!
//! `cargo run --release -p clemmys-store --example commit_cost [WRITES] [RECORDS]`

use std::time::Instant;

use clemmys_store::{CrashRecovery, EntityStore, RedbStore, StoreConfig};
use clemmys_whisk::{Activation, ActivationId, ActivationResponse, ActivationStatus, KeyValues};

fn record(n: u64) -> Activation {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    Activation {
        namespace: "guest".into(),
        name: "noop".into(),
        subject: "guest".into(),
        activation_id: ActivationId::from_bytes(id),
        version: "0.0.1".into(),
        publish: false,
        start: n,
        end: n,
        duration: 0,
        cause: None,
        response: ActivationResponse::error(ActivationStatus::InternalError, "interrupted"),
        logs: Vec::new(),
        annotations: KeyValues::default(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let writes: u64 = args.next().map_or(Ok(500), |a| a.parse())?;
    let records: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let mut next = 0u64;
    for round in 0..3 {
        for recovery in [CrashRecovery::Quick, CrashRecovery::Full] {
            let dir = tempfile::tempdir()?;
            let config = StoreConfig {
                crash_recovery: recovery,
                ..StoreConfig::default()
            };
            let store = RedbStore::open_with(&dir.path().join("store.redb"), config)?;
            store.preload_activations("guest", "noop", records)?;
            let started = Instant::now();
            for _ in 0..writes {
                next += 1;
                store.put_stand_in(record(next)).await?;
            }
            let per_commit = started.elapsed() / u32::try_from(writes)?;
            println!(
                "round {round} {recovery:?}: {per_commit:?} per durable write ({records} records stored)"
            );
        }
    }
    Ok(())
}
