//! A PostgreSQL database for a test (features `test-support` and
//! `postgres`): a fresh database on the cluster that `scripts/test.sh`
//! started (`CLEMMYS_TEST_POSTGRES_URL`), or else a throwaway cluster of
//! the test's own, started with `scripts/postgres.sh`.
//!
//! Without PostgreSQL a test is skipped, and says so, except on CI
//! (`CI=true`), where it fails: a test that needs a database must never
//! pass by not running.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Connection;

/// The variable naming the test run's cluster, whose URL ends in
/// `/DATABASE`.
pub const URL_VARIABLE: &str = "CLEMMYS_TEST_POSTGRES_URL";

/// Server options of a test cluster: nothing in it must outlive a crash
/// of the machine, so it spares the disk.
const FAST_OPTIONS: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

/// Whether PostgreSQL's server programs are installed (`scripts/setup.sh`
/// installs them), as `scripts/postgres.sh` finds them.
pub fn installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|mut versions| {
        versions
            .any(|version| version.is_ok_and(|version| version.path().join("bin/initdb").exists()))
    })
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// A throwaway PostgreSQL cluster in a temporary directory, destroyed on
/// drop; it can be stopped and started again (on the same port) to play a
/// database that goes away.
pub struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    /// Initialises and starts a cluster; `None` (or a panic on CI) when
    /// PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        if !installed() {
            return skip_or_fail("PostgreSQL is not installed (scripts/setup.sh installs it)");
        }
        let dir = tempfile::Builder::new()
            .prefix("clemmys-pg-")
            .tempdir()
            .expect("a temporary directory for the test cluster");
        let url = run_script("start", dir.path());
        Some(Self { dir, url })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        run_script("stop", self.dir.path());
    }

    /// Starts the stopped server again, on the same port.
    pub fn restart(&self) {
        run_script("start", self.dir.path());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("destroy")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs `scripts/postgres.sh ACTION DIR`; answers what it printed.
fn run_script(action: &str, dir: &Path) -> String {
    let output = Command::new("bash")
        .arg(script())
        .arg(action)
        .arg(dir)
        .env("POSTGRES_OPTIONS", FAST_OPTIONS)
        .output()
        .expect("running scripts/postgres.sh");
    assert!(
        output.status.success(),
        "scripts/postgres.sh {action} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn skip_or_fail<T>(why: &str) -> Option<T> {
    assert!(!on_ci(), "this test needs PostgreSQL on CI: {why}");
    eprintln!("skipped: {why}");
    None
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
