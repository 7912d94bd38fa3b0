//! What a TLS handshake costs on a node's listener: full handshakes (a
//! client with no session to resume), resumed ones (TLS 1.3 tickets from
//! the same client configuration), and plain TCP as the floor, each over
//! loopback with one byte echoed after the handshake, one connection at a
//! time.
//!
//! ```sh
//! cargo run --release -p clemmys-tls --example handshakes -- 2000
//! ```
//!
//! The server uses this crate's own configuration and a certificate from
//! [`clemmys_tls::ensure_local_certificate`] (ECDSA P-256, as `serve --tls`
//! makes); the client uses [`clemmys_tls::client_config`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use clemmys_tls::{ClientTlsOptions, ServerTls, client_config, ensure_local_certificate};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let connections: usize = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1000,
    };
    let dir = tempfile::tempdir()?;
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let local = ensure_local_certificate(dir.path(), &names)?;
    let server = ServerTls::from_pem_files(&local.cert_path, &local.key_path, None)?;

    let tls_listener = TcpListener::bind("127.0.0.1:0").await?;
    let tls_address = tls_listener.local_addr()?;
    let acceptor = server.acceptor();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tls_listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = echo_one_byte(tls).await;
                }
            });
        }
    });
    let tcp_listener = TcpListener::bind("127.0.0.1:0").await?;
    let tcp_address = tcp_listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp_listener.accept().await {
            tokio::spawn(echo_one_byte(stream));
        }
    });

    let options = ClientTlsOptions {
        ca_file: Some(local.ca_path.clone()),
        ..ClientTlsOptions::default()
    };
    let mut fresh = client_config(&options)?;
    fresh.resumption = Resumption::disabled();
    let full = TlsConnector::from(Arc::new(fresh));
    let resuming = TlsConnector::from(Arc::new(client_config(&options)?));
    let name = ServerName::try_from("localhost")?;

    // One resumed connection first, so every measured one has a ticket.
    connect_tls(&resuming, tls_address, name.clone()).await?;
    let mut rows = Vec::new();
    let mut times = Vec::with_capacity(connections);
    for _ in 0..connections {
        let started = Instant::now();
        let stream = TcpStream::connect(tcp_address).await?;
        stream.set_nodelay(true)?;
        ping(stream).await?;
        times.push(started.elapsed());
    }
    rows.push(("plain TCP", summarize(&mut times), None));
    for (label, connector) in [("TLS full handshake", &full), ("TLS resumed", &resuming)] {
        times.clear();
        let mut resumed = 0;
        for _ in 0..connections {
            let started = Instant::now();
            if connect_tls(connector, tls_address, name.clone()).await? {
                resumed += 1;
            }
            times.push(started.elapsed());
        }
        rows.push((label, summarize(&mut times), Some(resumed)));
    }
    println!(
        "{connections} connections each, one at a time, loopback; connect + handshake + 1-byte echo"
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9}",
        "mode", "p50 µs", "p90 µs", "mean µs", "resumed"
    );
    for (label, (p50, p90, mean), resumed) in rows {
        let resumed = resumed.map_or_else(|| "-".to_owned(), |count| count.to_string());
        println!(
            "{label:<20} {:>9.1} {:>9.1} {:>9.1} {resumed:>9}",
            micros(p50),
            micros(p90),
            micros(mean)
        );
    }
    Ok(())
}

/// Connects, handshakes and echoes a byte; whether the session resumed.
async fn connect_tls(
    connector: &TlsConnector,
    address: std::net::SocketAddr,
    name: ServerName<'static>,
) -> Result<bool, Failure> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut tls = connector.connect(name, stream).await?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    tls.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    // Reading also takes in the server's session tickets.
    tls.read_exact(&mut byte).await?;
    Ok(resumed)
}

async fn ping(mut stream: TcpStream) -> Result<(), Failure> {
    stream.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    Ok(())
}

async fn echo_one_byte(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await?;
    stream.write_all(&byte).await?;
    stream.flush().await
}

/// p50, p90 and mean of `times` (sorted in place).
fn summarize(times: &mut [Duration]) -> (Duration, Duration, Duration) {
    times.sort_unstable();
    let at = |fraction: f64| {
        let index = ((times.len() as f64 - 1.0) * fraction).round() as usize;
        times.get(index).copied().unwrap_or_default()
    };
    let total: Duration = times.iter().sum();
    let mean = total
        .checked_div(u32::try_from(times.len()).unwrap_or(u32::MAX).max(1))
        .unwrap_or_default();
    (at(0.5), at(0.9), mean)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
