//! The mixed load: what each client does, what counts as the expected
//! outcome of each operation, and the per-window tallies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clemmys_client::confidential::{Confidential, ConfidentialInvoked};
use clemmys_client::{Client, ClientError, InvokeOptions, Invoked};
use clemmys_whisk::action::{ActionPut, ExecPut};
use clemmys_whisk::limits::ActionLimitsPut;
use clemmys_whisk::{ActivationId, ActivationStatus};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// One thing a client does, in the proportions of [`WEIGHTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Blocking invoke of plain `noop`: 200.
    PlainBlocking,
    /// Non-blocking invoke of plain `hello`: 202, and a record later.
    PlainNonBlocking,
    /// Blocking invoke of confidential `secret-noop`, opened and verified.
    Confidential,
    /// Blocking invoke of the plain sequence `pipe` (hello, noop): 200.
    Sequence,
    /// `trap`: 502, developer error.
    Trap,
    /// `endless` (an infinite loop) hits its 200 ms limit: 502.
    EndlessLoop,
    /// `hog` runs out of its 128 MB (the smallest limit): 502.
    MemoryHog,
    /// `flood` writes 2 MiB of log lines past its 1 MB log limit: 200,
    /// logs cut.
    LogFlood,
    /// Creates a fresh action, invokes it once and deletes it.
    CreateInvokeDelete,
}

/// How often each operation comes, out of the sum of the weights: about
/// one in nine operations is a misbehaving function.
const WEIGHTS: &[(Operation, u32)] = &[
    (Operation::PlainBlocking, 12),
    (Operation::Confidential, 8),
    (Operation::PlainNonBlocking, 6),
    (Operation::Sequence, 4),
    (Operation::CreateInvokeDelete, 1),
    (Operation::Trap, 1),
    (Operation::EndlessLoop, 1),
    (Operation::MemoryHog, 1),
    (Operation::LogFlood, 1),
];

/// One round of [`WEIGHTS`], interleaved: the `k`-th of an operation's
/// `w` turns sits at `(k + phase) / w` of the round, its phase set by its
/// place in the table, so that every operation is spread evenly and no
/// two rare ones come together. Each client goes round it, starting at a
/// different place.
pub fn mix() -> Vec<Operation> {
    let kinds = WEIGHTS.len() as f64;
    let mut turns: Vec<(f64, Operation)> = WEIGHTS
        .iter()
        .enumerate()
        .flat_map(|(place, &(operation, weight))| {
            let phase = (place as f64 + 0.5) / kinds;
            (0..weight).map(move |k| ((f64::from(k) + phase) / f64::from(weight), operation))
        })
        .collect();
    turns.sort_by(|a, b| a.0.total_cmp(&b.0));
    turns.into_iter().map(|(_, operation)| operation).collect()
}

/// The example modules the load deploys.
pub struct Modules {
    pub noop: Vec<u8>,
    pub hello: Vec<u8>,
    pub trap: Vec<u8>,
    pub endless: Vec<u8>,
    pub hog: Vec<u8>,
    pub flood: Vec<u8>,
}

impl Modules {
    /// Reads them from `dir` (scripts/build-examples.sh puts them there).
    pub fn load(dir: &std::path::Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(format!("{name}.wasm"));
            std::fs::read(&path).map_err(|error| {
                anyhow::anyhow!(
                    "reading {}: {error} (run scripts/build-examples.sh first)",
                    path.display()
                )
            })
        };
        Ok(Self {
            noop: read("noop")?,
            hello: read("hello")?,
            trap: read("trap")?,
            endless: read("infinite-loop")?,
            hog: read("memory-hog")?,
            flood: read("huge-log")?,
        })
    }
}

/// `wasm` as a plain action with `limits`.
pub fn wasm_action(wasm: &[u8], limits: Option<ActionLimitsPut>) -> ActionPut {
    ActionPut {
        exec: Some(ExecPut::wasm(wasm, None)),
        limits,
        ..ActionPut::default()
    }
}

/// Deploys every action the mix uses.
pub async fn deploy(
    client: &Client,
    owner: &Confidential,
    modules: &Modules,
) -> anyhow::Result<()> {
    let limited = |timeout, memory, logs| ActionLimitsPut {
        timeout,
        memory,
        logs,
        concurrency: None,
    };
    client
        .put_action("noop", &wasm_action(&modules.noop, None), true)
        .await?;
    client
        .put_action("hello", &wasm_action(&modules.hello, None), true)
        .await?;
    client
        .put_action("trap", &wasm_action(&modules.trap, None), true)
        .await?;
    let endless = wasm_action(&modules.endless, Some(limited(Some(200), None, None)));
    client.put_action("endless", &endless, true).await?;
    let hog = wasm_action(&modules.hog, Some(limited(None, Some(128), None)));
    client.put_action("hog", &hog, true).await?;
    let flood = wasm_action(&modules.flood, Some(limited(None, None, Some(1))));
    client.put_action("flood", &flood, true).await?;
    let pipe = ActionPut {
        exec: Some(ExecPut::sequence(vec!["/_/hello".into(), "/_/noop".into()])),
        ..ActionPut::default()
    };
    client.put_action("pipe", &pipe, true).await?;
    owner
        .deploy(
            "secret-noop",
            &modules.noop,
            ActionPut::default(),
            true,
            &clemmys_client::confidential::DeployOptions::default(),
        )
        .await?;
    Ok(())
}

/// How one operation ended.
pub enum Outcome {
    /// As the operation expects; a 202 carries the id to check later.
    Expected { acknowledged: Option<ActivationId> },
    /// Refused or unreachable while the node was being restarted.
    Unavailable,
    /// Anything else: a failure of the soak.
    Unexpected(String),
}

/// What the clients share: whether the node is away, the tallies of the
/// current window and every acknowledged activation.
pub struct Shared {
    /// Set while the node is killed and starting again (and for a grace
    /// period after): errors then count as unavailable, not unexpected.
    pub restarting: AtomicBool,
    pub stop: AtomicBool,
    pub window: Mutex<Window>,
    pub acknowledged: Mutex<Vec<ActivationId>>,
    /// Names of the create-invoke-delete operation's actions.
    pub churn: AtomicU64,
    /// The module those actions run (`noop`).
    pub churn_module: Vec<u8>,
}

impl Shared {
    pub fn new(churn_module: Vec<u8>) -> Self {
        Self {
            restarting: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            window: Mutex::new(Window::new()),
            acknowledged: Mutex::new(Vec::new()),
            churn: AtomicU64::new(0),
            churn_module,
        }
    }

    /// The window so far, replaced by an empty one.
    pub fn take_window(&self) -> Window {
        std::mem::replace(&mut *lock(&self.window), Window::new())
    }
}

/// The tallies of one sampling window.
pub struct Window {
    pub latency_us: Histogram<u64>,
    pub expected: u64,
    pub unavailable: u64,
    pub unexpected: u64,
    /// The first few unexpected outcomes, to show.
    pub examples: Vec<String>,
}

impl Window {
    fn new() -> Self {
        Self {
            // 1 µs to 10 min, 3 significant digits: always constructible.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            expected: 0,
            unavailable: 0,
            unexpected: 0,
            examples: Vec::new(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One client: goes round `mix` from `start` until told to stop, at most
/// one operation per `pace`.
pub async fn client_loop(
    client: Client,
    owner: Arc<Confidential>,
    shared: Arc<Shared>,
    mix: Arc<[Operation]>,
    start: usize,
    pace: Option<Duration>,
) {
    let mut ticker = pace.map(|pace| {
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut n = start;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let Some(&operation) = mix.get(n % mix.len().max(1)) else {
            return;
        };
        n = n.wrapping_add(1);
        let began = Instant::now();
        let outcome = match run(&client, &owner, &shared, operation).await {
            Outcome::Unexpected(_) if shared.restarting.load(Ordering::SeqCst) => {
                Outcome::Unavailable
            }
            outcome => outcome,
        };
        let elapsed = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        {
            let mut window = lock(&shared.window);
            match outcome {
                Outcome::Expected { acknowledged } => {
                    window.expected += 1;
                    let _ = window.latency_us.record(elapsed.max(1));
                    if let Some(id) = acknowledged {
                        lock(&shared.acknowledged).push(id);
                    }
                }
                Outcome::Unavailable => window.unavailable += 1,
                Outcome::Unexpected(what) => {
                    window.unexpected += 1;
                    if window.examples.len() < 5 {
                        window.examples.push(format!("{operation:?}: {what}"));
                    }
                }
            }
        }
        if shared.restarting.load(Ordering::SeqCst) {
            // Do not spin against a node that is not there.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn run(
    client: &Client,
    owner: &Confidential,
    shared: &Shared,
    operation: Operation,
) -> Outcome {
    let plain = |name: &'static str, params: Value, expect: u16| async move {
        let invoked = client.invoke(name, params, InvokeOptions::blocking()).await;
        expect_status(invoked, expect)
    };
    match operation {
        Operation::PlainBlocking => plain("noop", Value::Null, 200).await,
        Operation::Sequence => plain("pipe", json!({"name": "soak"}), 200).await,
        Operation::Trap => plain("trap", Value::Null, 502).await,
        Operation::EndlessLoop => plain("endless", Value::Null, 502).await,
        Operation::MemoryHog => plain("hog", Value::Null, 502).await,
        Operation::LogFlood => plain("flood", json!({"mb": 2}), 200).await,
        Operation::PlainNonBlocking => {
            match client
                .invoke("hello", Value::Null, InvokeOptions::default())
                .await
            {
                Ok(Invoked::Accepted { activation_id }) => Outcome::Expected {
                    acknowledged: Some(activation_id),
                },
                Ok(Invoked::Completed { status, .. }) => {
                    Outcome::Unexpected(format!("a non-blocking invoke completed with {status}"))
                }
                Err(error) => unexpected(&error),
            }
        }
        Operation::Confidential => {
            match owner
                .invoke("secret-noop", &json!({}), InvokeOptions::blocking())
                .await
            {
                Ok(ConfidentialInvoked::Completed(opened))
                    if opened.status == ActivationStatus::Success =>
                {
                    Outcome::Expected { acknowledged: None }
                }
                Ok(ConfidentialInvoked::Completed(opened)) => {
                    Outcome::Unexpected(format!("confidential invoke ended {:?}", opened.status))
                }
                Ok(ConfidentialInvoked::Accepted { .. }) => {
                    Outcome::Unexpected("confidential invoke outlasted the blocking wait".into())
                }
                Err(error) => Outcome::Unexpected(error.to_string()),
            }
        }
        Operation::CreateInvokeDelete => {
            let n = shared.churn.fetch_add(1, Ordering::Relaxed);
            let name = format!("churn-{n}");
            let noop = wasm_action(&shared.churn_module, None);
            if let Err(error) = client.put_action(&name, &noop, false).await {
                return unexpected(&error);
            }
            let invoked = client
                .invoke(&name, Value::Null, InvokeOptions::blocking())
                .await;
            let outcome = expect_status(invoked, 200);
            if let Err(error) = client.delete_action(&name).await {
                return unexpected(&error);
            }
            outcome
        }
    }
}

fn expect_status(invoked: Result<Invoked, ClientError>, expect: u16) -> Outcome {
    match invoked {
        Ok(Invoked::Completed { status, .. }) if status == expect => {
            Outcome::Expected { acknowledged: None }
        }
        Ok(Invoked::Completed { status, body, .. }) => {
            let mut body = body.to_string();
            body.truncate(200);
            Outcome::Unexpected(format!("answered {status}, expected {expect}: {body}"))
        }
        Ok(Invoked::Accepted { activation_id }) => {
            Outcome::Unexpected(format!("outlasted the blocking wait ({activation_id})"))
        }
        Err(error) => unexpected(&error),
    }
}

fn unexpected(error: &ClientError) -> Outcome {
    Outcome::Unexpected(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_each_operation_as_often_as_its_weight_and_no_bursts() {
        let mix = mix();
        for (operation, weight) in WEIGHTS {
            let count = mix.iter().filter(|o| *o == operation).count();
            assert_eq!(count, *weight as usize, "{operation:?}");
        }
        // The rare operations are spread out: never two in a row.
        let rare = |o: &Operation| WEIGHTS.iter().any(|(r, w)| r == o && *w == 1);
        assert!(
            !mix.windows(2).any(|pair| rare(&pair[0]) && rare(&pair[1])),
            "{mix:?}"
        );
    }
}
