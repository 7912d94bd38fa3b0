//! The sandbox's knobs, each turned on its own, each on a node of its own:
//! warm plain `noop` at one client (throughput and p50) with the default
//! sandbox, without the pooling allocator, without copy-on-write memory
//! images, with nothing kept resident and with every kept-resident byte
//! reset (no `PAGEMAP_SCAN`); and the cold start (create +
//! first invoke) of plain `hello` with each compiler: tiered (Winch, then
//! optimising Cranelift in the background; the default), Cranelift for
//! start-up, and optimising Cranelift.

use clemmys_sandbox::Compiler;
use clemmys_server::ServerConfig;
use serde::Serialize;

use super::load::LatencySummary;
use super::progress::Progress;
use super::scenarios::{BeforeInvoke, Modules, Plan, cold_with, invoke_loop, on_fresh_node};
use crate::model::{ColdRow, Mode};

/// The setting measured as the default.
pub const DEFAULT: &str = "default";

/// A setting and what it changes.
struct Knob {
    name: &'static str,
    configure: fn(&mut ServerConfig),
    warm: bool,
    cold: bool,
}

const KNOBS: [Knob; 7] = [
    Knob {
        name: DEFAULT,
        configure: |_| {},
        warm: true,
        cold: true,
    },
    Knob {
        name: "pooling off (on-demand)",
        configure: |config| config.sandbox.pooling = false,
        warm: true,
        cold: false,
    },
    Knob {
        name: "copy-on-write off",
        configure: |config| config.sandbox.copy_on_write = false,
        warm: true,
        cold: false,
    },
    Knob {
        name: "keep_resident 0",
        configure: |config| config.sandbox.keep_resident_bytes = 0,
        warm: true,
        cold: false,
    },
    Knob {
        name: "pagemap scan off",
        configure: |config| config.sandbox.pagemap_scan = false,
        warm: true,
        cold: false,
    },
    Knob {
        name: "compiler cranelift-fast",
        configure: |config| config.sandbox.compiler = Compiler::CraneliftFast,
        warm: false,
        cold: true,
    },
    Knob {
        name: "compiler cranelift-optimizing",
        configure: |config| config.sandbox.compiler = Compiler::CraneliftOptimizing,
        warm: false,
        cold: true,
    },
];

/// One setting's figures (`None`: not measured for this setting).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KnobRow {
    /// The setting.
    pub setting: String,
    /// Warm plain noop, one client.
    pub warm: Option<LatencySummary>,
    /// Cold starts of plain hello.
    pub cold_hello: Option<ColdRow>,
}

/// Measures every knob on a fresh node.
pub async fn measure(
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<Vec<KnobRow>> {
    let mut rows = Vec::new();
    for knob in &KNOBS {
        let row = on_fresh_node(knob.configure, async |node| {
            let mut row = KnobRow {
                setting: knob.name.into(),
                warm: None,
                cold_hello: None,
            };
            if knob.warm {
                let name = "bench-knob-noop";
                node.put_plain(name, &modules.noop, true).await?;
                let label = format!("knob {}: warm plain noop", knob.name);
                row.warm = Some(
                    invoke_loop(node, name, Mode::Plain, &label, plan.spec(1), progress).await?,
                );
            }
            if knob.cold {
                let label = format!("knob {}: cold plain hello", knob.name);
                let before = BeforeInvoke::Nothing;
                let hello = ("hello", Mode::Plain);
                row.cold_hello =
                    Some(cold_with(node, plan, modules, hello, &before, &label, progress).await?);
            }
            Ok(row)
        })
        .await?;
        rows.push(row);
    }
    Ok(rows)
}
