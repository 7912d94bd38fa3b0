//! The `wasmtime serve` peer: the same wasmtime line as ours, serving an
//! equivalent hello-world handler (`examples/peer/hello-http`, a wasi:http
//! proxy component) over HTTP, started as a child process and driven by the
//! same load generator at the same concurrency as our warm invokes.
//!
//! `wasmtime serve` instantiates a WASIp2 component afresh for every
//! request (`--max-instance-reuse-count` defaults to 1), so its latency at
//! one client is its per-request cold start.
//!
//! Nothing here is estimated: without `--peer` the report says the peer was
//! not measured.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::load::RawGet;

/// What the peer answers, byte for byte: the `hello` action's result for no
/// parameters.
pub const PEER_BODY: &[u8] = br#"{"payload":"Hello, World!"}"#;
/// How long `wasmtime serve` may take to compile the component and listen.
const START_WAIT: Duration = Duration::from_secs(120);
/// How long it may take to answer its first request once listening.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Lines of its stderr kept for error messages.
const STDERR_LINES: usize = 40;

/// Where the peer comes from (`--peer`, `--peer-component`).
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// The `wasmtime` binary.
    pub wasmtime: PathBuf,
    /// The wasi:http component it serves.
    pub component: PathBuf,
}

/// A running `wasmtime serve`, killed when dropped.
#[derive(Debug)]
pub struct PeerServer {
    child: Child,
    addr: SocketAddr,
    /// `wasmtime --version`, as printed.
    pub version: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl PeerServer {
    /// Starts `wasmtime serve` on a free loopback port and waits until it
    /// answers a request with [`PEER_BODY`].
    pub async fn start(spec: &PeerSpec) -> anyhow::Result<Self> {
        let version = wasmtime_version(&spec.wasmtime)?;
        if !spec.component.is_file() {
            bail!(
                "the peer component {} does not exist (scripts/bench.sh builds it)",
                spec.component.display()
            );
        }
        let mut child = Command::new(&spec.wasmtime)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            // Rust's std for wasm32-wasip2 imports wasi:cli (stdio,
            // environment, exit) besides the proxy world; -Scli links them.
            .arg("-Scli")
            .arg(&spec.component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve", spec.wasmtime.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("the child's stderr is not piped")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = mpsc::channel();
        let kept = lines.clone();
        std::thread::Builder::new()
            .name("bench-peer-stderr".into())
            .spawn(move || {
                let mut found = Some(found);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = serving_addr(&line)
                        && let Some(found) = found.take()
                    {
                        let _ = found.send(addr);
                    }
                    let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    if kept.len() == STDERR_LINES {
                        kept.remove(0);
                    }
                    kept.push(line);
                }
            })
            .context("starting a thread to read the peer's stderr")?;
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            version,
            stderr: lines,
        };
        let deadline = Instant::now() + START_WAIT;
        server.addr = loop {
            match listening.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("wasmtime serve stopped: {}", server.stderr_tail())
                }
            }
            if let Some(status) = server.child.try_wait().context("waiting for the peer")? {
                bail!("wasmtime serve exited ({status}): {}", server.stderr_tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "wasmtime serve did not listen within {START_WAIT:?}: {}",
                    server.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let probe = RawGet::new(&server.url(), PEER_BODY)?;
        let deadline = Instant::now() + ANSWER_WAIT;
        loop {
            match probe.get().await {
                Ok(()) => break,
                Err(error) if Instant::now() > deadline => {
                    return Err(error.context(format!(
                        "wasmtime serve did not answer as expected: {}",
                        server.stderr_tail()
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(server)
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.is_empty() {
            "(no output)".into()
        } else {
            lines.join(" | ")
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        // Killing a process that already exited is an error worth nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wasmtime --version`'s answer (`wasmtime 48.0.8 (… 2025-…)`).
fn wasmtime_version(wasmtime: &Path) -> anyhow::Result<String> {
    let output = Command::new(wasmtime)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "running {} --version (scripts/bench.sh installs it)",
                wasmtime.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "{} --version failed ({})",
            wasmtime.display(),
            output.status
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The version number in `wasmtime --version`'s answer.
pub fn version_number(version: &str) -> Option<&str> {
    let mut words = version.split_whitespace();
    if words.next()? != "wasmtime" {
        return None;
    }
    let number = words.next()?;
    number
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then_some(number)
}

/// The address in `wasmtime serve`'s `Serving HTTP on http://ADDR/` line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.trim().strip_prefix("Serving HTTP on http://")?;
    rest.trim_end_matches('/').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_address() {
        assert_eq!(
            serving_addr("Serving HTTP on http://127.0.0.1:41234/"),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(
            serving_addr("Serving HTTP on http://[::1]:8080/\n"),
            "[::1]:8080".parse().ok()
        );
        assert_eq!(
            serving_addr("Listening for shutdown on tcp://1.2.3.4:5/"),
            None
        );
        assert_eq!(serving_addr("Serving HTTP on http://nowhere/"), None);
        assert_eq!(serving_addr(""), None);
    }

    #[test]
    fn reads_the_version_number() {
        assert_eq!(
            version_number("wasmtime 48.0.8 (a1b2c3 2025-11-20)"),
            Some("48.0.8")
        );
        assert_eq!(version_number("wasmtime 48.0.8"), Some("48.0.8"));
        assert_eq!(version_number("wasmtime-cli 48.0.8"), None);
        assert_eq!(version_number("wasmtime 48.x"), None);
        assert_eq!(version_number(""), None);
    }

    #[tokio::test]
    async fn a_missing_binary_is_an_error_that_says_how_to_get_it() {
        let spec = PeerSpec {
            wasmtime: PathBuf::from("/nonexistent/wasmtime"),
            component: PathBuf::from("/nonexistent/hello.wasm"),
        };
        let error = PeerServer::start(&spec).await.expect_err("missing");
        assert!(
            format!("{error:#}").contains("scripts/bench.sh"),
            "{error:#}"
        );
    }
}
