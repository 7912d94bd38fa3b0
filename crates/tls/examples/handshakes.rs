//! What a TLS handshake costs on a node's listener: full handshakes (a
//! client with no session to resume), resumed ones (TLS 1.3 tickets from
//! the same client configuration), and plain TCP as the floor, each over
//! loopback with one byte echoed after the handshake, one connection at a
//! time ([`clemmys_tls::handshakes`]; `clemmys-bench --only gateway`
//! measures the node's and the gateway's listeners the same way).
//!
//! ```sh
//! cargo run --release -p clemmys-tls --example handshakes -- 2000
//! ```
//!
//! The server uses this crate's own configuration and a certificate from
//! [`clemmys_tls::ensure_local_certificate`] (ECDSA P-256, as `serve --tls`
//! makes); the client uses [`clemmys_tls::client_config`].

use std::time::Duration;

use clemmys_tls::handshakes::{self, Timings};
use clemmys_tls::{ClientTlsOptions, ServerTls, client_config, ensure_local_certificate};

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
    let options = ClientTlsOptions {
        ca_file: Some(local.ca_path.clone()),
        ..ClientTlsOptions::default()
    };
    let costs = handshakes::measure(
        server.acceptor(),
        client_config(&options)?,
        "localhost",
        connections,
    )
    .await?;
    println!(
        "{connections} connections each, one at a time, loopback; connect + handshake + 1-byte echo"
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9}",
        "mode", "p50 µs", "p90 µs", "mean µs", "resumed"
    );
    for (label, timings) in [
        ("plain TCP", costs.tcp),
        ("TLS full handshake", costs.full),
        ("TLS resumed", costs.resumed),
    ] {
        print_row(label, &timings);
    }
    Ok(())
}

fn print_row(label: &str, timings: &Timings) {
    let resumed = timings
        .resumed
        .map_or_else(|| "-".to_owned(), |count| count.to_string());
    println!(
        "{label:<20} {:>9.1} {:>9.1} {:>9.1} {resumed:>9}",
        micros(timings.p50),
        micros(timings.p90),
        micros(timings.mean)
    );
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
