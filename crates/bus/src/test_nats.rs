//! A nats-server for a test (feature `test-support`): a throwaway server
//! with JetStream, started with `scripts/nats.sh` in a temporary directory
//! of its own, and the one probe of whether nats-server is installed.
//!
//! Without nats-server a test is skipped, and says so, except on CI
//! (`CI=true`), where it fails: a test that needs the bus must never pass
//! by not running.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian puts `nats-server`, which a user's `PATH` may lack.
const DEBIAN_SERVER: &str = "/usr/sbin/nats-server";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/nats.sh")
}

/// The `nats-server` program: on `PATH`, or where Debian installs it
/// (where `scripts/nats.sh` looks too).
pub fn server_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from(DEBIAN_SERVER)])
        .find(|program| is_executable(program))
}

/// Whether `nats-server` is installed (`scripts/setup.sh` installs it).
pub fn installed() -> bool {
    server_program().is_some()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// A throwaway nats-server with JetStream on a loopback port, its store in
/// a temporary directory; destroyed on drop. It can be stopped and started
/// again (on the same port, with the stream's messages) to play a bus that
/// goes away.
pub struct NatsServer {
    dir: tempfile::TempDir,
    url: String,
}

impl NatsServer {
    /// Starts a server; `None` (said on stderr), or a panic on CI, when
    /// nats-server is not installed.
    pub fn start() -> Option<Self> {
        if !installed() {
            let why = "nats-server is not installed (scripts/setup.sh installs it)";
            assert!(!on_ci(), "this test needs nats-server on CI: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("clemmys-nats-")
            .tempdir()
            .expect("a temporary directory for nats-server");
        let url = run_script("start", dir.path());
        Some(Self { dir, url })
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everything the server keeps: its configuration, log and JetStream
    /// store (what the provider running it holds).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server, keeping its stream.
    pub fn stop(&self) {
        run_script("stop", self.dir.path());
    }

    /// Starts the stopped server again, on the same port.
    pub fn restart(&self) {
        run_script("start", self.dir.path());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("destroy")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs `scripts/nats.sh ACTION DIR`; answers what it printed.
fn run_script(action: &str, dir: &Path) -> String {
    let output = Command::new("bash")
        .arg(script())
        .arg(action)
        .arg(dir)
        .output()
        .expect("running scripts/nats.sh");
    assert!(
        output.status.success(),
        "scripts/nats.sh {action} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_server_takes_connections_until_it_is_stopped() {
        let Some(server) = NatsServer::start() else {
            return;
        };
        let address = server
            .url()
            .strip_prefix("nats://")
            .expect("scripts/nats.sh prints a nats:// URL");
        assert!(std::net::TcpStream::connect(address).is_ok());
        server.stop();
        assert!(std::net::TcpStream::connect(address).is_err());
        server.restart();
        assert!(std::net::TcpStream::connect(address).is_ok());
    }
}
