//! Fixtures shared by the tests (and benchmarks) of several crates: a
//! throwaway server that one of the repository's `scripts/` runs in a
//! temporary directory of its own (nats-server for `clemmys_bus::test_nats`,
//! PostgreSQL for `clemmys_store::test_postgres`), and the rule for a test
//! whose server is not installed: skipped, and said so, except on CI
//! (`CI=true`), where it fails, since a test must never pass by not running.
//!
//! Only tests and benchmarks use it, through the `test-support` features of
//! those crates; it trusts the scripts it runs and holds no secrets. The
//! servers listen on loopback without authentication.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A kind of server that a script in `scripts/` runs. The script takes
/// `start DIR` (starts the server on a free loopback port, or on its
/// port of before, waits until it answers and prints its URL), `stop DIR`
/// (keeping DIR) and `destroy DIR` (stopping it and deleting DIR).
pub trait ScriptedKind {
    /// The script's file name in `scripts/`: `nats.sh`.
    const SCRIPT: &'static str;
    /// What the script runs, as messages name it: `nats-server`.
    const PROGRAM: &'static str;
    /// The name of the temporary directories: `clemmys-nats-`.
    const DIR_PREFIX: &'static str;
    /// Environment variables for every run of the script.
    const ENV: &'static [(&'static str, &'static str)] = &[];

    /// Whether the program is installed, as the script finds it.
    fn installed() -> bool;
}

/// A throwaway server of kind `K` in a temporary directory, destroyed on
/// drop. It can be stopped and started again (on the same port, with what
/// it stored) to play a server that goes away.
pub struct ScriptedServer<K: ScriptedKind> {
    dir: tempfile::TempDir,
    url: String,
    kind: PhantomData<K>,
}

impl<K: ScriptedKind> ScriptedServer<K> {
    /// Starts a server; `None` (said on stderr), or a panic on CI, when its
    /// program is not installed.
    pub fn start() -> Option<Self> {
        if !K::installed() {
            let why = format!(
                "{} is not installed (scripts/setup.sh installs it)",
                K::PROGRAM
            );
            assert!(!on_ci(), "this test needs {} on CI: {why}", K::PROGRAM);
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix(K::DIR_PREFIX)
            .tempdir()
            .unwrap_or_else(|error| panic!("a temporary directory for {}: {error}", K::PROGRAM));
        let url = run_script::<K>("start", dir.path());
        Some(Self {
            dir,
            url,
            kind: PhantomData,
        })
    }

    /// The URL the script printed on starting the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything the server keeps: its configuration, log and data (what
    /// the provider running it holds).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server, keeping what it stored.
    pub fn stop(&self) {
        run_script::<K>("stop", self.dir.path());
    }

    /// Starts the stopped server again, on the same port.
    pub fn restart(&self) {
        run_script::<K>("start", self.dir.path());
    }
}

impl<K: ScriptedKind> Drop for ScriptedServer<K> {
    fn drop(&mut self) {
        let _ = script_command::<K>("destroy", self.dir.path()).status();
    }
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

fn script<K: ScriptedKind>() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(K::SCRIPT)
}

/// `bash scripts/SCRIPT ACTION DIR`, with the kind's environment.
fn script_command<K: ScriptedKind>(action: &str, dir: &Path) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(script::<K>())
        .arg(action)
        .arg(dir)
        .envs(K::ENV.iter().copied());
    command
}

/// Runs `scripts/SCRIPT ACTION DIR`; answers what it printed.
fn run_script<K: ScriptedKind>(action: &str, dir: &Path) -> String {
    let output = script_command::<K>(action, dir)
        .output()
        .unwrap_or_else(|error| panic!("running scripts/{}: {error}", K::SCRIPT));
    assert!(
        output.status.success(),
        "scripts/{} {action} failed: {}",
        K::SCRIPT,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
