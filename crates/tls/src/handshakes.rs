//! What a TLS handshake costs on a listener's configuration: full
//! handshakes (a client with no session to resume), resumed ones (TLS 1.3
//! tickets from the same client configuration), and plain TCP as the
//! floor, each over loopback with one byte echoed after the handshake, one
//! connection at a time.
//!
//! The server side is the listener's own [`TlsAcceptor`] (so its
//! certificate chain, key type and ticket settings are what is measured),
//! in front of an echo task rather than HTTP: the figures are the
//! handshake's alone. Used by `examples/handshakes.rs` and by
//! `clemmys-bench`; this measures time, so it is not for tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The name to ask the server for is not a DNS name or an address.
    #[error("{0} is not a server name")]
    InvalidName(String),
    /// Listening, connecting, the handshake or the echo failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// One connection (connect, handshake, echo) did not finish in time.
    #[error("a measured connection did not finish within {0:?}")]
    TimedOut(Duration),
}

/// The longest one measured connection may take: a loopback connection
/// takes well under a millisecond, so one that takes this long is stuck,
/// and the measurement says so rather than wait for ever.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// `connection`, or [`HandshakeError::TimedOut`] after [`CONNECTION_TIMEOUT`].
async fn in_time<T>(
    connection: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(CONNECTION_TIMEOUT, connection)
        .await
        .map_err(|_| HandshakeError::TimedOut(CONNECTION_TIMEOUT))?
}

/// The times of one kind of connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// Connections measured.
    pub connections: usize,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 90th percentile (nearest rank).
    pub p90: Duration,
    /// Mean.
    pub mean: Duration,
    /// For TLS: how many connections resumed a session.
    pub resumed: Option<usize>,
}

/// Plain TCP, full and resumed handshakes on one listener configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HandshakeCosts {
    /// Connect and echo a byte, no TLS: the floor.
    pub tcp: Timings,
    /// Connect, a full handshake, echo a byte.
    pub full: Timings,
    /// Connect, a resumed handshake, echo a byte.
    pub resumed: Timings,
}

/// Measures `connections` connections of each kind against `acceptor`,
/// with `client` (whose resumption settings are used for the resumed
/// kind, and turned off for the full one) asking for `server_name`.
pub async fn measure(
    acceptor: TlsAcceptor,
    client: ClientConfig,
    server_name: &str,
    connections: usize,
) -> Result<HandshakeCosts, HandshakeError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| HandshakeError::InvalidName(server_name.to_owned()))?;
    let tls = EchoServer::start(Some(acceptor)).await?;
    let tcp = EchoServer::start(None).await?;
    let mut fresh = client.clone();
    fresh.resumption = Resumption::disabled();
    let full_connector = TlsConnector::from(Arc::new(fresh));
    let resuming = TlsConnector::from(Arc::new(client));

    // One resumed connection first, so every measured one has a ticket.
    in_time(connect_tls(&resuming, tls.address, name.clone())).await?;
    let mut times = Vec::with_capacity(connections);
    for _ in 0..connections {
        let started = Instant::now();
        in_time(async { echo_through(connect(tcp.address).await?).await }).await?;
        times.push(started.elapsed());
    }
    let tcp_timings = Timings::of(&mut times, None);
    let mut measure_tls = async |connector: &TlsConnector| {
        times.clear();
        let mut resumed = 0usize;
        for _ in 0..connections {
            let started = Instant::now();
            if in_time(connect_tls(connector, tls.address, name.clone())).await? {
                resumed = resumed.saturating_add(1);
            }
            times.push(started.elapsed());
        }
        Ok::<_, HandshakeError>(Timings::of(&mut times, Some(resumed)))
    };
    let full = measure_tls(&full_connector).await?;
    let resumed = measure_tls(&resuming).await?;
    Ok(HandshakeCosts {
        tcp: tcp_timings,
        full,
        resumed,
    })
}

impl Timings {
    /// The timings of `times` (sorted in place).
    pub fn of(times: &mut [Duration], resumed: Option<usize>) -> Self {
        times.sort_unstable();
        let at = |fraction: f64| {
            // Nearest rank: the smallest time with `fraction` of them at or
            // below it.
            let rank = (fraction * times.len() as f64).ceil() as usize;
            times
                .get(rank.clamp(1, times.len().max(1)) - 1)
                .copied()
                .unwrap_or_default()
        };
        let total: Duration = times.iter().sum();
        let mean = total
            .checked_div(u32::try_from(times.len()).unwrap_or(u32::MAX).max(1))
            .unwrap_or_default();
        Self {
            connections: times.len(),
            p50: at(0.5),
            p90: at(0.9),
            mean,
            resumed,
        }
    }
}

/// A loopback listener that echoes one byte per connection, over TLS
/// with `acceptor`, or plain TCP; stopped on drop.
struct EchoServer {
    address: SocketAddr,
    accepting: JoinHandle<()>,
}

impl EchoServer {
    async fn start(acceptor: Option<TlsAcceptor>) -> Result<Self, HandshakeError> {
        let io = |what| move |source| HandshakeError::Io { what, source };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding a loopback listener"))?;
        let address = listener
            .local_addr()
            .map_err(io("reading the listener's address"))?;
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = echo_one_byte(tls).await;
                            }
                        }
                        None => {
                            let _ = echo_one_byte(stream).await;
                        }
                    }
                });
            }
        });
        Ok(Self { address, accepting })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn connect(address: SocketAddr) -> Result<TcpStream, HandshakeError> {
    let io = |what| move |source| HandshakeError::Io { what, source };
    let stream = TcpStream::connect(address)
        .await
        .map_err(io("connecting"))?;
    stream
        .set_nodelay(true)
        .map_err(io("setting TCP_NODELAY"))?;
    Ok(stream)
}

/// Connects, handshakes and echoes a byte; whether the session resumed.
async fn connect_tls(
    connector: &TlsConnector,
    address: SocketAddr,
    name: ServerName<'static>,
) -> Result<bool, HandshakeError> {
    let stream = connect(address).await?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|source| HandshakeError::Io {
            what: "the TLS handshake",
            source,
        })?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    // Reading the echo also takes in the server's session tickets.
    echo_through(tls).await?;
    Ok(resumed)
}

/// Sends a byte and reads it back.
async fn echo_through(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
) -> Result<(), HandshakeError> {
    let io = |source| HandshakeError::Io {
        what: "the echo",
        source,
    };
    stream.write_all(b"x").await.map_err(io)?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.map_err(io)?;
    Ok(())
}

async fn echo_one_byte(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    stream.write_all(&byte).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_nearest_rank_samples() {
        let mut times: Vec<Duration> = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]
            .into_iter()
            .map(Duration::from_micros)
            .collect();
        let timings = Timings::of(&mut times, Some(3));
        assert_eq!(timings.connections, 10);
        assert_eq!(timings.p50, Duration::from_micros(5));
        assert_eq!(timings.p90, Duration::from_micros(9));
        assert_eq!(timings.mean, Duration::from_nanos(5_500));
        assert_eq!(timings.resumed, Some(3));
        let empty = Timings::of(&mut [], None);
        assert_eq!((empty.connections, empty.p50), (0, Duration::ZERO));
    }
}
