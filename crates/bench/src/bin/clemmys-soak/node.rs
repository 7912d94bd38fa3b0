//! The node under soak: a real `clemmys serve` process on a fixed loopback
//! port, so that it can be killed (SIGKILL, as a crash would) and started
//! again on the same data directory while its clients keep their address.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clemmys_client::Client;
use clemmys_client::wskprops::WskProps;

/// How long a start may take before the soak gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One `clemmys serve` process and where it keeps its state.
pub struct NodeProcess {
    binary: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    listen: String,
    extra_flags: Vec<String>,
    child: Option<Child>,
}

/// What the process looks like from outside: its resident memory and its
/// open file descriptors.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Footprint {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

impl NodeProcess {
    /// Starts `binary serve` on a free loopback port with its data in
    /// `root/data` and its log in `root/server.log`.
    pub fn start(binary: &Path, root: &Path, extra_flags: Vec<String>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free loopback port")?
            .port();
        let mut node = Self {
            binary: binary.to_owned(),
            data_dir: root.join("data"),
            log_path: root.join("server.log"),
            listen: format!("127.0.0.1:{port}"),
            extra_flags,
            child: None,
        };
        node.spawn()?;
        Ok(node)
    }

    /// The guest namespace's client, from `DATA_DIR/wskprops`.
    pub fn guest_client(&self) -> anyhow::Result<Client> {
        let props = WskProps::load_from(&self.data_dir.join("wskprops"))?;
        Ok(Client::from_props(&props)?)
    }

    /// Runs `clemmys admin` on this node's data directory.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(&self.binary)
            .arg("admin")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running clemmys admin {}", args.join(" ")))?;
        if !status.success() {
            bail!("clemmys admin {} exited with {status}", args.join(" "));
        }
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", self.binary.display()))?;
        self.child = Some(child);
        self.wait_until_serving()
    }

    /// Waits until the API answers on the fixed port.
    fn wait_until_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let props = self.data_dir.join("wskprops");
            if props.exists() && std::net::TcpStream::connect(&self.listen).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "clemmys serve exited with {status} before serving; see {}",
                    self.log_path.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "clemmys serve did not serve within {START_TIMEOUT:?}; see {}",
                    self.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL: no shutdown at all) and starts it again
    /// on the same data directory and port. Returns how long the node was
    /// away.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.kill();
        self.spawn()?;
        Ok(started.elapsed())
    }

    /// Kills the process, if it runs, and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's memory and descriptors now, from `/proc`.
    pub fn footprint(&self) -> anyhow::Result<Footprint> {
        let pid = self.child.as_ref().context("the node is not running")?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading the node's /proc status")?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .context("no VmRSS in the node's /proc status")?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .context("listing the node's descriptors")?
            .count();
        Ok(Footprint {
            rss_kib,
            fds: u64::try_from(fds).unwrap_or(u64::MAX),
        })
    }

    /// Where the node's log is.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
