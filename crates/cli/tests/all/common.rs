//! What every test shares: a `clemmys serve` child process on a temporary
//! data directory, users who run the real `clemmys` binary against it with
//! their own (temporary) home, and a raw HTTP view of the API as the
//! provider sees it.
//!
//! Nothing here touches the real user's files: every process gets `HOME`,
//! `CLEMMYS_HOME` and `WSK_CONFIG_FILE` inside a temporary directory, and
//! the variables that could point elsewhere are removed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// How long a server may take to start on a loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to shut down after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one CLI command may run before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variables that would let a process find the real user's
/// files or another server; removed from every child.
const AMBIENT_VARIABLES: &[&str] = &[
    "CLEMMYS_DATA_DIR",
    "CLEMMYS_LISTEN",
    "CLEMMYS_HOME",
    "WSK_CONFIG_FILE",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "RUST_LOG",
];

/// The `clemmys` binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clemmys"))
}

/// The compiled example action `name`: in `$CLEMMYS_EXAMPLES_DIR`, or where
/// `scripts/build-examples.sh` puts it.
pub fn example(name: &str) -> PathBuf {
    let dir = std::env::var_os("CLEMMYS_EXAMPLES_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/examples/wasm32-wasip1/release")
            },
            PathBuf::from,
        );
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "the example action {} is missing: run `bash scripts/build-examples.sh` first \
         (or point CLEMMYS_EXAMPLES_DIR at the built modules)",
        path.display()
    );
    path
}

/// The JavaScript engine module: `$CLEMMYS_JS_ENGINE`, else where
/// `clemmys serve` looks (beside the binary, under `../runtimes`), else
/// where `scripts/build-runtimes.sh` puts it.
pub fn js_engine() -> PathBuf {
    const ENGINE: &str = "runtimes/wasm32-wasip1/release/clemmys-js.wasm";
    let beside = bin()
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(ENGINE));
    let path = std::env::var_os("CLEMMYS_JS_ENGINE")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .or(beside.filter(|path| path.is_file()))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target")
                .join(ENGINE)
        });
    assert!(
        path.is_file(),
        "{}: run scripts/build-runtimes.sh first (or set CLEMMYS_JS_ENGINE)",
        path.display()
    );
    path
}

/// A path as a command-line argument (all test paths are UTF-8).
pub fn arg(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 test path {}", path.display()))
}

/// A unique, unguessable marker: `prefix` and 16 random hex digits.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_else(|error| panic!("OS RNG: {error}"));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// What a finished `clemmys` command left behind.
#[derive(Debug)]
pub struct Out {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Out {
    /// The exit code (a signal gives `None`).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.status.success(), "expected success from {self}");
        self
    }

    /// Asserts exit code 1 (how the CLI reports every error).
    #[track_caller]
    pub fn failure(self) -> Self {
        assert_eq!(self.code(), Some(1), "expected exit code 1 from {self}");
        self
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}) in {self}"))
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?} in {self}"
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?} in {self}"
        );
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion with stdin closed, killing it (and failing
/// the test) after [`COMMAND_TIMEOUT`].
fn run(mut command: Command, shown: String) -> Out {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("spawning `{shown}`: {error}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}");
            }
            Err(error) => panic!("waiting for `{shown}`: {error}"),
        }
    };
    let collect = |reader: std::thread::JoinHandle<Vec<u8>>| {
        let bytes = reader.join().unwrap_or_default();
        String::from_utf8(bytes)
            .unwrap_or_else(|error| panic!("`{shown}` wrote non-UTF-8: {error}"))
    };
    Out {
        stdout: collect(stdout),
        stderr: collect(stderr),
        command: shown,
        status,
    }
}

/// Reads a child's pipe to the end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// A `clemmys` command with the ambient variables removed.
pub fn clemmys_command(args: &[&str]) -> (Command, String) {
    let mut command = Command::new(bin());
    for variable in AMBIENT_VARIABLES {
        command.env_remove(variable);
    }
    command.args(args);
    (command, format!("clemmys {}", args.join(" ")))
}

/// A `clemmys serve` child process on a fresh temporary data directory,
/// with `RUST_LOG=debug` and its stdout and stderr captured in a file.
/// Dropping it kills the process and waits for it.
pub struct Server {
    child: Option<Child>,
    root: tempfile::TempDir,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The server's stdout and stderr.
    pub log_path: PathBuf,
    /// `http://127.0.0.1:PORT`, as the server announced it.
    pub api_host: String,
    /// The `UUID:KEY` of namespace `guest`, from `DATA_DIR/wskprops`.
    pub guest_auth: String,
    /// Flags of `clemmys serve` beyond the listen address and data
    /// directory, kept across restarts.
    serve_flags: Vec<String>,
    /// `--listen`: `127.0.0.1:0` at first; its own address to restart on
    /// the same port.
    listen: String,
    /// The server's `RUST_LOG`.
    log_filter: &'static str,
}

impl Server {
    /// Starts `clemmys serve --listen 127.0.0.1:0` and waits until it
    /// announces its address and has written its `wskprops`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `clemmys serve --listen 127.0.0.1:0` with `flags` as well
    /// (also on every restart).
    pub fn start_with(flags: &[&str]) -> Self {
        Self::start_logging("debug", flags)
    }

    /// Starts `clemmys serve` with `flags` as [`Server::start_with`] does,
    /// logging at `RUST_LOG=log_filter` (the provider's choice).
    pub fn start_logging(log_filter: &'static str, flags: &[&str]) -> Self {
        let root = tempfile::Builder::new()
            .prefix("clemmys-cli-server-")
            .tempdir()
            .unwrap_or_else(|error| panic!("temp dir: {error}"));
        let data_dir = root.path().join("data");
        let log_path = root.path().join("server.log");
        let mut server = Self {
            child: None,
            data_dir,
            log_path,
            api_host: String::new(),
            guest_auth: String::new(),
            serve_flags: flags.iter().map(|flag| (*flag).to_owned()).collect(),
            listen: "127.0.0.1:0".to_owned(),
            log_filter,
            root,
        };
        server.spawn();
        server
    }

    /// The server process's own home and temporary directories (scanned
    /// along with the data directory).
    pub fn process_dirs(&self) -> [PathBuf; 2] {
        [
            self.root.path().join("server-home"),
            self.root.path().join("server-tmp"),
        ]
    }

    fn spawn(&mut self) {
        let [home, tmp] = self.process_dirs();
        for dir in [&home, &tmp] {
            std::fs::create_dir_all(dir).unwrap_or_else(|error| panic!("{error}"));
        }
        // Appended to across restarts; only what this process writes counts.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|error| panic!("creating {}: {error}", self.log_path.display()));
        let offset = log.metadata().map_or(0, |m| m.len());
        let log_too = log
            .try_clone()
            .unwrap_or_else(|error| panic!("{}: {error}", self.log_path.display()));
        let mut args = vec![
            "serve",
            "--listen",
            &self.listen,
            "--data-dir",
            arg(&self.data_dir),
        ];
        args.extend(self.serve_flags.iter().map(String::as_str));
        let (mut command, shown) = clemmys_command(&args);
        command
            .env("RUST_LOG", self.log_filter)
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawning `{shown}`: {error}"));
        self.child = Some(child);
        self.wait_until_serving(usize::try_from(offset).unwrap_or(usize::MAX));
    }

    /// Polls the log for the announcement and the data directory for
    /// `wskprops`; fails with the log if the process exits first.
    fn wait_until_serving(&mut self, log_offset: usize) {
        const ANNOUNCEMENT: &str = "serving the OpenWhisk API on ";
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            let announced = log
                .get(log_offset..)
                .unwrap_or_default()
                .lines()
                .find_map(|line| {
                    let (_, rest) = line.split_once(ANNOUNCEMENT)?;
                    rest.strip_suffix("/api/v1").map(str::to_owned)
                });
            let props = std::fs::read_to_string(self.data_dir.join("wskprops")).ok();
            if let (Some(host), Some(props)) = (announced, props) {
                let value = |key: &str| {
                    props
                        .lines()
                        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                        .map(str::to_owned)
                };
                assert_eq!(
                    value("APIHOST").as_deref(),
                    Some(host.as_str()),
                    "the announced address and DATA_DIR/wskprops disagree:\n{props}"
                );
                self.api_host = host;
                self.guest_auth = value("AUTH")
                    .unwrap_or_else(|| panic!("DATA_DIR/wskprops has no AUTH:\n{props}"));
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("`clemmys serve` exited with {status} before serving:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "`clemmys serve` did not start within {START_TIMEOUT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// `DATA_DIR/wskprops`, the properties file every user reads.
    pub fn wskprops(&self) -> PathBuf {
        self.data_dir.join("wskprops")
    }

    /// Stops the server as an operator would (SIGTERM) and asserts that it
    /// shuts down cleanly.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break None,
            }
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            signalled.is_ok_and(|s| s.success()),
            "could not send SIGTERM to the server"
        );
        let log = self.log();
        let status = status.unwrap_or_else(|| {
            panic!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{log}")
        });
        assert!(
            status.success(),
            "the server exited with {status} on SIGTERM:\n{log}"
        );
    }

    /// Stops the server (SIGTERM) and starts it again on the same data
    /// directory, as an operator restarting the service would.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the server (SIGKILL: no shutdown at all, as a crash or a power
    /// cut would) and starts it again on the same data directory.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn_again();
    }

    /// Kills the server with SIGKILL and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .unwrap_or_else(|error| panic!("killing the server: {error}"));
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory after
    /// [`kill`](Self::kill).
    pub fn spawn_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
    }

    /// Starts the server again after [`kill`](Self::kill), on the same
    /// data directory and the same port: its clients, and the processes
    /// that know its URL, find it where it was.
    pub fn spawn_again_on_the_same_port(&mut self) {
        let address = self
            .api_host
            .split_once("://")
            .map(|(_, address)| address.to_owned())
            .unwrap_or_else(|| panic!("no address in {}", self.api_host));
        self.listen = address;
        self.spawn_again();
    }

    /// Stops the server (SIGTERM) and starts it again on the same data
    /// directory and port with `flags` in place of the ones it had.
    pub fn restart_with(&mut self, flags: &[&str]) {
        self.stop();
        self.serve_flags = flags.iter().map(|flag| (*flag).to_owned()).collect();
        self.spawn_again_on_the_same_port();
    }

    /// A new user of this server: their own home, client identity, pins
    /// and keyring.
    pub fn user(&self) -> User {
        User::new(self.wskprops())
    }

    /// A new user whose properties point at `api_host` (a proxy in front
    /// of this server) with the guest key.
    pub fn user_via(&self, api_host: &str) -> User {
        let mut user = User::new(PathBuf::new());
        user.wskprops = user.root.path().join("wskprops");
        std::fs::write(
            &user.wskprops,
            format!(
                "APIHOST={api_host}\nAUTH={}\nNAMESPACE=guest\n",
                self.guest_auth
            ),
        )
        .unwrap_or_else(|error| panic!("writing {}: {error}", user.wskprops.display()));
        user
    }

    /// `clemmys admin namespace ARGS --data-dir DATA_DIR`.
    pub fn admin(&self, args: &[&str]) -> Out {
        admin(&self.data_dir, args)
    }

    /// `GET path` with the guest key, as raw bytes: the provider's view of
    /// the API (no client keys, nothing decrypted).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(&self.api_host, path, &self.guest_auth)
    }

    /// `DELETE path` with the guest key: the provider deleting what the
    /// API stores.
    pub fn delete(&self, path: &str) -> (u16, Vec<u8>) {
        http_send(
            hyper::Method::DELETE,
            &self.api_host,
            path,
            &self.guest_auth,
            Vec::new(),
        )
    }

    /// `PUT path` of `body` with the guest key: the provider changing what
    /// the API stores.
    pub fn put(&self, path: &str, body: &Value) -> (u16, Vec<u8>) {
        self.send(hyper::Method::PUT, path, body)
    }

    /// `POST path` of `body` with the guest key (as [`Server::put`]).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Vec<u8>) {
        self.send(hyper::Method::POST, path, body)
    }

    fn send(&self, method: hyper::Method, path: &str, body: &Value) -> (u16, Vec<u8>) {
        http_send(
            method,
            &self.api_host,
            path,
            &self.guest_auth,
            body.to_string().into_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `clemmys admin namespace ARGS --data-dir DATA_DIR`, run by the operator
/// (with a temporary home).
pub fn admin(data_dir: &Path, args: &[&str]) -> Out {
    let home = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let mut all = vec!["admin", "namespace"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", arg(data_dir)]);
    let (mut command, shown) = clemmys_command(&all);
    command.env("HOME", home.path());
    run(command, shown)
}

/// Someone using the CLI: a temporary `HOME`, their own `CLEMMYS_HOME`
/// (identity, broker pins, keyring), and the server's `wskprops`.
pub struct User {
    root: tempfile::TempDir,
    wskprops: PathBuf,
}

impl User {
    fn new(wskprops: PathBuf) -> Self {
        let root = tempfile::Builder::new()
            .prefix("clemmys-cli-user-")
            .tempdir()
            .unwrap_or_else(|error| panic!("temp dir: {error}"));
        for dir in ["home", "clemmys-home"] {
            std::fs::create_dir_all(root.path().join(dir))
                .unwrap_or_else(|error| panic!("{error}"));
        }
        Self { root, wskprops }
    }

    /// This user's client identity, as `clemmys broker show` prints it.
    pub fn identity(&self) -> String {
        let shown = self.clemmys(&["broker", "show"]).success();
        shown
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix("your client identity:"))
            .unwrap_or_else(|| panic!("no identity in {shown}"))
            .trim()
            .to_owned()
    }

    /// The user's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The user's properties file (`WSK_CONFIG_FILE`).
    pub fn wskprops(&self) -> &Path {
        &self.wskprops
    }

    /// The user's `CLEMMYS_HOME`.
    pub fn clemmys_home(&self) -> PathBuf {
        self.root.path().join("clemmys-home")
    }

    /// Runs `clemmys ARGS` as this user.
    pub fn clemmys(&self, args: &[&str]) -> Out {
        let (command, shown) = self.command(args);
        run(command, shown)
    }

    /// `clemmys ARGS` as this user, not started (and how to show it).
    pub fn command(&self, args: &[&str]) -> (Command, String) {
        let (mut command, shown) = clemmys_command(args);
        command
            .env("HOME", self.home())
            .env("CLEMMYS_HOME", self.clemmys_home())
            .env("WSK_CONFIG_FILE", &self.wskprops)
            .current_dir(self.home());
        (command, shown)
    }

    /// `clemmys broker trust --yes`, asserting success.
    pub fn trust_broker(&self) -> Out {
        self.clemmys(&["broker", "trust", "--yes"]).success()
    }

    /// Invokes `name` (blocking) with `--json` and returns the activation id.
    #[track_caller]
    pub fn invoke_for_id(&self, name: &str, params: &[(&str, &str)]) -> String {
        let mut args = vec!["action", "invoke", name, "-b", "--json"];
        for (key, value) in params {
            args.extend_from_slice(&["-p", key, value]);
        }
        let out = self.clemmys(&args).success();
        activation_id(&out.json())
    }
}

/// The `activationId` of an activation record.
#[track_caller]
pub fn activation_id(record: &Value) -> String {
    let id = record["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no activationId in {record}"));
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    id.to_owned()
}

/// The value of annotation `key` in an action or activation record.
pub fn annotation<'a>(entity: &'a Value, key: &str) -> Option<&'a Value> {
    entity["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

/// The warning the CLI prints wherever it shows `sim` attestation.
pub const SIM_WARNING_START: &str = "WARNING: SIMULATED TEE";
/// The part of it that says what is not protected.
pub const SIM_WARNING_POINT: &str = "It gives NO hardware protection";

/// `GET api_host + path` with Basic authentication, returning the status
/// and the raw body bytes.
pub fn http_get(api_host: &str, path: &str, auth: &str) -> (u16, Vec<u8>) {
    http_send(hyper::Method::GET, api_host, path, auth, Vec::new())
}

/// `METHOD api_host + path` with Basic authentication and a JSON `body`,
/// returning the status and the raw body bytes.
pub fn http_send(
    method: hyper::Method,
    api_host: &str,
    path: &str,
    auth: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let shown = format!("{method} {api_host}{path}");
    try_http_send(method, api_host, path, auth, body)
        .unwrap_or_else(|error| panic!("{shown}: {error}"))
}

/// [`http_send`], with a failure to connect or to read the answer (a
/// server that died) returned instead of failing the test.
pub fn try_http_send(
    method: hyper::Method,
    api_host: &str,
    path: &str,
    auth: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let shown = format!("{method} {api_host}{path}");
    try_http_send_within(method, api_host, path, auth, body, COMMAND_TIMEOUT).map_err(|failure| {
        match failure {
            HttpFailure::TimedOut => panic!("{shown} timed out"),
            HttpFailure::Failed(error) => error,
        }
    })
}

/// Why [`try_http_send_within`] has no answer.
#[derive(Debug)]
pub enum HttpFailure {
    /// No answer came within the time given.
    TimedOut,
    /// Connecting, sending or reading the answer failed (a server that
    /// died, or that is not there).
    Failed(String),
}

/// [`try_http_send`], giving up after `within`.
pub fn try_http_send_within(
    method: hyper::Method,
    api_host: &str,
    path: &str,
    auth: &str,
    body: Vec<u8>,
    within: Duration,
) -> Result<(u16, Vec<u8>), HttpFailure> {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri = format!("{api_host}{path}");
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("tokio runtime: {error}"));
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
        let request = hyper::Request::builder()
            .method(&method)
            .uri(&uri)
            .header(hyper::header::AUTHORIZATION, header)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap_or_else(|error| panic!("request {uri}: {error}"));
        let answer = async {
            let response = client
                .request(request)
                .await
                .map_err(|error| HttpFailure::Failed(error.to_string()))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| HttpFailure::Failed(format!("reading the body: {error}")))?
                .to_bytes();
            Ok((status, body.to_vec()))
        };
        tokio::time::timeout(within, answer)
            .await
            .unwrap_or(Err(HttpFailure::TimedOut))
    })
}

/// What a test proxy in front of the node at `upstream` (`http://HOST:PORT`)
/// starts from: the upstream's `HOST:PORT`, and a listener on a free
/// loopback port with its address.
pub fn proxy_listener(upstream: &str) -> (String, std::net::TcpListener, std::net::SocketAddr) {
    let upstream = upstream
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// API host: {upstream}"))
        .to_owned();
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("bind: {error}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("{error}"));
    (upstream, listener, addr)
}
