//! `clemmys`: the command-line tool of Clemmys, a confidential serverless
//! platform that speaks the Apache OpenWhisk REST API.
//!
//! As a client it behaves like OpenWhisk's `wsk` (`action`, `activation`,
//! `namespace`, `property`, with the same flags, `~/.wskprops` and output);
//! it also runs a whole node (`serve`) and administers one (`admin`).
//!
//! What it trusts: the API host and key it is configured with. It holds the
//! API key in memory and in the properties file (written owner-readable
//! only); it never sees a confidential action's plaintext unless the user
//! gives it that plaintext.

/// mimalloc instead of glibc's allocator: a warm invoke allocates and
/// frees many small buffers on the runtime's threads, and with mimalloc
/// the node spends 6-14 % less CPU per request at 8 clients
/// (docs/BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod commands;
mod output;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    Context, GlobalArgs, action::ActionCommand, activation::ActivationCommand,
    broker::BrokerCommand, namespace::NamespaceCommand, package::PackageCommand,
    property::PropertyCommand, rule::RuleCommand, trigger::TriggerCommand,
};
use crate::output::Output;

/// Clemmys: confidential serverless functions with the OpenWhisk API.
#[derive(Debug, Parser)]
#[command(name = "clemmys", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with actions.
    Action {
        #[command(subcommand)]
        command: ActionCommand,
    },
    /// Work with activations.
    Activation {
        #[command(subcommand)]
        command: ActivationCommand,
    },
    /// List the packages, actions, triggers and rules of your namespace.
    List,
    /// Work with packages and bindings.
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
    /// Work with triggers.
    Trigger {
        #[command(subcommand)]
        command: TriggerCommand,
    },
    /// Work with rules (plain actions only).
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
    /// Work with namespaces.
    Namespace {
        #[command(subcommand)]
        command: NamespaceCommand,
    },
    /// Verify and pin the key broker (before deploying confidential actions).
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
    /// Run the attested gateway for unmodified OpenWhisk clients, or verify
    /// one before trusting it.
    Gateway {
        #[command(subcommand)]
        command: commands::gateway::GatewayCommand,
    },
    /// Work with the properties in ~/.wskprops.
    Property {
        #[command(subcommand)]
        command: PropertyCommand,
    },
    /// Run a whole Clemmys node in this process.
    Serve(serve::ServeArgs),
    /// Administer a node's namespaces and keys.
    Admin(admin::AdminArgs),
}

fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_tracing("info");
            serve::run(args).await
        }
        Command::Admin(args) => {
            init_tracing("warn");
            admin::run(args, cli.global.json).await
        }
        Command::Action { command } => {
            commands::action::run(command, &Context::new(&cli.global)?).await
        }
        Command::Activation { command } => {
            commands::activation::run(command, &Context::new(&cli.global)?).await
        }
        Command::List => commands::list::run(&Context::new(&cli.global)?).await,
        Command::Package { command } => {
            commands::package::run(command, &Context::new(&cli.global)?).await
        }
        Command::Trigger { command } => {
            commands::trigger::run(command, &Context::new(&cli.global)?).await
        }
        Command::Rule { command } => {
            commands::rule::run(command, &Context::new(&cli.global)?).await
        }
        Command::Namespace { command } => {
            commands::namespace::run(command, &Context::new(&cli.global)?).await
        }
        Command::Broker {
            command: commands::broker::BrokerCommand::Serve(args),
        } => {
            init_tracing("info");
            commands::broker::serve(args).await
        }
        Command::Broker { command } => {
            commands::broker::run(command, &Context::new(&cli.global)?).await
        }
        Command::Gateway { command } => {
            if matches!(command, commands::gateway::GatewayCommand::Serve(_)) {
                init_tracing("info");
            }
            commands::gateway::run(command, &cli.global).await
        }
        Command::Property { command } => {
            commands::property::run(command, &Context::new(&cli.global)?).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = Output::new(cli.global.json);
    let outcome = run(cli).await;
    if output::stdout_closed() {
        // As the default `SIGPIPE` action would have ended it, once the
        // command kept what it must (see `output::write_stdout`).
        return ExitCode::from(141);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output.print_error(&error);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_subcommands() {
        let cli = Cli::try_parse_from([
            "clemmys",
            "--json",
            "action",
            "list",
            "--apihost",
            "http://h:1",
            "-u",
            "a:b",
            "-v",
        ])
        .expect("parse");
        assert!(cli.global.json && cli.global.verbose);
        assert_eq!(cli.global.apihost, Some(Some("http://h:1".into())));
        assert_eq!(cli.global.auth, Some(Some("a:b".into())));
        let cli = Cli::try_parse_from(["clemmys", "property", "get", "--auth"]).expect("parse");
        assert_eq!(cli.global.auth, Some(None));
    }
}
