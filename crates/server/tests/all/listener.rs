//! The HTTP listener against clients that misbehave or are unlucky: a
//! keep-alive client that gets an early answer while its body is unread,
//! and the slowloris attacks (half-sent headers, idle connections past the
//! cap) that would otherwise hold every connection slot.
//!
//! These tests speak HTTP/1.1 over a raw `TcpStream`, so that they see
//! exactly what is on the wire: a `connection: close`, an EOF, a reset.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use clemmys_whisk::{EntityName, NamespaceLimits};
use hyper::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::common::TestServer;

/// Bounds every wait of these tests, so that a listener that never answers
/// or never closes fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A response as read off the wire.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    /// Whether the server said `connection: close`.
    closes: bool,
}

/// One HTTP/1.1 connection, read side, with the bytes read past the last
/// response.
struct Wire {
    read: OwnedReadHalf,
    buffered: Vec<u8>,
}

impl Wire {
    /// Reads one response (head and `content-length` body).
    async fn reply(&mut self) -> std::io::Result<Reply> {
        let end = loop {
            if let Some(at) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = self.read.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buffered[..end]).to_ascii_lowercase();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .expect("a status line");
        let header = |name: &str| {
            head.split("\r\n")
                .filter_map(|line| line.split_once(':'))
                .find(|(key, _)| key.trim() == name)
                .map(|(_, value)| value.trim().to_owned())
        };
        let length: usize = header("content-length")
            .expect("answers carry a content-length")
            .parse()
            .expect("a content-length");
        let closes = header("connection").is_some_and(|value| value.contains("close"));
        while self.buffered.len() < end + length {
            let mut chunk = [0u8; 8192];
            let n = self.read.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        }
        self.buffered.drain(..end + length);
        Ok(Reply { status, closes })
    }

    /// Waits for the server to close the connection: EOF or a reset.
    async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.read.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    }
}

/// Opens a connection.
async fn connect(addr: SocketAddr) -> (Wire, OwnedWriteHalf) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (read, write) = stream.into_split();
    (
        Wire {
            read,
            buffered: Vec::new(),
        },
        write,
    )
}

/// Sends `method path` with `body` while reading the answer, as a client
/// does that streams a body and reads the response as soon as it comes.
/// Gives back the write half when the whole body was written.
async fn exchange(
    wire: &mut Wire,
    mut write: OwnedWriteHalf,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> (std::io::Result<Reply>, Option<OwnedWriteHalf>) {
    let auth = auth
        .map(|auth| format!("authorization: {auth}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: clemmys\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let sending = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        write.write_all(&body).await?;
        std::io::Result::Ok(write)
    });
    let reply = tokio::time::timeout(PATIENCE, wire.reply())
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    let write = match tokio::time::timeout(PATIENCE, sending).await {
        Ok(Ok(Ok(write))) => Some(write),
        _ => None,
    };
    (reply, write)
}

/// `GET /ping` on a connection.
async fn ping(wire: &mut Wire, write: OwnedWriteHalf) -> std::io::Result<Reply> {
    exchange(wire, write, "GET", "/ping", None, Vec::new())
        .await
        .0
}

/// A JSON object of about `size` bytes.
fn json_of(size: usize) -> Vec<u8> {
    let padding = "x".repeat(size.saturating_sub(12));
    json!({ "pad": padding }).to_string().into_bytes()
}

fn basic(server: &TestServer) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(server.node().guest_auth.to_string())
    )
}

/// After an early answer of `expected` to a request with `body`, the next
/// request of the same keep-alive client is answered: on the same
/// connection, or on a new one when the answer said `connection: close`.
async fn next_request_is_answered(
    server: &TestServer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Vec<u8>,
    expected: StatusCode,
) {
    let addr = server.node().addr;
    let size = body.len();
    let (mut wire, write) = connect(addr).await;
    let (reply, write) = exchange(&mut wire, write, method, path, auth, body).await;
    let reply = reply.unwrap_or_else(|error| {
        panic!("{method} {path} with {size} bytes: the early answer was lost: {error}")
    });
    assert_eq!(reply.status, expected, "{method} {path} with {size} bytes");
    if reply.closes {
        assert!(
            wire.closed().await,
            "a connection: close answer closes the connection"
        );
        let (mut wire, write) = connect(addr).await;
        let next = ping(&mut wire, write)
            .await
            .expect("a new connection works");
        assert_eq!(next.status, StatusCode::OK);
    } else {
        let write = write.unwrap_or_else(|| {
            panic!(
                "{method} {path} with {size} bytes: answered {expected} without connection: \
                 close, then the body could not be sent"
            )
        });
        let next = ping(&mut wire, write).await.unwrap_or_else(|error| {
            panic!(
                "{method} {path} with {size} bytes: answered {expected} without connection: \
                 close, then the next request on the connection failed: {error}"
            )
        });
        assert_eq!(next.status, StatusCode::OK);
    }
}

/// The body sizes of a keep-alive client: a small JSON, an 88 KB wasm
/// action's size class, and a megabyte.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

#[tokio::test]
async fn keep_alive_client_survives_an_early_401() {
    let server = TestServer::start().await;
    for size in SIZES {
        let path = "/api/v1/namespaces/_/actions/hello";
        let body = json_of(size);
        next_request_is_answered(&server, "PUT", path, None, body, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn keep_alive_client_survives_an_early_404() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    for size in SIZES {
        // `{pkg}/{name}`: no such route.
        let path = "/api/v1/namespaces/_/actions/pkg/hello";
        let body = vec![0u8; size];
        next_request_is_answered(
            &server,
            "PUT",
            path,
            Some(&auth),
            body,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

#[tokio::test]
async fn keep_alive_client_survives_an_early_405() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    for size in SIZES {
        let path = "/api/v1/namespaces/_/actions/hello";
        let body = json_of(size);
        next_request_is_answered(
            &server,
            "PATCH",
            path,
            Some(&auth),
            body,
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .await;
    }
}

#[tokio::test]
async fn keep_alive_client_survives_an_early_413() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    server.create("echo", "echo").await;
    let limit = clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
    for size in SIZES {
        // An invoke's parameters past the limit, by `size`.
        let path = "/api/v1/namespaces/_/actions/echo?blocking=true";
        let body = json_of(limit + size);
        next_request_is_answered(
            &server,
            "POST",
            path,
            Some(&auth),
            body,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
}

#[tokio::test]
async fn keep_alive_client_survives_an_early_429() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    let store = &server.node().store;
    let name = EntityName::new("guest").expect("name");
    let mut record = store
        .get_namespace(&name)
        .await
        .expect("read")
        .expect("guest");
    record.limits = NamespaceLimits {
        invocations_per_minute: 0,
        ..Default::default()
    };
    store.put_namespace(record).await.expect("write");
    server.create("echo", "echo").await;
    for size in SIZES {
        let path = "/api/v1/namespaces/_/actions/echo?blocking=true";
        let body = json_of(size);
        next_request_is_answered(
            &server,
            "POST",
            path,
            Some(&auth),
            body,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
}

#[tokio::test]
async fn keep_alive_client_survives_an_early_400() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    for size in SIZES {
        // Malformed JSON.
        let path = "/api/v1/namespaces/_/actions/hello";
        let mut body = json_of(size);
        body.truncate(size / 2);
        next_request_is_answered(
            &server,
            "PUT",
            path,
            Some(&auth),
            body,
            StatusCode::BAD_REQUEST,
        )
        .await;
        // A name refused before the body is read.
        let path = "/api/v1/namespaces/_/actions/%20hello";
        next_request_is_answered(
            &server,
            "PUT",
            path,
            Some(&auth),
            json_of(size),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn keep_alive_client_reads_the_early_answer_to_a_body_too_large_to_drain() {
    let server = TestServer::start().await;
    let auth = basic(&server);
    let addr = server.node().addr;
    let size = 4 * 1024 * 1024;
    let (mut wire, write) = connect(addr).await;
    let path = "/api/v1/namespaces/_/actions/pkg/hello";
    let (reply, _write) = exchange(&mut wire, write, "PUT", path, Some(&auth), vec![0; size]).await;
    let reply = reply.expect("the early answer reaches the client, not a reset");
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.closes,
        "a body past the drain limit is not read: connection: close"
    );
    assert!(wire.closed().await);
    let (mut wire, write) = connect(addr).await;
    assert_eq!(
        ping(&mut wire, write)
            .await
            .expect("a new connection works")
            .status,
        StatusCode::OK
    );
}

/// A node with these listener limits.
async fn node_with(
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
) -> TestServer {
    TestServer::start_with(|config| {
        config.http = clemmys_server::HttpLimits {
            header_read_timeout,
            idle_timeout,
            max_connections,
        };
    })
    .await
}

/// A generous timeout the tests set when they are not about it.
const LONG: Duration = Duration::from_secs(300);

#[tokio::test]
async fn half_sent_request_header_is_disconnected_after_the_header_timeout() {
    let server = node_with(Duration::from_secs(1), LONG, 64).await;
    let addr = server.node().addr;
    // The slowloris client: a request head that never ends.
    let (mut slow, mut slow_write) = connect(addr).await;
    slow_write
        .write_all(b"GET /ping HTTP/1.1\r\nhost: clemmys\r\nx-slow: 1\r\n")
        .await
        .expect("write");
    // Meanwhile other clients are served.
    let (mut wire, write) = connect(addr).await;
    let reply = ping(&mut wire, write).await.expect("served meanwhile");
    assert_eq!(reply.status, StatusCode::OK);
    let closed = tokio::time::timeout(PATIENCE, slow.closed()).await;
    assert!(
        closed.is_ok(),
        "a half-sent request head is cut off after the header timeout"
    );
    // Sending the rest now is too late.
    let _ = slow_write.write_all(b"\r\n").await;
    assert!(
        slow.reply().await.is_err(),
        "no answer to a request head completed after the timeout"
    );
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = node_with(LONG, Duration::from_secs(1), 64).await;
    let addr = server.node().addr;
    let (mut wire, write) = connect(addr).await;
    let (reply, _write) = exchange(&mut wire, write, "GET", "/ping", None, Vec::new()).await;
    let reply = reply.expect("answered");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.closes, "kept alive after the answer");
    let closed = tokio::time::timeout(PATIENCE, wire.closed()).await;
    assert!(
        closed.is_ok(),
        "an idle connection is closed after the idle timeout"
    );
    // A connection that sends nothing at all is idle too.
    let (mut silent, _silent_write) = connect(addr).await;
    let closed = tokio::time::timeout(PATIENCE, silent.closed()).await;
    assert!(
        closed.is_ok(),
        "a silent connection is closed after the idle timeout"
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let server = node_with(LONG, LONG, 3).await;
    let addr = server.node().addr;
    // An established keep-alive client, and two connections that send
    // nothing: the cap is reached.
    let (mut client, write) = connect(addr).await;
    let (reply, client_write) =
        exchange(&mut client, write, "GET", "/ping", None, Vec::new()).await;
    assert_eq!(reply.expect("answered").status, StatusCode::OK);
    let client_write = client_write.expect("kept");
    let (_idle_a, idle_a_write) = connect(addr).await;
    let (_idle_b, _idle_b_write) = connect(addr).await;
    // A new client waits: its connection is not accepted yet.
    let (mut late, late_write) = connect(addr).await;
    let waiting = tokio::spawn(async move { ping(&mut late, late_write).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a connection past the cap is not served while the cap is reached"
    );
    // The established client keeps being served.
    let reply = ping(&mut client, client_write)
        .await
        .expect("served at the cap");
    assert_eq!(reply.status, StatusCode::OK);
    // A slot frees: the waiting client is served.
    drop(idle_a_write);
    drop(_idle_a);
    let reply = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("served once a slot frees")
        .expect("task")
        .expect("answered");
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn idle_connections_filling_the_cap_are_reaped_for_a_new_client() {
    let server = node_with(Duration::from_secs(1), Duration::from_secs(1), 4).await;
    let addr = server.node().addr;
    // The slowloris client fills every slot: two silent connections and
    // two half-sent request heads.
    let mut held = Vec::new();
    for n in 0..4 {
        let (wire, mut write) = connect(addr).await;
        if n % 2 == 0 {
            write
                .write_all(b"POST /api/v1/namespaces HTTP/1.1\r\nhost: clemmys\r\n")
                .await
                .expect("write");
        }
        held.push((wire, write));
    }
    // A new client is served once they are reaped.
    let (mut wire, write) = connect(addr).await;
    let reply = tokio::time::timeout(PATIENCE, ping(&mut wire, write))
        .await
        .expect("served once the idle connections are reaped")
        .expect("answered");
    assert_eq!(reply.status, StatusCode::OK);
    for (mut wire, _write) in held {
        let closed = tokio::time::timeout(PATIENCE, wire.closed()).await;
        assert!(closed.is_ok(), "every slowloris connection is closed");
    }
}

#[tokio::test]
async fn stalled_request_body_is_cut_off_after_the_header_timeout() {
    let server = node_with(Duration::from_secs(1), LONG, 64).await;
    let auth = basic(&server);
    let addr = server.node().addr;
    // The slow-POST client: a whole head, then a body that never ends.
    let (mut slow, mut slow_write) = connect(addr).await;
    let head = format!(
        "PUT /api/v1/namespaces/_/actions/hello HTTP/1.1\r\nhost: clemmys\r\n\
         authorization: {auth}\r\ncontent-type: application/json\r\n\
         content-length: 100000\r\n\r\n{{\"exec\":"
    );
    slow_write.write_all(head.as_bytes()).await.expect("write");
    // Meanwhile other clients are served.
    let (mut wire, write) = connect(addr).await;
    let reply = ping(&mut wire, write).await.expect("served meanwhile");
    assert_eq!(reply.status, StatusCode::OK);
    let reply = tokio::time::timeout(PATIENCE, slow.reply())
        .await
        .expect("a stalled body is cut off after the timeout");
    let reply = reply.expect("answered");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.closes, "the connection of a stalled body is closed");
    assert!(tokio::time::timeout(PATIENCE, slow.closed()).await.is_ok());
}

#[tokio::test]
async fn client_that_stops_reading_is_disconnected_after_the_idle_timeout() {
    // One slot: the slow reader holds it until the server gives up on it.
    let server = node_with(LONG, Duration::from_secs(1), 1).await;
    server.create("echo", "echo").await;
    let auth = basic(&server);
    let addr = server.node().addr;
    // The slow-read client: asks for far more than the socket buffers hold
    // (each answer carries the action's code) and never reads.
    let (mut slow, mut slow_write) = connect(addr).await;
    let request = format!(
        "GET /api/v1/namespaces/_/actions/echo HTTP/1.1\r\nhost: clemmys\r\n\
         authorization: {auth}\r\n\r\n"
    );
    slow_write
        .write_all(request.repeat(400).as_bytes())
        .await
        .expect("write");
    // The next client gets the slot once the server gives up on it.
    let (mut wire, write) = connect(addr).await;
    let reply = ping(&mut wire, write)
        .await
        .expect("served once the slow reader is dropped");
    assert_eq!(reply.status, StatusCode::OK);
    let closed = tokio::time::timeout(PATIENCE, slow.closed()).await;
    assert!(
        closed.is_ok(),
        "a client that stops reading is disconnected"
    );
}
