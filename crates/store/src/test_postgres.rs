//! A PostgreSQL database for a test (features `test-support` and
//! `postgres`): a fresh database on the cluster that `scripts/test.sh`
//! started (`CLEMMYS_TEST_POSTGRES_URL`), or else a throwaway cluster of
//! the test's own, started with `scripts/postgres.sh` (a
//! `clemmys_testkit::ScriptedServer`).
//!
//! Without PostgreSQL a test is skipped, and says so, except on CI
//! (`CI=true`), where it fails: a test that needs a database must never
//! pass by not running.

use clemmys_testkit::{ScriptedKind, ScriptedServer};
use sqlx::Connection;

/// The variable naming the test run's cluster, whose URL ends in
/// `/DATABASE`.
pub const URL_VARIABLE: &str = "CLEMMYS_TEST_POSTGRES_URL";

/// Server options of a test cluster: nothing in it must outlive a crash
/// of the machine, so it spares the disk.
const FAST_OPTIONS: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off";

/// Whether PostgreSQL's server programs are installed (`scripts/setup.sh`
/// installs them), as `scripts/postgres.sh` finds them.
pub fn installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|mut versions| {
        versions
            .any(|version| version.is_ok_and(|version| version.path().join("bin/initdb").exists()))
    })
}

/// A throwaway PostgreSQL cluster in a temporary directory, destroyed on
/// drop; it can be stopped (fast shutdown: connections are cut) and started
/// again (on the same port) to play a database that goes away. Its URL is
/// `postgres://postgres@127.0.0.1:PORT/postgres`.
pub type Cluster = ScriptedServer<Postgres>;

/// The kind of [`Cluster`]: `scripts/postgres.sh`.
pub enum Postgres {}

impl ScriptedKind for Postgres {
    const SCRIPT: &'static str = "postgres.sh";
    const PROGRAM: &'static str = "PostgreSQL";
    const DIR_PREFIX: &'static str = "clemmys-pg-";
    const ENV: &'static [(&'static str, &'static str)] = &[("POSTGRES_OPTIONS", FAST_OPTIONS)];

    fn installed() -> bool {
        installed()
    }
}

/// An empty database of a test's own.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// The cluster holding it, when the test started one.
    _cluster: Option<Cluster>,
}

impl TestDatabase {
    /// A fresh database on the test run's cluster, or on a cluster of the
    /// test's own; `None` (skipped, said on stderr) without PostgreSQL off
    /// CI.
    pub async fn create() -> Option<Self> {
        let Ok(base) = std::env::var(URL_VARIABLE) else {
            let cluster = Cluster::start()?;
            return Some(Self {
                url: cluster.url().to_owned(),
                _cluster: Some(cluster),
            });
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("OS randomness");
        let name = format!(
            "clemmys_test_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|error| panic!("connecting to {URL_VARIABLE}={base}: {error}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating the test database");
        let (server, _) = base
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{URL_VARIABLE} must end in /DATABASE"));
        Some(Self {
            url: format!("{server}/{name}"),
            _cluster: None,
        })
    }
}
