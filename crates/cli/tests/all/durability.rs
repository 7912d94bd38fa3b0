//! What a crash or a stop can lose under each `--record-durability`: a
//! node killed (SIGKILL) under mixed blocking and non-blocking load keeps
//! exactly one record for every activation it acknowledged with 202 (its
//! result, or `interrupted`), and under `sync` also for every one it
//! answered; a node stopped with SIGTERM loses no record at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::common::{Server, arg, example, try_http_send};

/// Invokes in flight at once.
const WORKERS: u64 = 4;
/// Answers of each kind to have before the crash.
const ENOUGH: usize = 10;

/// What the load saw answered, as (activation id, ms slept).
#[derive(Default)]
struct Answered {
    /// 202: accepted, running on without the caller.
    accepted: Vec<(String, u64)>,
    /// 200: finished, result in hand.
    completed: Vec<(String, u64)>,
}

/// Creates the plain action `napper` (the `sleep` example) and lifts the
/// guest's rate limit above what the load sends.
fn prepare(server: &Server) {
    server
        .admin(&["set-limits", "guest", "--invocations-per-minute", "100000"])
        .success();
    server
        .user()
        .clemmys(&[
            "action",
            "create",
            "napper",
            arg(&example("sleep")),
            "--plain",
        ])
        .success();
}

/// Invokes `napper` until told to stop or the node dies: odd requests
/// non-blocking for up to 300 ms (many still running at the crash), even
/// ones blocking for a few ms.
fn load(api_host: &str, auth: &str, worker: u64, stop: &AtomicBool, answered: &Mutex<Answered>) {
    let mut n = worker;
    while !stop.load(Ordering::Relaxed) {
        n += WORKERS;
        let blocking = n.is_multiple_of(2);
        let (path, ms) = if blocking {
            ("/api/v1/namespaces/_/actions/napper?blocking=true", n % 5)
        } else {
            ("/api/v1/namespaces/_/actions/napper", n * 37 % 300)
        };
        let body = json!({ "ms": ms }).to_string().into_bytes();
        let Ok((status, body)) = try_http_send(Method::POST, api_host, path, auth, body) else {
            return; // the node is gone
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = body["activationId"].as_str().unwrap_or_default().to_owned();
        let mut answered = answered.lock().unwrap_or_else(|e| e.into_inner());
        match status {
            202 => answered.accepted.push((id, ms)),
            200 => answered.completed.push((id, ms)),
            other => panic!("invoke answered {other}: {body}"),
        }
    }
}

/// Runs the load, kills the node once enough was answered, restarts it
/// and returns what was answered before the kill.
fn crash_under_load(server: &mut Server) -> Answered {
    let stop = AtomicBool::new(false);
    let answered = Mutex::new(Answered::default());
    let (api_host, auth) = (server.api_host.clone(), server.guest_auth.clone());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let (api_host, auth, stop, answered) = (&api_host, &auth, &stop, &answered);
                scope.spawn(move || load(api_host, auth, worker, stop, answered))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let enough = {
                let answered = answered.lock().unwrap_or_else(|e| e.into_inner());
                answered.accepted.len() >= ENOUGH && answered.completed.len() >= ENOUGH
            };
            if enough || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The load keeps going while the node dies.
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.join().expect("load thread");
        }
    });
    server.spawn_again();
    let answered = answered.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        answered.accepted.len() >= ENOUGH && answered.completed.len() >= ENOUGH,
        "the load got {} acknowledgements and {} answers in 60 s",
        answered.accepted.len(),
        answered.completed.len()
    );
    answered
}

/// The stored record of `id` (404: `None`).
fn record(server: &Server, id: &str) -> Option<Value> {
    let (status, body) = server.get(&format!("/api/v1/namespaces/_/activations/{id}"));
    match status {
        200 => Some(serde_json::from_slice(&body).expect("a record")),
        404 => None,
        other => panic!("GET activation {id}: {other}"),
    }
}

/// How many records each activation id of action `name` has, from the
/// listing, page by page.
pub(crate) fn records_per_id(server: &Server, name: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for page in 0.. {
        let (status, body) = server.get(&format!(
            "/api/v1/namespaces/_/activations?name={name}&limit=200&skip={}",
            page * 200
        ));
        assert_eq!(status, 200);
        let list: Vec<Value> = serde_json::from_slice(&body).expect("a list");
        if list.is_empty() {
            return seen;
        }
        for summary in list {
            let id = summary["activationId"].as_str().expect("id").to_owned();
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// Every acknowledged activation has exactly one record: its result, or
/// the stand-in saying the node stopped before it finished.
fn assert_every_acknowledged_activation_recorded_once(server: &Server, answered: &Answered) {
    let listed = records_per_id(server, "napper");
    assert!(
        listed.values().all(|&count| count == 1),
        "an activation recorded twice: {listed:?}"
    );
    for (id, ms) in &answered.accepted {
        let record = record(server, id).unwrap_or_else(|| panic!("acknowledged {id} lost"));
        let response = &record["response"];
        match response["status"].as_str() {
            Some("success") => assert_eq!(response["result"], json!({ "slept": ms }), "{record}"),
            Some("whisk internal error") => {
                let error = response["result"]["error"].as_str().unwrap_or_default();
                assert!(error.contains("stopped before"), "{record}");
            }
            _ => panic!("unexpected record of {id}: {record}"),
        }
        assert_eq!(listed.get(id), Some(&1), "{id} not listed once");
    }
}

#[test]
fn a_crash_under_group_durability_keeps_every_acknowledged_activation_once() {
    let mut server = Server::start();
    prepare(&server);
    let answered = crash_under_load(&mut server);
    assert_every_acknowledged_activation_recorded_once(&server, &answered);
    // Answered blocking invokes written in the last commit interval may be
    // gone (their callers hold the results); the others are intact.
    for (id, ms) in &answered.completed {
        if let Some(record) = record(&server, id) {
            assert_eq!(record["response"]["result"], json!({ "slept": ms }));
        }
    }
}

#[test]
fn a_crash_under_sync_durability_loses_no_answered_activation() {
    let mut server = Server::start_with(&["--record-durability", "sync"]);
    prepare(&server);
    let answered = crash_under_load(&mut server);
    assert_every_acknowledged_activation_recorded_once(&server, &answered);
    for (id, ms) in &answered.completed {
        let record = record(&server, id).unwrap_or_else(|| panic!("answered {id} lost"));
        assert_eq!(record["response"]["result"], json!({ "slept": ms }));
    }
}

#[test]
fn a_stop_loses_no_record_however_long_the_commit_interval() {
    // Nothing would commit these records for 10 s but the stop itself.
    let mut server = Server::start_with(&["--record-commit-interval", "10000"]);
    prepare(&server);
    let mut ids = Vec::new();
    for ms in 0..5u64 {
        let (status, body) = try_http_send(
            Method::POST,
            &server.api_host,
            "/api/v1/namespaces/_/actions/napper?blocking=true",
            &server.guest_auth,
            json!({ "ms": ms }).to_string().into_bytes(),
        )
        .expect("invoke");
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).expect("json");
        let id = body["activationId"].as_str().expect("id").to_owned();
        // Readable at once, though not committed yet.
        assert!(record(&server, &id).is_some(), "{id} not readable");
        ids.push((id, ms));
    }
    server.restart();
    for (id, ms) in &ids {
        let record = record(&server, id).unwrap_or_else(|| panic!("{id} lost by a stop"));
        assert_eq!(record["response"]["result"], json!({ "slept": ms }));
    }
}

/// What the node logs when it must read its whole store before serving.
const FULL_REPAIR: &str = "the store was not closed cleanly; repairing it";

#[test]
fn a_crash_under_quick_recovery_starts_without_reading_the_whole_store() {
    let mut server = Server::start_with(&["--crash-recovery", "quick"]);
    prepare(&server);
    let answered = crash_under_load(&mut server);
    assert_every_acknowledged_activation_recorded_once(&server, &answered);
    let log = server.log();
    assert!(!log.contains(FULL_REPAIR), "{log}");
}

#[test]
fn a_crash_under_full_recovery_repairs_the_store_and_keeps_every_record() {
    // The default.
    let mut server = Server::start();
    prepare(&server);
    let answered = crash_under_load(&mut server);
    assert_every_acknowledged_activation_recorded_once(&server, &answered);
    let log = server.log();
    assert!(log.contains(FULL_REPAIR), "{log}");
}
