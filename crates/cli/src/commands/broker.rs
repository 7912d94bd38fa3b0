//! `clemmys broker …`: verify and pin the key broker of the API host.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use clemmys_client::confidential::{BrokerIdentityDoc, expected_broker_measurement, sim_warning};
use clemmys_proto::{Measurement, SigningPublicKey};
use serde_json::json;

use super::Context;
use super::confidential::home;
use crate::output::outln;

/// `clemmys broker …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BrokerCommand {
    /// Show the broker's attestation and pin it after verifying it.
    Trust(TrustArgs),
    /// Show what is pinned for the API host.
    Show,
    /// Run the key broker as its own process (nodes reach it with
    /// `clemmys serve --broker URL`).
    Serve(BrokerServeArgs),
}

/// Arguments of `broker serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3234")]
    pub listen: std::net::SocketAddr,
    /// Directory of the broker's sealed state.
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// This host's simulated platform key file, shared with the nodes of
    /// this host (default: DATA_DIR/sim-platform.key).
    #[arg(long, value_name = "FILE")]
    pub sim_platform_key: Option<std::path::PathBuf>,
    /// Also accept enclaves of another host's simulated platform (its
    /// public key, hex); repeatable.
    #[arg(long = "trust-sim-platform", value_name = "HEX")]
    pub trust_sim_platforms: Vec<clemmys_proto::SigningPublicKey>,
    /// The HTTP listener's limits.
    #[command(flatten)]
    pub http: crate::serve::HttpArgs,
    /// TLS on the listener.
    #[command(flatten)]
    pub tls: crate::serve::TlsArgs,
}

/// Runs the broker until ctrl-c.
pub async fn serve(args: BrokerServeArgs) -> anyhow::Result<()> {
    let broker = clemmys_server::broker_node::RunningBroker::start(
        clemmys_server::broker_node::BrokerConfig {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            sim_platform_key: args.sim_platform_key,
            trust_sim_platforms: args.trust_sim_platforms,
            http: args.http.limits(),
            tls: args.tls.listener_tls()?,
        },
    )
    .await
    .with_context(|| format!("starting the key broker on {}", args.listen))?;
    eprintln!("clemmys: key broker serving on {}", broker.url());
    if let Some(ca_file) = &broker.ca_file {
        eprintln!(
            "clemmys: TLS certificate from this broker's own authority; nodes trust it with --broker-cacert {}",
            ca_file.display()
        );
    }
    broker.run_until_signal().await
}

/// Arguments of `broker trust`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrustArgs {
    /// Pin only a broker of exactly this measurement, with its TEE kind
    /// (`sim:HEX` or `sgx-dcap:HEX`; for scripts).
    #[arg(long, value_name = "KIND:HEX")]
    pub expect_measurement: Option<Measurement>,
    /// Do not ask: pin if the measurement is the expected one.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The namespace of your confidential actions (default: `NAMESPACE`
    /// of the properties). Fixed in the pin: no answer of the controller
    /// ever changes it.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Also accept actions and sequences registered by this client identity
    /// (its public key, 64 hex digits, as its `clemmys broker show` prints);
    /// repeatable. Without it only your own are accepted.
    #[arg(long = "trust-owner", value_name = "HEX")]
    pub trust_owners: Vec<clemmys_proto::ClientId>,
    /// Pin a simulated (`sim`) broker where a hardware one was pinned
    /// before: refused without it, since a provider that changed the
    /// broker's keys would like nothing better than a re-pin to a TEE it
    /// simulates.
    #[arg(long)]
    pub downgrade_to_sim: bool,
    /// Pin a broker for a namespace that is pinned at another address to
    /// another broker, where this client has confidential actions: this
    /// address is another deployment, and nothing seen there carries over.
    /// Refused without it, since a provider could offer the same
    /// deployment under a new address with a fresh broker, which would
    /// know none of those actions.
    #[arg(long)]
    pub another_deployment: bool,
}

/// Runs a broker command.
pub async fn run(command: BrokerCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        BrokerCommand::Trust(args) => trust(args, ctx).await,
        BrokerCommand::Show => show(ctx),
        BrokerCommand::Serve(args) => serve(args).await,
    }
}

async fn trust(args: TrustArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let doc = BrokerIdentityDoc::fetch(&client)
        .await
        .context("fetching the key broker's identity")?;
    let claimed = doc
        .claimed_measurement()
        .context("the broker's evidence does not verify")?;
    let expected = args
        .expect_measurement
        .unwrap_or_else(expected_broker_measurement);
    // The TEE kind the verified evidence is of, not the document's word.
    let tee = claimed.tee();
    let previous = home()?.broker_pin(client.api_host())?;
    let output = &ctx.output;
    // What is to be pinned: on stdout, or with --json (whose stdout is the
    // answer) on stderr before the question, if one is asked.
    let mut summary = vec![
        format!("key broker of {}", client.api_host()),
        format!("  TEE:                  {}", tee.name()),
        format!("  measurement:          {claimed}"),
        format!(
            "  expected measurement: {expected}{}",
            if args.expect_measurement.is_some() {
                ""
            } else {
                " (this release's broker)"
            }
        ),
        format!("  HPKE key:             {}", doc.identity.keys.kem),
        format!("  signing key:          {}", doc.identity.keys.signing),
    ];
    if let Some(platform) = doc.sim_platform_key {
        summary.push(format!("  sim platform key:     {platform}"));
    }
    let changes = previous.as_ref().map_or_else(Vec::new, |previous| {
        pin_changes(previous, &claimed, &doc.identity.keys, doc.sim_platform_key)
    });
    for change in &changes {
        summary.push(format!("  CHANGED since pinned: {change}"));
    }
    if let Some(warning) = sim_warning(tee) {
        summary.push(String::new());
        summary.push(format!("WARNING: {warning}"));
    }
    // From the user's own configuration only: a controller that named the
    // namespace could name one the provider owns.
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| ctx.namespace().to_owned());
    if namespace == clemmys_client::DEFAULT_NAMESPACE {
        bail!(
            "no namespace is configured: pass --namespace NAMESPACE (or set it with `clemmys property set --namespace NAMESPACE`)"
        );
    }
    // The same namespace pinned at another address: the same broker (a
    // cluster's other controller, another spelling of the URL) shares what
    // was seen there; another broker must be another deployment.
    let home = home()?;
    let mut same_broker = Vec::new();
    // Also on a re-pin to other keys: a fresh broker behind an address
    // pinned as the same deployment's is no more the same one.
    if previous
        .as_ref()
        .is_none_or(|previous| previous.keys != doc.identity.keys)
    {
        for (host, other) in home.pinned_for(&namespace, client.api_host())? {
            if other.keys == doc.identity.keys {
                summary.push(format!(
                    "  same broker as:        {host} (the versions seen there carry over)"
                ));
                same_broker.push(host);
            } else if home.saw_confidential_at(&host, &namespace)? && !args.another_deployment {
                bail!(
                    "refusing to pin: namespace {namespace} is pinned at {host} to another key broker, and this client has confidential actions there; a provider could offer that deployment under this new address with a fresh broker, which knows none of them, to have them read as plain. Pass --another-deployment if {} is another deployment (nothing seen at {host} carries over)",
                    client.api_host()
                );
            }
        }
    }
    let asking = !args.yes && args.expect_measurement.is_none();
    for line in &summary {
        if !output.is_json() {
            outln!("{line}");
        } else if asking {
            eprintln!("{line}");
        }
    }
    if previous
        .as_ref()
        .is_some_and(|previous| previous.tee.is_hardware() && !tee.is_hardware())
        && !args.downgrade_to_sim
    {
        bail!(
            "refusing to pin: the broker of {} was pinned on hardware and now shows {} evidence, which gives no hardware protection (pass --downgrade-to-sim if that is what you mean)",
            client.api_host(),
            tee.name()
        );
    }
    if claimed != expected {
        bail!("refusing to pin: the broker's measurement {claimed} is not the expected {expected}");
    }
    if asking && !confirm("Pin this key broker?")? {
        bail!("not pinned");
    }
    // For sim, the platform key comes from the provider itself: accepting it
    // is exactly the trust-on-first-use that sim cannot avoid.
    let mut pin = doc.verify(expected, doc.sim_platform_key)?;
    // Trusting the same broker again keeps the owners trusted before.
    if let Some(previous) = previous
        && previous.keys == pin.keys
    {
        pin.trusted_owners = previous.trusted_owners;
    }
    for owner in args.trust_owners {
        if !pin.trusted_owners.contains(&owner) {
            pin.trusted_owners.push(owner);
        }
    }
    if !output.is_json() {
        outln!("  namespace:            {namespace}");
        for owner in &pin.trusted_owners {
            outln!("  trusted owner:        {owner}");
        }
    }
    pin.namespace = Some(namespace);
    for host in &same_broker {
        home.adopt_marks(host, client.api_host())?;
    }
    home.save_broker_pin(client.api_host(), &pin)?;
    if output.is_json() {
        return output.print_json(&json!({
            "pinned": pin,
            "apiHost": client.api_host(),
            "changedSincePinned": changes,
            "warning": sim_warning(pin.tee),
        }));
    }
    output.ok(format_args!(
        "pinned the key broker of {}",
        client.api_host()
    ));
    Ok(())
}

/// Asks on the terminal; refuses when there is none.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "not a terminal: pass --yes to pin a broker of the expected measurement, or --expect-measurement HEX"
        );
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn show(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let pin = home()?.broker_pin(client.api_host())?;
    let Some(pin) = pin else {
        bail!(
            "no key broker is pinned for {}: run `clemmys broker trust`",
            client.api_host()
        );
    };
    if ctx.output.is_json() {
        let mut shown = serde_json::to_value(&pin)?;
        shown["warning"] = json!(sim_warning(pin.tee));
        return ctx.output.print_json(&shown);
    }
    outln!("key broker pinned for {}", client.api_host());
    outln!("  TEE:         {}", pin.tee.name());
    outln!("  measurement: {}", pin.measurement);
    if let Some(namespace) = &pin.namespace {
        outln!("  namespace:   {namespace}");
    }
    for owner in &pin.trusted_owners {
        outln!("  trusted owner: {owner}");
    }
    outln!("your client identity: {}", home()?.identity()?.id());
    if let Some(warning) = sim_warning(pin.tee) {
        outln!("WARNING: {warning}");
    }
    Ok(())
}

/// What differs between `previous` and a broker of measurement `claimed`
/// with `keys`, in words.
fn pin_changes(
    previous: &clemmys_client::confidential::BrokerPin,
    claimed: &Measurement,
    keys: &clemmys_proto::identity::EnclavePublicKeys,
    sim_platform: Option<SigningPublicKey>,
) -> Vec<String> {
    let mut changes = Vec::new();
    if previous.tee != claimed.tee() {
        changes.push(format!(
            "TEE {} (was {})",
            claimed.tee().name(),
            previous.tee.name()
        ));
    }
    if previous.measurement != *claimed {
        changes.push(format!("measurement (was {})", previous.measurement));
    }
    if previous.keys != *keys {
        changes.push("keys".to_owned());
        if !previous.trusted_owners.is_empty() {
            // Trusted owners are kept only for the same broker.
            changes.push(format!(
                "trusted owners ({} dropped: trust them again with --trust-owner)",
                previous.trusted_owners.len()
            ));
        }
    }
    if previous.sim_platform != sim_platform {
        changes.push("sim platform key".to_owned());
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_client::confidential::BrokerPin;
    use clemmys_proto::identity::EnclaveKeys;

    #[test]
    fn what_changed_since_the_pin_names_keys_owners_and_the_platform() {
        let mut rng = clemmys_tee::os_rng();
        let (pinned_keys, other_keys) = (
            EnclaveKeys::generate(&mut rng).public(),
            EnclaveKeys::generate(&mut rng).public(),
        );
        let platform = EnclaveKeys::generate(&mut rng).public().signing;
        let measurement = expected_broker_measurement();
        let previous = BrokerPin {
            tee: measurement.tee(),
            measurement,
            sim_platform: Some(platform),
            keys: pinned_keys,
            namespace: Some("guest".into()),
            trusted_owners: vec![clemmys_proto::identity::ClientIdentity::generate(&mut rng).id()],
        };
        assert!(pin_changes(&previous, &measurement, &pinned_keys, Some(platform)).is_empty());
        let changes = pin_changes(&previous, &measurement, &other_keys, None);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(changes[0], "keys");
        assert!(changes[1].contains("1 dropped"), "{changes:?}");
        assert_eq!(changes[2], "sim platform key");
    }
}
