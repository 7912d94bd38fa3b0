//! First-start chores: the data directory, namespace `guest`, `wskprops`,
//! and waiting for a shutdown signal.

use std::path::Path;

use anyhow::Context;
use clemmys_store::EntityStore;
use clemmys_whisk::{AuthKey, EntityName, NamespaceLimits, NamespaceRecord};

/// The namespace created on first start.
pub const GUEST: &str = "guest";

/// Creates `dir` (and parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// A fresh random API key.
pub fn random_auth_key() -> anyhow::Result<AuthKey> {
    let mut uuid = [0u8; 16];
    let mut key = [0u8; 64];
    getrandom::fill(&mut uuid).context("reading the OS RNG")?;
    getrandom::fill(&mut key).context("reading the OS RNG")?;
    Ok(AuthKey::from_random(uuid, key))
}

/// The key of namespace `guest`, creating the namespace on first start.
pub async fn ensure_guest_namespace(store: &dyn EntityStore) -> anyhow::Result<AuthKey> {
    let name = EntityName::new(GUEST).context("the guest namespace name")?;
    if let Some(record) = store.get_namespace(&name).await? {
        return Ok(record.auth);
    }
    let record = NamespaceRecord {
        name,
        auth: random_auth_key()?,
        limits: NamespaceLimits::default(),
    };
    let auth = record.auth.clone();
    store
        .put_namespace(record)
        .await
        .context("creating namespace guest")?;
    tracing::info!("created namespace guest");
    Ok(auth)
}

/// Writes `dir/wskprops` in OpenWhisk's `~/.wskprops` format, mode 0600.
pub fn write_wskprops(
    dir: &Path,
    api_host: &str,
    auth: &AuthKey,
    ca_file: Option<&Path>,
) -> anyhow::Result<()> {
    let path = dir.join("wskprops");
    let mut text = format!("APIHOST={api_host}\nAUTH={auth}\nNAMESPACE={GUEST}\n");
    if let Some(ca_file) = ca_file {
        text.push_str(&format!("CACERT={}\n", ca_file.display()));
    }
    let temporary = dir.join("wskprops.tmp");
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The admin token in `dir/admin.key`, created (mode 0600) on first start.
pub fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin.key");
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).context("reading the OS RNG")?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            use std::io::Write;
            let mut file = options
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(token.as_bytes())?;
            Ok(token)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
