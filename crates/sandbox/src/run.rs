//! One activation: a fresh [`Store`] with WASI preview 1 wired to in-memory
//! stdio, memory limits and an epoch deadline; instantiate the prepared
//! module, call its entry point, and turn the ending into a [`RunOutcome`].
//!
//! Nothing survives a run: the store, its instance, linear memory and WASI
//! context are dropped before the outcome is returned, and the pooling
//! allocator resets the memory slot before any other run reuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::{ActionLimits, ActivationResponse};
use tracing::instrument::WithSubscriber as _;
use wasmtime::{InstancePre, PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::PreparedModule;
use crate::capture::{Capture, LogBuffer, StdoutBuffer};
use crate::config::MAX_TABLE_ELEMENTS;
use crate::limiter::MemoryLimiter;
use crate::outcome::{Failure, interpret};
use crate::poll::{DeadlinePassed, Timing};
use crate::validate::DEFAULT_ENTRY;

/// Longest trap or host error message kept, in characters.
const MAX_ERROR_CHARS: usize = 200;

/// The limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Wall-clock time the guest may run.
    pub timeout: Duration,
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// Log bytes kept, counting each line as formatted (with its time stamp
    /// and `stderr: `); more are dropped.
    pub log_bytes: u64,
    /// Largest result (stdout), in bytes.
    pub max_result_bytes: usize,
}

impl From<&ActionLimits> for RunLimits {
    fn from(limits: &ActionLimits) -> Self {
        Self {
            timeout: Duration::from_millis(limits.timeout),
            memory_bytes: limits.memory_bytes(),
            log_bytes: limits.log_bytes(),
            max_result_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

impl From<ActionLimits> for RunLimits {
    fn from(limits: ActionLimits) -> Self {
        Self::from(&limits)
    }
}

impl Default for RunLimits {
    /// OpenWhisk's default action limits.
    fn default() -> Self {
        Self::from(ActionLimits::default())
    }
}

/// One activation's input. Its `Debug` shows sizes, not the parameters.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RunRequest {
    /// The parameters: one JSON object, given to the guest as stdin.
    pub input: Vec<u8>,
    /// What the run may use.
    pub limits: RunLimits,
    /// The export to call instead of `_start` (after `_initialize`, if the
    /// module has one).
    pub entry: Option<String>,
    /// The guest's environment variables: OpenWhisk's `__OW_*` context of
    /// the activation (see [`ActivationContext`](crate::ActivationContext)),
    /// nothing of the host's.
    pub env: Vec<(String, String)>,
}

/// How a run ended. Its `Debug` shows the status and sizes, not the
/// result or the logs (a confidential run's are sealed before they leave
/// the enclave, and a formatted outcome must not carry them out).
#[derive(Clone, PartialEq)]
pub struct RunOutcome {
    /// Status and result, as the activation record shows them.
    pub response: ActivationResponse,
    /// Log lines, formatted `<time> stderr: <line>`.
    pub logs: Vec<String>,
    /// Whether log output past the limit was dropped (the last line says so).
    pub logs_truncated: bool,
    /// Wall-clock time of the run, from building the store to the outcome.
    pub duration: Duration,
    /// Bytes the guest wrote to stdout (also those past the limit).
    pub result_bytes: u64,
    /// The largest the guest's linear memory grew, in bytes.
    pub peak_memory_bytes: u64,
    /// Why the run failed, if it did (also summarised in `response`).
    pub failure: Option<Failure>,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("input_bytes", &self.input.len())
            .field("limits", &self.limits)
            .field("entry", &self.entry)
            .field("env_vars", &self.env.len())
            .finish()
    }
}

impl std::fmt::Debug for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOutcome")
            .field("status", &self.response.status)
            .field("log_lines", &self.logs.len())
            .field("logs_truncated", &self.logs_truncated)
            .field("duration", &self.duration)
            .field("result_bytes", &self.result_bytes)
            .field("peak_memory_bytes", &self.peak_memory_bytes)
            .field("failed", &self.failure.is_some())
            .finish()
    }
}

/// The data of an activation's store.
pub(crate) struct Host {
    pub(crate) wasi: WasiP1Ctx,
    /// The deadline and monotonic clock `poll_oneoff` sleeps by.
    pub(crate) timing: Timing,
    limiter: MemoryLimiter,
}

/// How a call into the guest ended, before interpretation.
enum Ended {
    /// The entry export is missing or has the wrong type.
    MissingEntry(String),
    /// Wasmtime reported an error: a trap, an exit, a host error.
    Error(wasmtime::Error),
}

impl From<wasmtime::Error> for Ended {
    fn from(error: wasmtime::Error) -> Self {
        Self::Error(error)
    }
}

impl RunOutcome {
    /// The outcome of a run that could not end by itself (`message` says
    /// why): an internal error, no logs.
    pub(crate) fn internal(message: &str) -> Self {
        let failure = Failure::Internal(message.to_owned());
        Self {
            response: interpret(b"", Some(&failure)),
            logs: Vec::new(),
            logs_truncated: false,
            duration: Duration::ZERO,
            result_bytes: 0,
            peak_memory_bytes: 0,
            failure: Some(failure),
        }
    }
}

/// Runs `module` once with `request`, blocking; see the module docs.
///
/// The guest runs with tracing off, whatever the host's filter: the
/// WASI glue traces every host call with its arguments and result (the
/// length of each write to stdout and stderr, the exit code), which are
/// the sealed answer's to tell, not the provider's log.
pub(crate) fn run(
    epoch_tick: Duration,
    module: &PreparedModule,
    request: RunRequest,
) -> RunOutcome {
    let code = module.code();
    let (mut activation, entry) =
        Activation::start(&code.pre, request, Interruption::Trap { epoch_tick });
    let ended = tracing::dispatcher::with_default(&tracing::Dispatch::none(), || {
        call(&mut activation.store, &code.pre, &entry)
    });
    activation.finish(ended)
}

/// Runs `module` once with `request` on the async runtime polling it; see
/// [`Sandbox::run_async`](crate::Sandbox::run_async). With tracing off, as
/// [`run`].
pub(crate) async fn run_async(
    module: &PreparedModule,
    request: RunRequest,
    signals: Arc<RunSignals>,
) -> RunOutcome {
    let code = module.code();
    let (mut activation, entry) =
        Activation::start(&code.pre_async, request, Interruption::Yield(signals));
    let ended = call_async(&mut activation.store, &code.pre_async, &entry)
        .with_subscriber(tracing::Dispatch::none())
        .await;
    activation.finish(ended)
}

/// How a running guest is stopped at its deadline.
#[derive(Debug, Clone)]
enum Interruption {
    /// A trap once the ticks covering the time limit have passed: a
    /// blocking run.
    Trap { epoch_tick: Duration },
    /// A yield to the async runtime at every tick, and a trap at the first
    /// tick past the deadline or once cancelled: a run on the async
    /// runtime, which the signals tell how long it has been computing.
    Yield(Arc<RunSignals>),
}

/// What a run on the async runtime tells its poller, and hears from it.
#[derive(Debug, Default)]
pub(crate) struct RunSignals {
    /// Epoch ticks the guest has reached while computing.
    ticks: AtomicU32,
    /// Set when nobody waits for the run any more: it stops at its next
    /// tick.
    cancelled: AtomicBool,
}

impl RunSignals {
    /// Whether the guest has computed for at least a whole tick.
    pub(crate) fn computed_a_tick(&self) -> bool {
        self.ticks.load(Ordering::Relaxed) >= 2
    }

    /// Stops the run at its next tick.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// One run under way: its store and what reads its ending.
struct Activation {
    started: Instant,
    limits: RunLimits,
    stdout: Capture<StdoutBuffer>,
    stderr: Capture<LogBuffer>,
    store: Store<Host>,
}

impl Activation {
    /// A fresh store for `request` (see [`new_store`]), and the export to
    /// call.
    fn start(
        pre: &InstancePre<Host>,
        request: RunRequest,
        interruption: Interruption,
    ) -> (Self, String) {
        let started = Instant::now();
        let RunRequest {
            input,
            limits,
            entry,
            env,
        } = request;
        let stderr = Capture::new(LogBuffer::new(limits.log_bytes));
        let stdout = Capture::new(StdoutBuffer::new(limits.max_result_bytes, stderr.clone()));
        let store = new_store(
            pre,
            (input, &env),
            &limits,
            (stdout.clone(), stderr.clone()),
            started,
            interruption,
        );
        let activation = Self {
            started,
            limits,
            stdout,
            stderr,
            store,
        };
        (
            activation,
            entry.unwrap_or_else(|| DEFAULT_ENTRY.to_owned()),
        )
    }

    /// The outcome of the run that ended with `ended`.
    fn finish(self, ended: Result<(), Ended>) -> RunOutcome {
        let Self {
            started,
            limits,
            stdout,
            stderr,
            store,
        } = self;
        let memory_denied = store.data().limiter.denied();
        let peak_memory_bytes = store.data().limiter.peak_memory_bytes() as u64;
        // Release the instance slot before the bookkeeping below.
        drop(store);

        let mut failure = ended
            .err()
            .and_then(|ended| classify(ended, memory_denied, &limits));
        let (result, result_bytes) = {
            let mut stdout = stdout.lock();
            let result = stdout.finish();
            if failure.is_none() && result.size > limits.max_result_bytes as u64 {
                failure = Some(Failure::ResultTooLarge {
                    size: result.size,
                    max: limits.max_result_bytes,
                });
            }
            (result.kept, stdout.written())
        };
        let response = interpret(&result, failure.as_ref());
        let logs = stderr.lock().finish_at(SystemTime::now());
        RunOutcome {
            response,
            logs: logs.lines,
            logs_truncated: logs.truncated,
            duration: started.elapsed(),
            result_bytes,
            peak_memory_bytes,
            failure,
        }
    }
}

/// A fresh store for one activation of `module`: WASI preview 1 with
/// `input` on stdin and the captures on stdout and stderr, the memory
/// limiter, `env` as its environment, and an epoch deadline
/// `limits.timeout` from `started`, enforced as `interruption` says.
fn new_store(
    pre: &InstancePre<Host>,
    (input, env): (Vec<u8>, &[(String, String)]),
    limits: &RunLimits,
    (stdout, stderr): (Capture<StdoutBuffer>, Capture<LogBuffer>),
    started: Instant,
    interruption: Interruption,
) -> Store<Host> {
    let timing = Timing::new(started, limits.timeout);
    let wasi = WasiCtxBuilder::new()
        .stdin(MemoryInputPipe::new(input))
        .envs(env)
        .stdout(stdout)
        .stderr(stderr)
        .monotonic_clock(timing.clock())
        .allow_tcp(false)
        .allow_udp(false)
        .build_p1();
    let host = Host {
        wasi,
        timing,
        limiter: MemoryLimiter::new(limits.memory_bytes, MAX_TABLE_ELEMENTS),
    };
    let mut store = Store::new(pre.module().engine(), host);
    store.limiter(|host| &mut host.limiter);
    match interruption {
        Interruption::Trap { epoch_tick } => {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(deadline_ticks(limits.timeout, epoch_tick));
        }
        Interruption::Yield(signals) => {
            let deadline = timing.deadline;
            store.epoch_deadline_callback(move |_| {
                if signals.cancelled.load(Ordering::Relaxed)
                    || deadline.is_some_and(|deadline| deadline <= Instant::now())
                {
                    return Ok(UpdateDeadline::Interrupt);
                }
                signals.ticks.fetch_add(1, Ordering::Relaxed);
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            });
            store.set_epoch_deadline(1);
        }
    }
    store
}

/// A warm instance kept alive: its own store (WASI context with an empty
/// stdin, capped captures, memory limiter), instantiated from a prepared
/// module, its linear memory initialised, and nothing run yet unless
/// [`run_start`](Self::run_start) is called. It holds its pooling slot
/// until dropped.
///
/// It exists to measure density (how many warm instances fit in a given
/// memory, as `clemmys-bench` does); activations never use it: each one
/// gets a fresh instance that [`Sandbox::run`](crate::Sandbox::run) drops
/// before returning.
pub struct IdleInstance {
    store: Store<Host>,
    instance: wasmtime::Instance,
    epoch_tick: Duration,
    limits: RunLimits,
}

impl IdleInstance {
    /// Calls the module's `_start` once, as an activation would (touching
    /// its stack and heap pages), and keeps the instance alive afterwards.
    /// A guest that exits with 0 succeeded.
    pub fn run_start(&mut self) -> Result<(), Failure> {
        let started = Instant::now();
        // The guest's clock keeps its origin; the deadline counts from now.
        self.store.data_mut().timing.deadline = started.checked_add(self.limits.timeout);
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.timeout, self.epoch_tick));
        let outcome = self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, DEFAULT_ENTRY)
            .map_err(|_| Ended::MissingEntry(DEFAULT_ENTRY.to_owned()))
            .and_then(|start| start.call(&mut self.store, ()).map_err(Ended::from));
        let denied = self.store.data().limiter.denied();
        match outcome {
            Ok(()) => Ok(()),
            Err(ended) => classify(ended, denied, &self.limits).map_or(Ok(()), Err),
        }
    }
}

impl std::fmt::Debug for IdleInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleInstance").finish_non_exhaustive()
    }
}

/// Instantiates `module` in a store of its own with the default limits and
/// keeps it; see [`IdleInstance`].
pub(crate) fn instantiate_idle(
    epoch_tick: Duration,
    module: &PreparedModule,
) -> Result<IdleInstance, Failure> {
    let limits = RunLimits::default();
    let log = Capture::new(LogBuffer::new(limits.log_bytes));
    let captures = (
        Capture::new(StdoutBuffer::new(limits.max_result_bytes, log.clone())),
        log,
    );
    let code = module.code();
    let mut store = new_store(
        &code.pre,
        (Vec::new(), &[]),
        &limits,
        captures,
        Instant::now(),
        Interruption::Trap { epoch_tick },
    );
    match code.pre.instantiate(&mut store) {
        Ok(instance) => Ok(IdleInstance {
            store,
            instance,
            epoch_tick,
            limits,
        }),
        Err(error) => {
            let denied = store.data().limiter.denied();
            Err(classify(Ended::Error(error), denied, &limits)
                .unwrap_or_else(|| Failure::Internal("instantiation ended early".into())))
        }
    }
}

/// Instantiates the module and calls `entry`, blocking.
fn call(store: &mut Store<Host>, pre: &InstancePre<Host>, entry: &str) -> Result<(), Ended> {
    let instance = pre.instantiate(&mut *store)?;
    if entry != DEFAULT_ENTRY
        && let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize")
    {
        initialize.call(&mut *store, ())?;
    }
    let main = instance
        .get_typed_func::<(), ()>(&mut *store, entry)
        .map_err(|_| Ended::MissingEntry(entry.to_owned()))?;
    main.call(&mut *store, ())?;
    Ok(())
}

/// Instantiates the module and calls `entry`, on the async runtime (see
/// [`call`]).
async fn call_async(
    store: &mut Store<Host>,
    pre: &InstancePre<Host>,
    entry: &str,
) -> Result<(), Ended> {
    let instance = pre.instantiate_async(&mut *store).await?;
    if entry != DEFAULT_ENTRY
        && let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize")
    {
        initialize.call_async(&mut *store, ()).await?;
    }
    let main = instance
        .get_typed_func::<(), ()>(&mut *store, entry)
        .map_err(|_| Ended::MissingEntry(entry.to_owned()))?;
    main.call_async(&mut *store, ()).await?;
    Ok(())
}

/// What an error ending a run means; `None` for a successful `exit(0)`.
fn classify(ended: Ended, memory_denied: bool, limits: &RunLimits) -> Option<Failure> {
    let error = match ended {
        Ended::MissingEntry(entry) => return Some(Failure::MissingEntry(entry)),
        Ended::Error(error) => error,
    };
    let exit = error.downcast_ref::<I32Exit>().map(|exit| exit.0);
    if exit == Some(0) {
        return None;
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
        || error.downcast_ref::<DeadlinePassed>().is_some()
    {
        return Some(Failure::Timeout {
            limit: limits.timeout,
        });
    }
    if let Some(limit) = error.downcast_ref::<PoolConcurrencyLimitError>() {
        return Some(Failure::Internal(format!(
            "The sandbox has no room for another activation: {limit}."
        )));
    }
    if memory_denied {
        return Some(Failure::MemoryExhausted);
    }
    if let Some(code) = exit {
        return Some(Failure::Exit(code));
    }
    let message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => one_line(&format!("{error:#}")),
    };
    Some(Failure::Trap(message))
}

/// The first line of `text`, at most [`MAX_ERROR_CHARS`] characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(MAX_ERROR_CHARS).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// Epoch ticks covering `timeout`, plus one for the tick already under way.
fn deadline_ticks(timeout: Duration, tick: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(tick.as_nanos().max(1)) + 1;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_request_or_outcome_shows_sizes_not_contents() {
        let secret = "s3cr3t-in-the-run";
        let request = RunRequest {
            input: format!(r#"{{"k":"{secret}"}}"#).into_bytes(),
            env: vec![("__OW_ACTION_NAME".into(), secret.into())],
            ..RunRequest::default()
        };
        let outcome = RunOutcome {
            response: ActivationResponse::success(serde_json::json!({ "k": secret })),
            logs: vec![format!("2026-12-07T00:00:00Z stderr: {secret}")],
            logs_truncated: false,
            duration: Duration::ZERO,
            result_bytes: 30,
            peak_memory_bytes: 0,
            failure: None,
        };
        for formatted in [format!("{request:?}"), format!("{outcome:?}")] {
            assert!(!formatted.contains(secret), "{formatted}");
        }
        assert!(format!("{outcome:?}").contains("result_bytes: 30"));
    }

    #[test]
    fn deadline_covers_the_timeout_in_whole_ticks() {
        let tick = Duration::from_millis(5);
        assert_eq!(deadline_ticks(Duration::from_millis(200), tick), 41);
        assert_eq!(deadline_ticks(Duration::from_millis(201), tick), 42);
        assert_eq!(deadline_ticks(Duration::ZERO, tick), 1);
        assert_eq!(deadline_ticks(Duration::MAX, Duration::ZERO), u64::MAX);
    }

    #[test]
    fn limits_follow_the_action_limits() {
        let limits = RunLimits::from(ActionLimits {
            timeout: 200,
            memory: 128,
            logs: 1,
            concurrency: 1,
        });
        assert_eq!(limits.timeout, Duration::from_millis(200));
        assert_eq!(limits.memory_bytes, 128 << 20);
        assert_eq!(limits.log_bytes, 1 << 20);
        assert_eq!(limits.max_result_bytes, 1 << 20);
    }

    #[test]
    fn exit_zero_is_success_and_other_codes_are_failures() {
        let limits = RunLimits::default();
        let exit = |code| Ended::Error(wasmtime::Error::new(I32Exit(code)));
        assert_eq!(classify(exit(0), false, &limits), None);
        assert_eq!(classify(exit(0), true, &limits), None);
        assert_eq!(classify(exit(2), false, &limits), Some(Failure::Exit(2)));
        assert_eq!(
            classify(exit(2), true, &limits),
            Some(Failure::MemoryExhausted)
        );
    }

    #[test]
    fn interrupts_are_timeouts_and_other_traps_keep_their_message() {
        let limits = RunLimits {
            timeout: Duration::from_millis(300),
            ..RunLimits::default()
        };
        let trap = |trap: Trap| Ended::Error(wasmtime::Error::new(trap));
        assert_eq!(
            classify(trap(Trap::Interrupt), true, &limits),
            Some(Failure::Timeout {
                limit: Duration::from_millis(300)
            })
        );
        assert_eq!(
            classify(Ended::Error(DeadlinePassed.into()), false, &limits),
            Some(Failure::Timeout {
                limit: Duration::from_millis(300)
            }),
            "a sleep that reached the deadline"
        );
        assert_eq!(
            classify(trap(Trap::UnreachableCodeReached), false, &limits),
            Some(Failure::Trap(
                "wasm trap: wasm `unreachable` instruction executed".into()
            ))
        );
        assert_eq!(
            classify(trap(Trap::UnreachableCodeReached), true, &limits),
            Some(Failure::MemoryExhausted)
        );
    }

    #[test]
    fn idle_instances_hold_their_slot_until_dropped() {
        let wat = r#"(module
            (memory (export "memory") 1)
            (func (export "_start")))"#;
        let code = wat::parse_str(wat).expect("wat");
        let sandbox = crate::Sandbox::new(&crate::SandboxConfig::with_slots(1)).expect("sandbox");
        let prepared = sandbox
            .prepare(crate::CodeDigest::of(&code), &code)
            .expect("prepare");
        // Slots are the pool's: a tiered module's Winch code, which runs
        // only until the optimised code is in, is allocated on demand.
        assert!(sandbox.wait_for_tier_ups(Duration::from_secs(30)));
        let mut first = sandbox
            .instantiate_idle(&prepared.module)
            .expect("one slot");
        first.run_start().expect("_start runs");
        first
            .run_start()
            .expect("and again: the instance stays alive");
        let refused = sandbox
            .instantiate_idle(&prepared.module)
            .expect_err("the only slot is held");
        assert!(matches!(refused, Failure::Internal(_)), "{refused:?}");
        drop(first);
        sandbox
            .instantiate_idle(&prepared.module)
            .expect("the slot is free again");
    }

    #[test]
    fn error_messages_are_cut_to_one_short_line() {
        assert_eq!(one_line("first\nsecond"), "first");
        let long = one_line(&"x".repeat(500));
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS + 1);
    }
}
