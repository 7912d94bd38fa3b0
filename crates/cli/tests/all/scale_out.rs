//! A scaled-out node: a `clemmys serve --role controller` process and
//! `--role invoker` processes on a real nats-server (scripts/nats.sh), a
//! real PostgreSQL database (`clemmys_store::test_postgres`) and one
//! `clemmys broker serve` process. Invokes both ways, an invoker killed
//! under load, a controller killed under load and restarted, no invoker at
//! all, and NATS away for a while. Off CI without nats-server or
//! PostgreSQL they are skipped, and say so; on CI (`CI=true`) they fail.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use clemmys_bus::test_nats::NatsServer;
use clemmys_store::test_postgres::TestDatabase;
use serde_json::{Value, json};

use crate::common::{
    HttpFailure, Server, arg, clemmys_command, example, http_get, http_send, js_engine,
    try_http_send_within, unique,
};
use crate::confidential;
use crate::durability::records_per_id;
use crate::leaks::{self, Source};
use crate::npm;

/// The message of a 503 while no invoker is healthy.
const NO_INVOKER: &str = "No invokers are available; try again shortly.";
/// The message of a 503 while NATS is away.
const NO_BUS: &str = "The message bus is unavailable; try again shortly.";
/// The error of an activation whose invoker was lost.
const INVOKER_LOST: &str = "The invoker running this activation was lost";

/// A `clemmys broker serve` process, the one key broker of the node's
/// processes, SIGKILLed on drop.
struct BrokerProcess {
    child: Child,
    root: tempfile::TempDir,
    url: String,
}

impl BrokerProcess {
    const ANNOUNCEMENT: &str = "key broker serving on ";

    fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("clemmys-broker-")
            .tempdir()
            .expect("a temporary directory for the broker");
        let log_path = root.path().join("broker.log");
        let log = File::create(&log_path).expect("the broker's log");
        let log_too = log.try_clone().expect("the broker's log");
        let data_dir = root.path().join("data");
        let platform_key = Self::platform_key_in(root.path());
        let (mut command, shown) = clemmys_command(&[
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            arg(&data_dir),
            "--sim-platform-key",
            arg(&platform_key),
        ]);
        command
            .env("HOME", root.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawning `{shown}`: {error}"));
        let deadline = Instant::now() + crate::common::START_TIMEOUT;
        let url = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(url) = log
                .lines()
                .find_map(|line| line.split_once(Self::ANNOUNCEMENT))
                .map(|(_, url)| url.trim().to_owned())
            {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the broker exited ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, root, url }
    }

    /// The host's simulated platform key, shared by every process.
    fn platform_key_in(root: &Path) -> PathBuf {
        root.join("sim-platform.key")
    }

    fn platform_key(&self) -> PathBuf {
        Self::platform_key_in(self.root.path())
    }

    /// Everything the broker process wrote: its sealed state and its log.
    fn dir(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nats-server, a PostgreSQL database and a key broker of the test's own.
struct Backends {
    nats: NatsServer,
    database: TestDatabase,
    broker: BrokerProcess,
    /// `--js-engine` of every process; without one, `--no-js-engine`.
    js_engine: Option<PathBuf>,
}

impl Backends {
    fn start(js_engine: Option<PathBuf>) -> Option<Self> {
        let nats = NatsServer::start()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let database = runtime.block_on(TestDatabase::create())?;
        let broker = BrokerProcess::start();
        Some(Self {
            nats,
            database,
            broker,
            js_engine,
        })
    }

    /// The flags every process of the node shares.
    fn flags(&self) -> Vec<String> {
        let platform_key = self.broker.platform_key();
        let mut flags: Vec<String> = [
            "--bus",
            self.nats.url(),
            "--store",
            &self.database.url,
            "--broker",
            &self.broker.url,
            "--sim-platform-key",
            arg(&platform_key),
            "--idle-enclaves",
            "0",
        ]
        .iter()
        .map(|flag| (*flag).to_owned())
        .collect();
        match &self.js_engine {
            Some(engine) => flags.extend(["--js-engine".to_owned(), arg(engine).to_owned()]),
            None => flags.push("--no-js-engine".to_owned()),
        }
        flags
    }

    fn controller(&self) -> Server {
        let mut flags = vec!["--role".to_owned(), "controller".to_owned()];
        flags.extend(self.flags());
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Server::start_with(&flags)
    }

    fn invoker(&self, id: &str, api_host: &str) -> InvokerProcess {
        InvokerProcess::start(id, api_host, &self.flags())
    }
}

/// A node of processes of its own on [`Backends`]: a controller and
/// invokers, with the plain action `hello` created and every invoker heard
/// of. Dropped, it kills the controller and the invokers, then the
/// backends.
struct Cluster {
    controller: Server,
    invokers: Vec<InvokerProcess>,
    backends: Backends,
}

impl Cluster {
    /// A controller and the invokers `ids`, without a JavaScript engine;
    /// `None` when the backends are missing (off CI).
    fn start(ids: &[&str]) -> Option<Self> {
        Self::start_with(ids, None)
    }

    /// [`start`](Self::start), with `js_engine` on every process.
    fn start_with(ids: &[&str], js_engine: Option<PathBuf>) -> Option<Self> {
        let backends = Backends::start(js_engine)?;
        let controller = backends.controller();
        create(&controller, "hello", "hello");
        let invokers: Vec<InvokerProcess> = ids
            .iter()
            .map(|id| backends.invoker(id, &controller.api_host))
            .collect();
        if !invokers.is_empty() {
            wait_for_invokers(&controller);
        }
        Some(Self {
            controller,
            invokers,
            backends,
        })
    }
}

/// A `clemmys serve --role invoker` process, SIGKILLed on drop.
struct InvokerProcess {
    child: Option<Child>,
    root: tempfile::TempDir,
    log_path: PathBuf,
}

impl InvokerProcess {
    fn start(id: &str, api_host: &str, flags: &[String]) -> Self {
        let root = tempfile::Builder::new()
            .prefix("clemmys-invoker-")
            .tempdir()
            .expect("a temporary directory for the invoker");
        let data_dir = root.path().join("data");
        let log_path = root.path().join("invoker.log");
        let log = File::create(&log_path).expect("the invoker's log");
        let log_too = log.try_clone().expect("the invoker's log");
        let mut args = vec![
            "serve",
            "--role",
            "invoker",
            "--invoker-id",
            id,
            "--api-host",
            api_host,
            "--data-dir",
            arg(&data_dir),
            // Few slots: a handful of activations run at once, the rest
            // wait on the bus.
            "--instance-slots",
            "4",
        ];
        args.extend(flags.iter().map(String::as_str));
        let (mut command, shown) = clemmys_command(&args);
        command
            .env("RUST_LOG", "info")
            .env("HOME", root.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawning `{shown}`: {error}"));
        let mut invoker = Self {
            child: Some(child),
            root,
            log_path,
        };
        let deadline = Instant::now() + crate::common::START_TIMEOUT;
        while !invoker.log().contains("taking activations off the bus") {
            if let Some(child) = invoker.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("invoker {id} exited ({status}):\n{}", invoker.log());
            }
            assert!(
                Instant::now() < deadline,
                "invoker {id} did not start:\n{}",
                invoker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        invoker
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Everything the invoker wrote: its data directory and its log.
    fn dir(&self) -> &Path {
        self.root.path()
    }

    /// SIGKILL: no goodbye, no acknowledgement of what it holds.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for InvokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn create(server: &Server, name: &str, example_name: &str) {
    let code = std::fs::read(example(example_name)).expect("the example module");
    let body = json!({"exec": {"kind": "wasm", "code": base64_of(&code)}});
    let (status, answer) = server.put(&format!("/api/v1/namespaces/_/actions/{name}"), &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

fn delete(server: &Server, name: &str) {
    let (status, answer) = http_send(
        hyper::Method::DELETE,
        &server.api_host,
        &format!("/api/v1/namespaces/_/actions/{name}"),
        &server.guest_auth,
        Vec::new(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn invoke(server: &Server, name: &str, blocking: bool, params: &Value) -> (u16, Value) {
    let (status, body) = http_send(
        hyper::Method::POST,
        &server.api_host,
        &format!("/api/v1/namespaces/_/actions/{name}?blocking={blocking}"),
        &server.guest_auth,
        serde_json::to_vec(params).expect("json"),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Waits until the controller hears of an invoker: a blocking invoke of
/// `hello` stops answering 503.
fn wait_for_invokers(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = invoke(server, "hello", true, &json!({"name": "probe"}));
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "no invoker became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The record of activation `id`, once there is one.
fn record_of(server: &Server, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = http_get(
            &server.api_host,
            &format!("/api/v1/namespaces/_/activations/{id}"),
            &server.guest_auth,
        );
        if status == 200 {
            return serde_json::from_slice(&body).expect("a record");
        }
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "activation {id} has no record");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_controller_and_two_invokers_answer_blocking_and_non_blocking_invokes() {
    let Some(cluster) = Cluster::start(&["first", "second"]) else {
        return;
    };
    let server = &cluster.controller;

    // Several actions: their home invokers differ.
    let mut accepted = Vec::new();
    for i in 0..6 {
        let name = format!("hello{i}");
        create(server, &name, "hello");
        let (status, answer) = invoke(server, &name, true, &json!({"name": name}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["response"]["result"],
            json!({"payload": format!("Hello, {name}!")})
        );
        let (status, answer) = invoke(server, &name, false, &json!({"name": "later"}));
        assert_eq!(status, 202, "{answer}");
        accepted.push(answer["activationId"].as_str().expect("an id").to_owned());
    }
    for id in &accepted {
        let record = record_of(server, id, Duration::from_secs(30));
        assert_eq!(
            record["response"]["result"],
            json!({"payload": "Hello, later!"})
        );
    }
}

#[test]
fn killing_an_invoker_under_load_loses_and_duplicates_no_activation() {
    let Some(mut cluster) = Cluster::start(&["doomed", "survivor"]) else {
        return;
    };
    let server = &cluster.controller;
    for i in 0..4 {
        create(server, &format!("sleep{i}"), "sleep");
    }

    let mut accepted = Vec::new();
    for round in 0..6 {
        for i in 0..4 {
            let (status, answer) = invoke(server, &format!("sleep{i}"), false, &json!({"ms": 150}));
            assert_eq!(status, 202, "round {round}: {answer}");
            accepted.push(answer["activationId"].as_str().expect("an id").to_owned());
        }
        if round == 2 {
            let doomed = cluster.invokers.first_mut().expect("the doomed invoker");
            doomed.kill();
        }
    }

    let mut lost = 0;
    for id in &accepted {
        // A message the dead invoker held comes back after the ack wait.
        let record = record_of(server, id, Duration::from_secs(60));
        let response = &record["response"];
        if response["status"] == "success" {
            assert_eq!(response["result"], json!({"slept": 150}), "{record}");
        } else {
            let error = response["result"]["error"].as_str().unwrap_or_default();
            assert!(error.starts_with(INVOKER_LOST), "{record}");
            lost += 1;
        }
    }
    eprintln!(
        "{lost} of {} activations were lost with their invoker",
        accepted.len()
    );
    // One record each: the listing holds every id once.
    let (status, body) = http_get(
        &server.api_host,
        "/api/v1/namespaces/_/activations?limit=200",
        &server.guest_auth,
    );
    assert_eq!(status, 200);
    let listed: Vec<Value> = serde_json::from_slice(&body).expect("a list");
    let ids: Vec<&str> = listed
        .iter()
        .filter_map(|record| record["activationId"].as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an activation has two records");
    for id in &accepted {
        assert!(unique.contains(id.as_str()), "{id} is not listed");
    }
}

#[test]
fn without_a_healthy_invoker_invokes_answer_503() {
    let Some(cluster) = Cluster::start(&[]) else {
        return;
    };
    let (server, backends) = (&cluster.controller, &cluster.backends);
    for blocking in [true, false] {
        let (status, answer) = invoke(server, "hello", blocking, &json!({}));
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"], json!(NO_INVOKER), "{answer}");
        assert!(answer["code"].is_string(), "OpenWhisk's shape: {answer}");
    }
    // An invoker that comes and then dies: 503 again once it is missed.
    let mut invoker = backends.invoker("brief", &server.api_host);
    wait_for_invokers(server);
    invoker.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Non-blocking: a blocking invoke sent to the dead invoker before
        // it is missed would wait out its whole wait.
        let (status, answer) = invoke(server, "hello", false, &json!({}));
        if status == 503 {
            assert_eq!(answer["error"], json!(NO_INVOKER), "{answer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a dead invoker is still sent work"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_api_answers_503_while_nats_is_away_and_recovers_on_its_own() {
    let Some(cluster) = Cluster::start(&["steady"]) else {
        return;
    };
    let (server, backends) = (&cluster.controller, &cluster.backends);

    backends.nats.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (status, answer) = invoke(server, "hello", true, &json!({"name": "during"}));
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"] == json!(NO_BUS) || answer["error"] == json!(NO_INVOKER),
        "{answer}"
    );
    std::thread::sleep(Duration::from_secs(2));
    backends.nats.restart();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = invoke(server, "hello", true, &json!({"name": "after"}));
        if status == 200 {
            assert_eq!(
                answer["response"]["result"],
                json!({"payload": "Hello, after!"})
            );
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(
            Instant::now() < deadline,
            "not recovered 30 s after NATS came back"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Invokes in flight at once while the controller restarts.
const RESTART_WORKERS: usize = 3;
/// Acknowledgements of each kind the load needs before the kill, and
/// again after the restart.
const RESTART_ENOUGH: usize = 10;
/// How long the controller stays dead.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// The longest an invoke may go unanswered, the controller dying or not:
/// one cut by the kill fails at once, one sent meanwhile is refused.
const INVOKE_BOUND: Duration = Duration::from_secs(15);
/// Slow non-blocking invokes sent just before the kill: twice the
/// invoker's slots, so that some still wait on the bus when the
/// restarted controller settles the stand-ins it finds.
const BURST: usize = 8;
/// How long each of them runs.
const BURST_MS: u64 = 3000;
/// What a controller logs when it records stand-ins as interrupted.
const SETTLED: &str = "recorded accepted activations that the last stop interrupted";

/// An activation the load had acknowledged: 200 with its result, or 202.
struct Acknowledged {
    id: String,
    /// The result it must end with.
    result: Value,
    blocking: bool,
    /// Sent once the restarted controller served again.
    after_restart: bool,
}

/// What the load saw while the controller was killed and restarted.
#[derive(Default)]
struct RestartLoad {
    acknowledged: Vec<Acknowledged>,
    /// Connection errors and 503s: the controller away, or not yet
    /// hearing its invoker.
    refused: usize,
    /// Any other answer, or none within [`INVOKE_BOUND`].
    unexpected: Vec<String>,
}

impl RestartLoad {
    fn count(&self, blocking: bool, after_restart: bool) -> usize {
        self.acknowledged
            .iter()
            .filter(|ack| ack.blocking == blocking && ack.after_restart == after_restart)
            .count()
    }
}

/// Sets `stop` when dropped: the load ends however its driver leaves.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Invokes `hello` with a name of its own each time, blocking and
/// non-blocking in turn, until `stop`; notes what each answer was.
fn invoke_hello_until(
    server: (&str, &str),
    worker: usize,
    stop: &AtomicBool,
    restarted: &AtomicBool,
    seen: &Mutex<RestartLoad>,
) {
    let (api_host, auth) = server;
    for n in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let blocking = n.is_multiple_of(2);
        let name = format!("w{worker}-{n}");
        let after_restart = restarted.load(Ordering::Relaxed);
        let answer = try_http_send_within(
            hyper::Method::POST,
            api_host,
            &format!("/api/v1/namespaces/_/actions/hello?blocking={blocking}"),
            auth,
            json!({ "name": name }).to_string().into_bytes(),
            INVOKE_BOUND,
        );
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        match answer {
            Err(HttpFailure::Failed(_)) | Ok((503, _)) => seen.refused += 1,
            Err(HttpFailure::TimedOut) => seen
                .unexpected
                .push(format!("{name}: no answer within {INVOKE_BOUND:?}")),
            Ok((status, body)) => {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let expected = if blocking { 200 } else { 202 };
                let result = json!({ "payload": format!("Hello, {name}!") });
                let result_right = !blocking || body["response"]["result"] == result;
                match body["activationId"].as_str() {
                    Some(id) if status == expected && result_right => {
                        seen.acknowledged.push(Acknowledged {
                            id: id.to_owned(),
                            result,
                            blocking,
                            after_restart,
                        });
                    }
                    _ => seen
                        .unexpected
                        .push(format!("{name} (blocking: {blocking}): {status} {body}")),
                }
            }
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `enough` holds of what the load saw, at most `within`.
fn wait_for_load(
    seen: &Mutex<RestartLoad>,
    within: Duration,
    enough: impl Fn(&RestartLoad) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        {
            let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if enough(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the load did not get there within {within:?}: {} acknowledged, {} refused, \
                 unexpected: {:?}",
                seen.acknowledged.len(),
                seen.refused,
                seen.unexpected
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The controller dies (SIGKILL) under blocking and non-blocking load and
/// comes back on the same port and database: every activation it
/// acknowledged (200 with the result, or 202) ends with exactly one
/// record, its own result (the invoker ran them all, those still on the
/// bus when the restart recorded their stand-ins as interrupted too);
/// meanwhile clients were only refused (connection errors, 503), never
/// left hanging or answered with an error; and invokes succeed again once
/// it is back.
#[test]
fn a_controller_killed_under_load_and_restarted_keeps_every_acknowledged_activation_once() {
    let Some(mut cluster) = Cluster::start(&["steady"]) else {
        return;
    };
    cluster
        .controller
        .admin(&["set-limits", "guest", "--invocations-per-minute", "100000"])
        .success();
    create(&cluster.controller, "napper", "sleep");
    let (api_host, auth) = (
        cluster.controller.api_host.clone(),
        cluster.controller.guest_auth.clone(),
    );
    let (stop, restarted) = (AtomicBool::new(false), AtomicBool::new(false));
    let seen = Mutex::new(RestartLoad::default());
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for worker in 0..RESTART_WORKERS {
            let (server, stop, restarted, seen) = ((&*api_host, &*auth), &stop, &restarted, &seen);
            scope.spawn(move || invoke_hello_until(server, worker, stop, restarted, seen));
        }
        wait_for_load(&seen, Duration::from_secs(20), |seen| {
            seen.count(true, false) >= RESTART_ENOUGH && seen.count(false, false) >= RESTART_ENOUGH
        });
        for _ in 0..BURST {
            let (status, answer) = invoke(
                &cluster.controller,
                "napper",
                false,
                &json!({ "ms": BURST_MS }),
            );
            assert_eq!(status, 202, "{answer}");
            let id = answer["activationId"].as_str().expect("an id").to_owned();
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.acknowledged.push(Acknowledged {
                id,
                result: json!({ "slept": BURST_MS }),
                blocking: false,
                after_restart: false,
            });
        }
        cluster.controller.kill();
        std::thread::sleep(DOWN_FOR);
        cluster.controller.spawn_again_on_the_same_port();
        restarted.store(true, Ordering::Relaxed);
        wait_for_load(&seen, Duration::from_secs(20), |seen| {
            seen.count(true, true) >= RESTART_ENOUGH && seen.count(false, true) >= RESTART_ENOUGH
        });
    });
    let seen = seen.into_inner().unwrap_or_else(PoisonError::into_inner);
    assert!(
        seen.unexpected.is_empty(),
        "answers other than a result, an acknowledgement or a refusal:\n{}",
        seen.unexpected.join("\n")
    );
    assert!(
        seen.refused > 0,
        "no invoke was refused: was the controller ever down?"
    );

    let server = &cluster.controller;
    // The restart did find stand-ins of activations not finished yet.
    let log = server.log();
    assert!(log.contains(SETTLED), "{log}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for ack in &seen.acknowledged {
        // A stand-in settled as interrupted by the restart is replaced
        // once the invoker runs its activation.
        let record = loop {
            let record = record_of(
                server,
                &ack.id,
                deadline.saturating_duration_since(Instant::now()),
            );
            if record["response"]["status"] == "success" || Instant::now() >= deadline {
                break record;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(record["response"]["result"], ack.result, "{record}");
    }
    let mut listed = records_per_id(server, "hello");
    listed.extend(records_per_id(server, "napper"));
    let twice: Vec<_> = listed.iter().filter(|(_, count)| **count != 1).collect();
    assert!(
        twice.is_empty(),
        "activations recorded more than once: {twice:?}"
    );
    for ack in &seen.acknowledged {
        assert!(listed.contains_key(&ack.id), "{} is not listed", ack.id);
    }
    eprintln!(
        "{} acknowledged ({} after the restart), {} refused",
        seen.acknowledged.len(),
        seen.count(true, true) + seen.count(false, true),
        seen.refused
    );
}

/// Apache OpenWhisk's npm client drives a controller whose invoker is a
/// process of its own over NATS and PostgreSQL, through the same scenario
/// as the embedded node's (`npm.rs`): wasm and JavaScript actions,
/// blocking and non-blocking invokes and their records, packages and
/// bindings, triggers firing rules, web actions. Not the alarms feed: it
/// fires a minute apart, and the controller alone runs it.
#[test]
fn the_npm_openwhisk_client_drives_a_controller_and_an_invoker() {
    let Some(cluster) = Cluster::start_with(&["npm"], Some(js_engine())) else {
        return;
    };
    let server = &cluster.controller;
    // basics.js expects a namespace without actions of its own.
    delete(server, "hello");
    npm::drive_with_the_npm_client(server, None, npm::Alarms::Skip);
}

/// The confidential CLI end to end on a controller and an invoker, as on
/// one node (`confidential.rs`): create, invoke blocking (`-r`, `-b`) and
/// non-blocking, and read back result, logs, record and receipt, each
/// decrypted and verified by the client; the enclave runs in the invoker's
/// process, granted keys by the one broker.
#[test]
fn the_confidential_cli_deploys_invokes_and_verifies_on_a_controller_and_an_invoker() {
    let Some(cluster) = Cluster::start(&["enclaves"]) else {
        return;
    };
    let server = &cluster.controller;
    // The scenario creates its own `hello`, confidential.
    delete(server, "hello");
    let user = server.user();
    user.trust_broker();
    confidential::create_invoke_and_verify_hello(&user);
    confidential::open_a_non_blocking_hello_later(&user);
}

/// Every byte published on the node's subjects (`clemmys.>`), as the
/// provider running nats-server sees them: activation messages and
/// completions. A plain NATS protocol client on a socket of its own.
struct Wiretap {
    stream: TcpStream,
    /// Everything tapped so far.
    seen: std::sync::Arc<Mutex<Vec<u8>>>,
    reading: Option<std::thread::JoinHandle<()>>,
}

impl Wiretap {
    fn start(url: &str) -> Self {
        let address = url.strip_prefix("nats://").expect("a nats:// URL");
        let mut stream = TcpStream::connect(address).expect("connecting to nats-server");
        stream
            .write_all(
                b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB clemmys.> 1\r\nPING\r\n",
            )
            .expect("subscribing");
        // The server answers PING after the SUB: the tap is then in place.
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !leaks::contains(&seen, b"PONG\r\n") {
            let read = stream.read(&mut chunk).expect("reading from nats-server");
            assert!(read > 0, "nats-server closed the tap");
            seen.extend_from_slice(chunk.get(..read).unwrap_or_default());
        }
        let mut reader = stream.try_clone().expect("the tap's socket");
        let seen = std::sync::Arc::new(Mutex::new(seen));
        let all = seen.clone();
        let reading = std::thread::spawn(move || {
            let mut chunk = [0u8; 16 * 1024];
            while let Ok(read) = reader.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                all.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(chunk.get(..read).unwrap_or_default());
            }
        });
        Self {
            stream,
            seen,
            reading: Some(reading),
        }
    }

    /// The messages tapped so far.
    fn messages(&self) -> Vec<Tapped> {
        tapped(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Everything tapped so far; closes the tap.
    fn stop(mut self) -> Vec<u8> {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reading) = self.reading.take() {
            let _ = reading.join();
        }
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One message as a tap received it (`MSG` or `HMSG`).
struct Tapped {
    subject: String,
    /// The header block (`NATS/1.0` and its lines), empty for a `MSG`.
    headers: Vec<u8>,
    payload: Vec<u8>,
}

/// The messages in `bytes`, a subscriber's side of the NATS protocol
/// (other lines, and a message cut short at the end, are skipped).
fn tapped(bytes: &[u8]) -> Vec<Tapped> {
    let mut messages = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") {
        let line = String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned();
        rest = rest.get(end + 2..).unwrap_or_default();
        let fields: Vec<&str> = line.split(' ').collect();
        // MSG subject sid [reply] size; HMSG subject sid [reply] hsize size.
        let (subject, header_size, size) = match fields.as_slice() {
            ["MSG", subject, _, .., size] => (*subject, 0, *size),
            ["HMSG", subject, _, .., header_size, size] => {
                (*subject, header_size.parse().unwrap_or(0), *size)
            }
            _ => continue,
        };
        let Ok(size) = size.parse::<usize>() else {
            continue;
        };
        let (Some(body), Some(after)) = (rest.get(..size), rest.get(size + 2..)) else {
            break;
        };
        messages.push(Tapped {
            subject: subject.to_owned(),
            headers: body.get(..header_size).unwrap_or_default().to_vec(),
            payload: body.get(header_size..).unwrap_or_default().to_vec(),
        });
        rest = after;
    }
    messages
}

/// Publishes `payload` with the header block `headers` on `subject`, as
/// anyone holding nats-server can.
fn publish_raw(url: &str, subject: &str, headers: &[u8], payload: &[u8]) {
    let address = url.strip_prefix("nats://").expect("a nats:// URL");
    let mut stream = TcpStream::connect(address).expect("connecting to nats-server");
    let mut message = format!(
        "CONNECT {{\"verbose\":false,\"headers\":true}}\r\nHPUB {subject} {} {}\r\n",
        headers.len(),
        headers.len() + payload.len()
    )
    .into_bytes();
    message.extend_from_slice(headers);
    message.extend_from_slice(payload);
    message.extend_from_slice(b"\r\nPING\r\n");
    stream.write_all(&message).expect("publishing");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !leaks::contains(&seen, b"PONG\r\n") {
        let read = stream.read(&mut chunk).expect("reading from nats-server");
        assert!(
            read > 0,
            "nats-server closed the connection: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
}

/// The provider records a confidential invocation on the bus and delivers
/// it again, as a new message, to the other invoker, whose enclaves hold
/// the same action key: the broker, which admits each invocation's nonce
/// once whatever invoker asks, must refuse it there, so that it runs once.
#[test]
fn an_invocation_delivered_again_to_another_invoker_is_refused_as_replayed() {
    let Some(cluster) = Cluster::start(&["left", "right"]) else {
        return;
    };
    let (server, backends) = (&cluster.controller, &cluster.backends);
    let user = server.user();
    user.trust_broker();
    user.clemmys(&["action", "create", "echo", arg(&example("echo"))])
        .success();
    let tap = Wiretap::start(backends.nats.url());
    let secret = unique("replay-");
    let invoked = user
        .clemmys(&["action", "invoke", "echo", "-p", "k", &secret, "-r"])
        .success();
    assert_eq!(invoked.json(), json!({"k": secret}), "{invoked}");

    // The activation as the controller published it to one invoker.
    let delivered = tap
        .messages()
        .into_iter()
        .find(|message| {
            message.subject.starts_with("clemmys.invoke.")
                && leaks::contains(&message.payload, b"\"Activate\"")
        })
        .unwrap_or_else(|| panic!("no activation on the bus"));
    let activation: Value = serde_json::from_slice(&delivered.payload).expect("JSON");
    let id = activation["Activate"]["activation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id: {activation}"))
        .to_owned();
    let other = if delivered.subject.ends_with(".left") {
        "clemmys.invoke.right"
    } else {
        "clemmys.invoke.left"
    };
    // Delivered again as a new message (JetStream keeps one message per
    // id, so the provider gives it another).
    let headers = String::from_utf8_lossy(&delivered.headers).replace(
        &format!("Nats-Msg-Id: {id}"),
        &format!("Nats-Msg-Id: {id}-again"),
    );
    publish_raw(
        backends.nats.url(),
        other,
        headers.as_bytes(),
        &delivered.payload,
    );

    // The other invoker's completion of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let completion = loop {
        let completions: Vec<Value> = tap
            .messages()
            .into_iter()
            .filter(|message| message.subject.starts_with("clemmys.done."))
            .filter_map(|message| serde_json::from_slice(&message.payload).ok())
            .filter(|completion: &Value| completion["activation"]["activationId"] == id.as_str())
            .collect();
        if completions.len() >= 2 {
            break completions[1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the other invoker never completed the delivery again ({} completions)",
            completions.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let result = &completion["activation"]["response"]["result"];
    assert!(
        result.get("sealed").is_none(),
        "the enclave ran the invocation a second time: {completion}"
    );
    assert_eq!(result["refusal"], "replayed", "{completion}");
    drop(tap);
}

/// `pg_dump` of the whole database: every table as the provider holds it.
fn dump_database(url: &str) -> Vec<u8> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed")
        .filter_map(Result::ok)
        .map(|version| version.path().join("bin/pg_dump"))
        .filter(|path| path.is_file())
        .max()
        .expect("pg_dump is installed with PostgreSQL");
    let output = Command::new(newest)
        .args(["--no-owner", "--dbname", url])
        .output()
        .expect("running pg_dump");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Waits until the database at `url` holds the record of activation `id`
/// (in the clear in its JSON): an invoker over NATS answers before the
/// group commit that stores the record, and a scan of the database before
/// it would miss what the record holds.
fn wait_for_record(url: &str, id: &str) {
    let needle: String = id.bytes().map(|byte| format!("{byte:02x}")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&dump_database(url)).contains(&needle) {
        assert!(
            Instant::now() < deadline,
            "the record of {id} was not in the database within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the provider holds of the node's traffic and state: everything
/// `tap` saw on the bus (closing it) and the database at `url`.
fn bus_and_database(tap: Wiretap, url: &str) -> Vec<Source> {
    vec![
        Source {
            label: "the bus".into(),
            bytes: tap.stop(),
        },
        Source {
            label: "the database".into(),
            bytes: dump_database(url),
        },
    ]
}

/// The leak scan of `crate::leaks`, across processes: a confidential action
/// deployed through the controller runs on an invoker over NATS, with keys
/// from the one broker, and the client verifies its answer. The provider
/// holds the database, nats-server and every process's files and logs:
/// none of them may hold a marker. The same action deployed `--plain`
/// must show up on the bus and in the database, or the scan proves
/// nothing.
#[test]
fn a_confidential_action_runs_on_an_invoker_and_leaks_nothing_to_the_bus_or_database() {
    let Some(cluster) = Cluster::start(&["enclaves"]) else {
        return;
    };
    let (server, backends) = (&cluster.controller, &cluster.backends);
    let tap = Wiretap::start(backends.nats.url());

    let owner = server.user();
    owner.trust_broker();
    let secret = example("secret");
    owner
        .clemmys(&["action", "create", "secret", arg(&secret)])
        .success()
        .stdout_has("confidential");
    let param = unique("pmk-");
    let shouted = owner
        .clemmys(&["action", "invoke", "secret", "-p", "secret", &param, "-r"])
        .success();
    assert_eq!(
        shouted.json(),
        json!({ "shout": param.to_uppercase() }),
        "{shouted}"
    );
    shouted.stderr_has("decrypted; receipt verified: ");
    // Read back from the shared store and opened by the client alone.
    let id = owner.invoke_for_id("secret", &[("secret", &param)]);
    let result = owner.clemmys(&["activation", "result", &id]).success();
    assert_eq!(result.json(), json!({ "shout": param.to_uppercase() }));
    result.stderr_has("decrypted; receipt verified: ");
    // The invoker commits its records in order: the last one stored, all are.
    wait_for_record(&backends.database.url, &id);

    let mut sources = bus_and_database(tap, &backends.database.url);
    sources.push(Source {
        label: "controller log".into(),
        bytes: leaks::strip_ansi(&std::fs::read(&server.log_path).unwrap_or_default()),
    });
    leaks::add_files(backends.nats.dir(), &mut sources);
    leaks::add_files(backends.broker.dir(), &mut sources);
    leaks::add_files(&server.data_dir, &mut sources);
    for invoker in &cluster.invokers {
        leaks::add_files(invoker.dir(), &mut sources);
    }
    let findings = leaks::scan(&sources, &leaks::markers(&param));
    assert!(
        findings.is_empty(),
        "confidential plaintext reached the provider:\n{}",
        leaks::report(&findings)
    );

    // The positive control, through the same bus and database (after the
    // scan: its code is the same module, in the clear).
    let tap = Wiretap::start(backends.nats.url());
    let control = unique("ctl-");
    owner
        .clemmys(&["action", "create", "plain-secret", arg(&secret), "--plain"])
        .success();
    let plain = owner
        .clemmys(&[
            "action",
            "invoke",
            "plain-secret",
            "-p",
            "secret",
            &control,
            "-r",
        ])
        .success();
    assert_eq!(plain.json(), json!({ "shout": control.to_uppercase() }));
    let control_id = owner.invoke_for_id("plain-secret", &[("secret", &control)]);
    wait_for_record(&backends.database.url, &control_id);
    let sources = bus_and_database(tap, &backends.database.url);
    let found = leaks::scan(&sources, &leaks::markers(&control));
    for (marker, source) in [
        ("PARAM", "the bus"),
        ("RESULT", "the bus"),
        ("RESULT", "the database"),
        ("LOG", "the database"),
    ] {
        assert!(
            found
                .iter()
                .any(|finding| finding.marker == marker && finding.source == source),
            "the scan did not find the plain action's {marker} in {source}, so it could \
             not catch a leak there; found:\n{}",
            leaks::report(&found)
        );
    }
}

#[test]
fn a_node_on_another_simulated_platform_than_its_broker_stops_with_the_fix() {
    let broker = BrokerProcess::start();
    let data_dir = tempfile::tempdir().expect("a data directory");
    // No --sim-platform-key: the node makes a platform key of its own, which
    // the broker's evidence does not verify under (nor would the broker
    // grant its enclaves a key).
    let started = Command::new(crate::common::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            arg(data_dir.path()),
            "--broker",
            &broker.url,
            "--no-js-engine",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("running the node: {error}"));
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success(), "{stderr}");
    assert!(
        stderr.contains("runs on another simulated platform than this process"),
        "{stderr}"
    );
    assert!(stderr.contains("--sim-platform-key"), "{stderr}");
}
