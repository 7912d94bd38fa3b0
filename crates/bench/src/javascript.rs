//! JavaScript against wasm: the warm `hello` of `examples/js/hello.js`
//! (kind `nodejs:20`, run by the node's QuickJS engine, `clemmys-js.wasm`)
//! next to the warm `hello.wasm`, both plain, on one node of their own, in
//! alternating slices of one window (see [`crate::alternate`]) at 1 and N
//! clients. The goal of issue 18: JS at most 1.5× the wasm hello's p50.
//! Then the same JS hello deployed confidential (its source sealed with the
//! engine's digest, as the CLI seals it) against it plain, side by side at
//! 1 and N clients as the warm noop pair is: issue 18's goal there is
//! confidential/plain throughput at least 0.95, as for wasm. Then cold
//! starts of both: create a new action and invoke it once, `--cold-runs`
//! times each (the engine and hello.wasm are compiled already, as on a node
//! that runs other actions), and, for reference, Node.js started for one
//! call of the same source.

use std::path::Path;

use anyhow::Context as _;
use clemmys_whisk::action::{ActionPut, ExecPut};
use serde::Serialize;

use crate::load::LatencySummary;
use crate::model::{self, Mode, Quantiles, RatioRow, WarmRow};
use crate::progress::Progress;
use crate::scenarios::{self, Modules, Node, Plan};

/// The JavaScript hello, as the examples ship it.
const JS_HELLO_SOURCE: &str = include_str!("../../../examples/js/hello.js");
const JS_HELLO: &str = "bench-hello-js";
const CONFIDENTIAL_JS_HELLO: &str = "bench-hello-jsc";
const WASM_HELLO: &str = "bench-hello-wasm";
/// The action name of the confidential/plain rows.
pub const JS_ACTION: &str = "hello.js";
/// How long to wait for the engine's optimising compile.
const TIER_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
/// The bound issue 18 sets on a JS hello's cold start (create + first
/// invoke, p50), ms.
pub const JS_COLD_GOAL_MS: f64 = 10.0;
/// The bound issue 18 sets on warm JS p50 over warm wasm p50.
pub const JS_P50_GOAL: f64 = 1.5;
/// The bound issue 18 sets on confidential JS throughput over plain JS
/// throughput: the warm wasm pair's.
pub const CONFIDENTIAL_THROUGHPUT_GOAL: f64 = 0.95;

/// Warm JS and wasm hello at one client count, measured side by side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsRow {
    /// Concurrent clients.
    pub clients: usize,
    /// The wasm hello.
    pub wasm: LatencySummary,
    /// The JavaScript hello.
    pub js: LatencySummary,
    /// JS p50 / wasm p50 (lower is better; the goal is at most 1.5).
    pub p50_ratio: f64,
    /// JS throughput / wasm throughput (higher is better).
    pub throughput_ratio: f64,
}

/// Cold starts of new JS and wasm hello actions (ms, create + first
/// invoke).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsCold {
    /// Runs of each.
    pub runs: usize,
    /// The wasm hello.
    pub wasm_ms: Quantiles,
    /// The JavaScript hello.
    pub js_ms: Quantiles,
    /// The reference issue 18 asks for: Node.js (`node` on the PATH)
    /// started for one call of the same `hello.js` (start, load, `main`,
    /// its JSON on stdout), as a runtime that spawns a process per call
    /// would; `None` when there is no `node`.
    pub node_ms: Option<Quantiles>,
}

/// What `--only js` measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsReport {
    /// Warm, side by side, per client count.
    pub rows: Vec<JsRow>,
    /// The JS hello plain and confidential, side by side, per client count
    /// (action [`JS_ACTION`]).
    pub confidential: Vec<WarmRow>,
    /// Confidential over plain, from `confidential`.
    pub confidential_ratios: Vec<RatioRow>,
    /// Cold starts.
    pub cold: Option<JsCold>,
}

/// Measures warm JS against warm wasm hello on a node running `engine`.
pub async fn measure(
    plan: &Plan,
    modules: &Modules,
    engine: &Path,
    progress: &Progress,
) -> anyhow::Result<JsReport> {
    anyhow::ensure!(
        engine.is_file(),
        "no JavaScript engine at {} (run scripts/build-runtimes.sh, or give --js-engine)",
        engine.display()
    );
    let engine_code = std::fs::read(engine)
        .with_context(|| format!("reading the JavaScript engine {}", engine.display()))?;
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let dir = crate::temporary_dir()?;
    let node = Node::start_with(dir.path(), largest, |config| {
        config.js_engine = Some(engine.to_owned());
    })
    .await?;
    let measured = async {
        node.put_plain(WASM_HELLO, &modules.hello, true).await?;
        let js = ActionPut {
            exec: Some(ExecPut {
                kind: "nodejs:20".into(),
                code: Some(JS_HELLO_SOURCE.to_owned()),
                binary: Some(false),
                ..ExecPut::default()
            }),
            ..ActionPut::default()
        };
        node.client
            .put_action(JS_HELLO, &js, true)
            .await
            .context("creating the JavaScript hello")?;
        node.put_confidential_javascript(
            CONFIDENTIAL_JS_HELLO,
            JS_HELLO_SOURCE,
            &engine_code,
            true,
        )
        .await?;
        // The engine is large: measure its optimised code, not Winch's.
        let waited = std::time::Instant::now();
        while node.pending_tier_ups() > 0 {
            anyhow::ensure!(
                waited.elapsed() < TIER_UP_WAIT,
                "the JavaScript engine was not tiered up within {TIER_UP_WAIT:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        progress.note(&format!(
            "js: engine tiered up after {:.1} s more",
            waited.elapsed().as_secs_f64()
        ));
        let (mut rows, mut confidential) = (Vec::new(), Vec::new());
        for &clients in &plan.clients {
            let pair = [(Mode::Plain, WASM_HELLO), (Mode::Plain, JS_HELLO)];
            let mut measured = scenarios::warm(
                &node,
                plan,
                (clients, 1),
                "hello wasm vs js",
                &pair,
                progress,
            )
            .await?
            .into_iter();
            let (Some(wasm), Some(js)) = (measured.next(), measured.next()) else {
                anyhow::bail!("the side-by-side window measured fewer than two actions");
            };
            rows.push(JsRow::new(clients, wasm.summary, js.summary));
            // The pair the wasm goal has, on JavaScript: the same
            // alternating window, clients and confidential client.
            let pair = [
                (Mode::Plain, JS_HELLO),
                (Mode::Confidential, CONFIDENTIAL_JS_HELLO),
            ];
            confidential.extend(
                scenarios::warm(&node, plan, (clients, 1), JS_ACTION, &pair, progress).await?,
            );
        }
        let confidential_ratios = model::ratios(&confidential);
        let (mut wasm_ms, mut js_ms) = (Vec::new(), Vec::new());
        for run in 0..plan.cold_runs {
            let name = format!("{WASM_HELLO}-cold-{run}");
            let started = std::time::Instant::now();
            node.put_plain(&name, &modules.hello, true).await?;
            scenarios::invoke_plain(&node.client, &name).await?;
            wasm_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let name = format!("{JS_HELLO}-cold-{run}");
            let started = std::time::Instant::now();
            node.client
                .put_action(&name, &js, true)
                .await
                .context("creating a JavaScript hello")?;
            scenarios::invoke_plain(&node.client, &name).await?;
            js_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        progress.note(&format!("js: {} cold starts of each", plan.cold_runs));
        let node_ms = node_process_calls(plan.cold_runs).await?;
        if node_ms.is_none() {
            progress.note("js: no `node` on the PATH: the Node.js process row is not measured");
        }
        let cold = JsCold {
            runs: plan.cold_runs,
            wasm_ms: Quantiles::of(wasm_ms),
            js_ms: Quantiles::of(js_ms),
            node_ms,
        };
        Ok::<_, anyhow::Error>(JsReport {
            rows,
            confidential,
            confidential_ratios,
            cold: Some(cold),
        })
    }
    .await;
    node.shutdown().await;
    measured
}

/// What the Node.js reference prints last for `{"name":"Ada"}`.
const NODE_EXPECTED: &str = r#"{"payload":"Hello, Ada!"}"#;

/// Starts `node` `runs` times, each for one call of the JS hello, and
/// times each from spawn to exit (ms); `None` when `node` is not there.
async fn node_process_calls(runs: usize) -> anyhow::Result<Option<Quantiles>> {
    tokio::task::spawn_blocking(move || {
        let dir = crate::temporary_dir()?;
        let script = dir.path().join("hello-once.js");
        let call = "\nprocess.stdout.write(JSON.stringify(main(JSON.parse(process.argv[2]))));\n";
        std::fs::write(&script, format!("{JS_HELLO_SOURCE}{call}"))
            .context("writing the Node.js reference script")?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = std::time::Instant::now();
            let output = match std::process::Command::new("node")
                .arg(&script)
                .arg(r#"{"name":"Ada"}"#)
                .output()
            {
                Ok(output) => output,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error).context("starting node"),
            };
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                // Its log line first, on stdout as Node writes it.
                output.status.success() && output.stdout.ends_with(NODE_EXPECTED.as_bytes()),
                "node answered {:?} ({}), not {NODE_EXPECTED}",
                String::from_utf8_lossy(&output.stdout),
                output.status
            );
        }
        Ok(Some(Quantiles::of(times)))
    })
    .await
    .context("the Node.js reference's thread")?
}

impl JsRow {
    /// The row of `js` against `wasm` at `clients`.
    pub fn new(clients: usize, wasm: LatencySummary, js: LatencySummary) -> Self {
        Self {
            clients,
            p50_ratio: js.p50_ms / wasm.p50_ms,
            throughput_ratio: js.throughput_rps / wasm.throughput_rps,
            wasm,
            js,
        }
    }
}
