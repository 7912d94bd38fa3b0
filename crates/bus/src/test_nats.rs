//! A nats-server for a test (feature `test-support`): a throwaway server
//! with JetStream, started with `scripts/nats.sh` in a temporary directory
//! of its own (a `clemmys_testkit::ScriptedServer`), and the one probe of
//! whether nats-server is installed.
//!
//! Without nats-server a test is skipped, and says so, except on CI
//! (`CI=true`), where it fails: a test that needs the bus must never pass
//! by not running.

use std::path::{Path, PathBuf};

use clemmys_testkit::{ScriptedKind, ScriptedServer};

/// Where Debian puts `nats-server`, which a user's `PATH` may lack.
const DEBIAN_SERVER: &str = "/usr/sbin/nats-server";

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

/// A throwaway nats-server with JetStream on a loopback port, its store in
/// a temporary directory; destroyed on drop. It can be stopped and started
/// again (on the same port, with the stream's messages) to play a bus that
/// goes away. Its URL is `nats://127.0.0.1:PORT`.
pub type NatsServer = ScriptedServer<Nats>;

/// The kind of [`NatsServer`]: `scripts/nats.sh`.
pub enum Nats {}

impl ScriptedKind for Nats {
    const SCRIPT: &'static str = "nats.sh";
    const PROGRAM: &'static str = "nats-server";
    const DIR_PREFIX: &'static str = "clemmys-nats-";

    fn installed() -> bool {
        installed()
    }
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
