//! `clemmys serve`: runs a whole node in this process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clemmys_server::{RunningServer, ServerConfig};

/// Arguments of `clemmys serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3233", env = "CLEMMYS_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for the store, keys and the generated `wskprops`.
    #[arg(long, env = "CLEMMYS_DATA_DIR", default_value_os_t = crate::admin::default_data_dir())]
    pub data_dir: PathBuf,
}

/// Runs the server until ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let server = RunningServer::start(ServerConfig::new(args.listen, args.data_dir.clone()))
        .await
        .with_context(|| {
            format!(
                "starting the server on {} with data dir {}",
                args.listen,
                args.data_dir.display()
            )
        })?;
    eprintln!(
        "clemmys: serving the OpenWhisk API on {}/api/v1",
        server.api_host()
    );
    eprintln!(
        "clemmys: credentials for namespace 'guest' are in {}",
        args.data_dir.join("wskprops").display()
    );
    server.run_until_signal().await
}
