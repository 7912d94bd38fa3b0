//! The HTTP/1.1 listener of a node and of a key broker: hyper's connection
//! builder serving an axum router, with the limits that keep clients which
//! send nothing, or send it slowly, from holding every connection.
//!
//! * **Connection cap.** At most [`HttpLimits::max_connections`] are open;
//!   past it the listener stops accepting, so new connections wait in the
//!   kernel's listen backlog (they are not refused) until a slot frees,
//!   while the open ones keep being served.
//! * **Header read timeout.** A request's head (request line and headers)
//!   must arrive in full within [`HttpLimits::header_read_timeout`] of the
//!   connection being ready for it (accepted, or its previous response
//!   sent); otherwise the connection is closed.
//! * **Body stall timeout.** While a handler waits for a request body, its
//!   next bytes must arrive within the same header read timeout; a body
//!   that stalls longer fails (the handler answers 400) and the connection
//!   is closed.
//! * **Idle timeout.** A connection with no request in progress for
//!   [`HttpLimits::idle_timeout`] is closed. A connection with a request in
//!   progress is not idle, however long its handler runs. One that has not
//!   closed twice that long after its last request ended (its client
//!   stopped reading the response, so the write waits) is dropped.
//!
//! Together they free the slot of a slowloris connection (a half-sent head,
//! a stalled body, or nothing at all) within a timeout.
//!
//! **TLS.** With a [`TlsAcceptor`], every connection first completes a TLS
//! handshake, within the header read timeout, on its own task; the limits
//! above then apply to the requests inside it.
//!
//! **Early answers.** A handler may answer (401, 404, 405, 413, …) before
//! reading the request's body. Closing the connection then, with the body
//! unread, makes the kernel reset it, and a keep-alive client loses the
//! answer or its next request (`write EPIPE`). So the unread rest of such a
//! body is read and discarded, up to [`EARLY_DRAIN_BYTES`] within
//! [`EARLY_DRAIN_TIME`], and the connection stays usable; a larger or
//! slower body gets the answer with `connection: close`, and the
//! connection then closes its write side first and discards what the
//! client still sends for a moment ([`LINGER_TIME`]), so that the client
//! reads the answer instead of a reset.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use bytes::Bytes;
use clemmys_tls::TlsAcceptor;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

/// How long a request's head may take to arrive, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may sit with no request in progress, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many connections may be open at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The most of an unread request body read and discarded after an early
/// answer so that the connection stays usable.
pub const EARLY_DRAIN_BYTES: u64 = 1024 * 1024;
/// How long that discarding may take.
pub const EARLY_DRAIN_TIME: Duration = Duration::from_secs(2);
/// How long a connection closing with a request body unread discards what
/// the client still sends, so that the client reads the answer.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most a closing connection discards.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Timeouts are capped at a year, so that deadlines never overflow.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// The listener's limits against clients that hold connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a request's head may take to arrive, from when the
    /// connection is ready for it; also how long a handler may wait for
    /// the next bytes of a request body.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in progress.
    pub idle_timeout: Duration,
    /// How many connections may be open at once (at least one); past it new
    /// connections wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` within `limits` (over TLS when `tls` is
/// given) until `stop` resolves, then stops accepting, lets the open
/// connections finish their requests, and returns once they are all closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = HttpLimits {
        header_read_timeout: limits.header_read_timeout.min(LONGEST),
        idle_timeout: limits.idle_timeout.min(LONGEST),
        max_connections: limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stopped) = watch::channel(());
    let connections = TaskTracker::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to
                // close rather than spin.
                tracing::error!(%error, "accepting a connection");
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Small request/response exchanges: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        connections.spawn(accept_connection(
            stream,
            tls.clone(),
            app.clone(),
            builder.clone(),
            limits,
            stopped.clone(),
            slot,
        ));
    }
    drop(listener);
    // Every connection closes once idle, after its request in progress.
    let _ = stopping.send(());
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Errors of one connection that the accept loop skips.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// What woke a connection's task.
enum Event {
    /// hyper is done with the connection.
    Closed(hyper::Result<()>),
    /// The server is stopping.
    Stopping,
    /// The idle deadline passed (or was moved by a request).
    Tick,
}

/// Runs the TLS handshake of an accepted connection, when there is TLS,
/// within the header read timeout; then serves it.
async fn accept_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    app: Router,
    builder: http1::Builder,
    limits: HttpLimits,
    stopping: watch::Receiver<()>,
    slot: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else {
        serve_connection(stream, app, builder, limits, stopping, slot).await;
        return;
    };
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(stream, app, builder, limits, stopping, slot).await,
        // A client that does not trust the certificate, speaks plain HTTP
        // to this port, or is gone: nothing to answer.
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_elapsed) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Serves one connection, holding `_slot` until it is closed.
async fn serve_connection<S>(
    stream: S,
    app: Router,
    builder: http1::Builder,
    limits: HttpLimits,
    mut stopping: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = AppService {
        app,
        activity: activity.clone(),
        body_stall_timeout: limits.header_read_timeout,
    };
    let idle_timeout = limits.idle_timeout;
    let mut connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut closing = false;
    let mut stopping_seen = false;
    // How long the connection must have been idle for the next tick to act:
    // the idle timeout, then twice it once it was asked to close.
    let mut idle_limit = idle_timeout;
    loop {
        let deadline = activity.idle_deadline(idle_limit);
        let event = tokio::select! {
            closed = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                Event::Closed(closed)
            }
            _ = stopping.changed(), if !stopping_seen => Event::Stopping,
            () = tokio::time::sleep_until(deadline) => Event::Tick,
        };
        match event {
            Event::Closed(Ok(())) => break,
            Event::Closed(Err(error)) => {
                // A half-sent head past its timeout, a malformed request, a
                // client gone: nothing the server can do about any.
                tracing::debug!(%error, "connection closed");
                break;
            }
            Event::Stopping => {
                stopping_seen = true;
                if !closing {
                    Pin::new(&mut connection).graceful_shutdown();
                    closing = true;
                }
            }
            Event::Tick if !activity.is_idle(idle_limit) => {}
            Event::Tick if !closing => {
                // Closes it now if no head is arriving; otherwise after
                // that request (with `connection: close`).
                Pin::new(&mut connection).graceful_shutdown();
                closing = true;
                idle_limit = idle_timeout.saturating_mul(2);
            }
            Event::Tick => {
                // Asked to close and still idle: stuck writing to a client
                // that does not read, or reading a head too slowly. Drop it.
                tracing::debug!("dropping a connection that did not close when idle");
                return;
            }
        }
    }
    let stream = connection.into_parts().io.into_inner();
    if activity.left_body_unread.load(Ordering::Relaxed) {
        linger(stream).await;
    }
}

/// Closes the write side of a connection whose client may still be sending
/// a body, then discards what arrives for a moment before closing: closing
/// with unread bytes would reset the connection, and the client would lose
/// the answer it has not read yet.
async fn linger(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let discard = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

/// Whether a connection has a request in progress, and since when it has
/// none.
struct Activity {
    /// When the connection was accepted.
    opened: Instant,
    /// Requests whose response has not been sent in full.
    in_progress: AtomicUsize,
    /// When the last request ended, in milliseconds after `opened`.
    last_ended_ms: AtomicU64,
    /// An answer went out with a request body left unread.
    left_body_unread: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            last_ended_ms: AtomicU64::new(0),
            left_body_unread: AtomicBool::new(false),
        }
    }

    /// Marks a request in progress until the returned guard drops.
    fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        InProgress(self.clone())
    }

    /// Since when no request is in progress, if none is.
    fn idle_since(&self) -> Option<Instant> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ended = Duration::from_millis(self.last_ended_ms.load(Ordering::Acquire));
        self.opened.checked_add(ended)
    }

    /// When to look again whether the connection has been idle too long.
    fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        let from = self.idle_since().unwrap_or_else(Instant::now);
        from.checked_add(idle_timeout)
            .unwrap_or_else(|| Instant::now() + LONGEST)
    }

    /// Whether no request has been in progress for `idle_timeout`.
    fn is_idle(&self, idle_timeout: Duration) -> bool {
        self.idle_since()
            .is_some_and(|since| since.elapsed() >= idle_timeout)
    }
}

/// A request in progress on a connection; its drop (once the response is
/// sent, or abandoned) ends it.
struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_ended_ms.store(ended, Ordering::Release);
        activity.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router as a hyper service that tracks requests in progress and
/// settles the bodies that handlers leave unread.
#[derive(Clone)]
struct AppService {
    app: Router,
    activity: Arc<Activity>,
    /// How long a handler may wait for the next bytes of a body.
    body_stall_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for AppService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_progress = self.activity.begin();
        let mut app = self.app.clone();
        let activity = self.activity.clone();
        let stall_timeout = self.body_stall_timeout;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = if body.is_end_stream() {
                let Ok(response) = app.call(Request::from_parts(parts, body)).await;
                response
            } else {
                let expects_continue = parts
                    .headers
                    .get(header::EXPECT)
                    .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                let (give_back, mut given_back) = oneshot::channel();
                let body = UnreadGivenBack {
                    body: Some(body),
                    give_back: Some(give_back),
                    stall_timeout,
                    stall: None,
                    stalled: false,
                };
                let Ok(mut response) = app.call(Request::from_parts(parts, body)).await;
                // The handler is done, so the body is dropped: given back if
                // it was left unread.
                if let Ok(unread) = given_back.try_recv() {
                    // A client waiting for `100 continue` has not sent the
                    // body: asking for it only to discard it is no help.
                    // A stalled one will not send it either.
                    let settled = match unread {
                        Unread::Rest(rest) => !expects_continue && drain(rest).await,
                        Unread::Stalled => false,
                    };
                    if !settled {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        activity.left_body_unread.store(true, Ordering::Relaxed);
                    }
                }
                response
            };
            Ok(response.map(|body| TrackedBody {
                body,
                _in_progress: in_progress,
            }))
        })
    }
}

/// Reads and discards the rest of a request body, if it is small and quick
/// enough; says whether it reached the end.
async fn drain(mut unread: Incoming) -> bool {
    if unread.size_hint().lower() > EARLY_DRAIN_BYTES {
        return false;
    }
    let discard = async {
        let mut left = EARLY_DRAIN_BYTES;
        while let Some(frame) = unread.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                let read = u64::try_from(data.len()).unwrap_or(u64::MAX);
                match left.checked_sub(read) {
                    Some(rest) => left = rest,
                    None => return false,
                }
            }
        }
        true
    };
    tokio::time::timeout(EARLY_DRAIN_TIME, discard)
        .await
        .unwrap_or(false)
}

/// A request body that fails when its next bytes take too long, and that,
/// dropped before its end, gives what is left of it back to the listener.
struct UnreadGivenBack {
    body: Option<Incoming>,
    give_back: Option<oneshot::Sender<Unread>>,
    /// How long a wait for the next bytes may last.
    stall_timeout: Duration,
    /// The deadline of the current wait, if one is running.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: bool,
}

/// What a request body left unread.
enum Unread {
    /// The rest of the body, still arriving.
    Rest(Incoming),
    /// Nothing usable: the client stopped sending it.
    Stalled,
}

/// A request body whose next bytes did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no bytes for {0:?}")]
pub struct BodyStalled(Duration);

impl HttpBody for UnreadGivenBack {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Some(Err(BodyStalled(this.stall_timeout).into())));
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall = None;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.stall_timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    this.stalled = true;
                    return Poll::Ready(Some(Err(BodyStalled(timeout).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stalled && self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for UnreadGivenBack {
    fn drop(&mut self) {
        let (Some(body), Some(give_back)) = (self.body.take(), self.give_back.take()) else {
            return;
        };
        if self.stalled {
            let _ = give_back.send(Unread::Stalled);
        } else if !body.is_end_stream() {
            let _ = give_back.send(Unread::Rest(body));
        }
    }
}

/// A response body that keeps its request in progress until it is sent.
struct TrackedBody {
    body: Body,
    _in_progress: InProgress,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
