//! [`Sandbox`]: the process's wasm engines (one, or a baseline and an
//! optimising one for a tiered sandbox), their WASI linkers, the compiled
//! module cache, and the threads that drive timeouts and tier-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, Linker, Module};

use crate::cache::{Linked, ModuleCache, Tier};
use crate::run::{self, Host, RunSignals};
use crate::tier::TierUp;
use crate::validate::check_module;
use crate::{
    CodeDigest, Compiler, Failure, InvalidModule, Prepared, PreparedModule, RunOutcome, RunRequest,
    SandboxConfig, SandboxError, poll,
};

/// Runs untrusted wasm actions with limits. Create one per process and share
/// it (`Sync`); see the crate docs.
pub struct Sandbox {
    main: Backend,
    /// A tiered sandbox's Winch engine, and the thread that replaces its code.
    baseline: Option<(Backend, TierUp)>,
    compiler: Compiler,
    cache: ModuleCache,
    epoch_tick: Duration,
    _ticker: EpochTicker,
}

/// An engine and its WASI linkers: one for blocking runs, one for runs on
/// the async runtime.
#[derive(Clone)]
pub(crate) struct Backend {
    engine: Engine,
    linker: Linker<Host>,
    linker_async: Linker<Host>,
}

impl Backend {
    fn new(config: &Config) -> Result<Self, SandboxError> {
        let failed = |error: wasmtime::Error| SandboxError::Engine(format!("{error:#}"));
        let engine = Engine::new(config).map_err(failed)?;
        let linker = build_linker(&engine).map_err(failed)?;
        let linker_async = build_linker_async(&engine).map_err(failed)?;
        Ok(Self {
            engine,
            linker,
            linker_async,
        })
    }

    /// Compiles `code` and links it against WASI, for both kinds of run
    /// (linking checks the imports; it compiles nothing more).
    pub(crate) fn compile(&self, code: &[u8]) -> Result<Linked, SandboxError> {
        let module = Module::new(&self.engine, code)
            .map_err(|error| SandboxError::Compile(format!("{error:#}")))?;
        let link = |linker: &Linker<Host>| {
            linker
                .instantiate_pre(&module)
                .map_err(|error| SandboxError::Link(format!("{error:#}")))
        };
        Ok(Linked {
            pre: link(&self.linker)?,
            pre_async: link(&self.linker_async)?,
        })
    }
}

impl Sandbox {
    /// Creates the engines, pooling allocator, WASI linkers, and the epoch
    /// and tier-up threads.
    pub fn new(config: &SandboxConfig) -> Result<Self, SandboxError> {
        let main = Backend::new(&config.main_engine())?;
        let baseline = match config.baseline_engine() {
            Some(baseline) => {
                let tier_up = TierUp::start(main.clone()).map_err(|error| {
                    SandboxError::Engine(format!("cannot start the tier-up thread: {error}"))
                })?;
                Some((Backend::new(&baseline)?, tier_up))
            }
            None => None,
        };
        let epoch_tick = config.epoch_tick.max(Duration::from_micros(100));
        let engines = std::iter::once(&main)
            .chain(baseline.as_ref().map(|(backend, _)| backend))
            .map(|backend| backend.engine.clone())
            .collect();
        let ticker = EpochTicker::start(engines, epoch_tick).map_err(|error| {
            SandboxError::Engine(format!("cannot start the epoch thread: {error}"))
        })?;
        Ok(Self {
            main,
            baseline,
            compiler: config.compiler,
            cache: ModuleCache::new(config.module_cache_capacity),
            epoch_tick,
            _ticker: ticker,
        })
    }

    /// Checks at deploy time, without compiling, that `code` is a WASI
    /// preview-1 command this sandbox can run: WebAssembly, valid, importing
    /// only WASI and exporting `_start`.
    pub fn validate(&self, code: &[u8]) -> Result<(), InvalidModule> {
        check_module(&self.main.engine, code, None)
    }

    /// Like [`validate`](Self::validate), for an action that names the
    /// export to call (`exec.main`) instead of `_start`.
    pub fn validate_entry(&self, code: &[u8], entry: Option<&str>) -> Result<(), InvalidModule> {
        check_module(&self.main.engine, code, entry)
    }

    /// The prepared module for `digest`: from the cache, or compiled from
    /// `code` (which must hash to `digest`), linked against WASI and cached.
    pub fn prepare(&self, digest: CodeDigest, code: &[u8]) -> Result<Prepared, SandboxError> {
        self.cache.get_or_compile(digest, || {
            let actual = CodeDigest::of(code);
            if actual != digest {
                return Err(SandboxError::DigestMismatch {
                    expected: digest,
                    actual,
                });
            }
            self.compile(digest, code, Visibility::Shared)
        })
    }

    /// Compiles `code` without the shared cache, for a caller that keeps the
    /// module itself: the enclave runtime, whose compiled confidential code
    /// must not be found by digest by anyone else.
    /// Nothing about that code (its digest, a compiler's message) is
    /// logged.
    pub fn compile_private(&self, code: &[u8]) -> Result<Arc<PreparedModule>, SandboxError> {
        self.compile(CodeDigest::of(code), code, Visibility::Private)
    }

    /// Compiles with Winch and queues the optimising compile (tiered), or
    /// compiles with the main engine.
    fn compile(
        &self,
        digest: CodeDigest,
        code: &[u8],
        visibility: Visibility,
    ) -> Result<Arc<PreparedModule>, SandboxError> {
        let private = visibility == Visibility::Private;
        if !code.starts_with(b"\0asm") {
            return Err(InvalidModule::NotWasm.into());
        }
        let started = Instant::now();
        if let Some((baseline, tier_up)) = &self.baseline {
            match baseline.compile(code) {
                Ok(linked) => {
                    let compile_time = started.elapsed();
                    // Which compiler took a private module is a property of
                    // its code: the same line as Cranelift's below.
                    if private {
                        tracing::debug!(?compile_time, "compiled a private module");
                    } else {
                        tracing::debug!(%digest, ?compile_time, "compiled action module (Winch)");
                    }
                    let module = Arc::new(PreparedModule::new(
                        digest,
                        compile_time,
                        linked,
                        Tier::Baseline,
                    ));
                    tier_up.queue(&module, code.to_vec(), visibility);
                    return Ok(module);
                }
                // Validated code Winch does not support (tail calls, say):
                // Cranelift compiles it now.
                // (Its message names the code's imports and offsets.)
                Err(_) if private => {}
                Err(error) => {
                    tracing::debug!(%digest, %error, "Winch cannot compile this module");
                }
            }
        }
        let linked = self.main.compile(code)?;
        let compile_time = started.elapsed();
        if private {
            tracing::debug!(?compile_time, "compiled a private module");
        } else {
            tracing::debug!(%digest, ?compile_time, "compiled action module");
        }
        Ok(Arc::new(PreparedModule::new(
            digest,
            compile_time,
            linked,
            Tier::Final,
        )))
    }

    /// Which compiler this sandbox uses.
    pub fn compiler(&self) -> Compiler {
        self.compiler
    }

    /// Modules of a tiered sandbox waiting for, or in, their optimising
    /// compile.
    pub fn pending_tier_ups(&self) -> usize {
        self.baseline
            .as_ref()
            .map_or(0, |(_, tier_up)| tier_up.pending())
    }

    /// Waits, at most `timeout`, until every module compiled so far runs
    /// its final code; whether all do. Benchmarks call it to measure the
    /// steady state, and tests to run optimised code.
    pub fn wait_for_tier_ups(&self, timeout: Duration) -> bool {
        self.baseline
            .as_ref()
            .is_none_or(|(_, tier_up)| tier_up.wait(timeout))
    }

    /// The cached prepared module for `digest`, if any.
    pub fn cached(&self, digest: &CodeDigest) -> Option<Arc<PreparedModule>> {
        self.cache.get(digest)
    }

    /// Drops `digest`'s module from the cache; returns whether it was there.
    pub fn evict(&self, digest: &CodeDigest) -> bool {
        self.cache.remove(digest)
    }

    /// How many modules are cached.
    pub fn cached_modules(&self) -> usize {
        self.cache.len()
    }

    /// Runs one activation of `module` (blocking; call it from a blocking
    /// thread). Every failure of the guest is in the outcome's response.
    pub fn run(&self, module: &PreparedModule, request: RunRequest) -> RunOutcome {
        run::run(self.epoch_tick, module, request)
    }

    /// Runs one activation of `module` on the async runtime that polls the
    /// returned future, with the same outcome as [`run`](Self::run): no
    /// blocking thread, and WASI's functions called without a `block_on`
    /// each. The guest runs inside `poll`, giving the thread back at every
    /// epoch tick ([`SandboxConfig::epoch_tick`]) and while it sleeps. A
    /// guest still computing after a whole tick is moved to a blocking
    /// thread for the rest of its run, so that long computations leave the
    /// runtime's workers to short requests. Needs a Tokio runtime with its
    /// timer (a sleeping guest waits on it).
    ///
    /// Dropping the future stops the guest (on a blocking thread, at its
    /// next tick); an activation that must run to its end is polled to its
    /// end.
    ///
    /// [`SandboxConfig::epoch_tick`]: crate::SandboxConfig::epoch_tick
    pub async fn run_async(&self, module: &Arc<PreparedModule>, request: RunRequest) -> RunOutcome {
        let signals = Arc::new(RunSignals::default());
        let mut running = Box::pin({
            let (module, signals) = (Arc::clone(module), Arc::clone(&signals));
            async move { run::run_async(&module, request, signals).await }
        });
        let inline = std::future::poll_fn(|cx| match running.as_mut().poll(cx) {
            Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
            Poll::Pending if signals.computed_a_tick() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        if let Some(outcome) = inline {
            return outcome;
        }
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&signals));
        let runtime = tokio::runtime::Handle::current();
        match tokio::task::spawn_blocking(move || runtime.block_on(running)).await {
            Ok(outcome) => outcome,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => RunOutcome::internal("the runtime stopped during the run"),
            },
        }
    }

    /// Instantiates `module` and keeps the instance alive, unrun, until the
    /// returned [`IdleInstance`](run::IdleInstance) is dropped. For
    /// measuring how many warm instances fit in memory (`clemmys-bench`);
    /// activations use [`run`](Self::run). Fails like an activation would
    /// when no instance slot is free.
    pub fn instantiate_idle(&self, module: &PreparedModule) -> Result<run::IdleInstance, Failure> {
        run::instantiate_idle(self.epoch_tick, module)
    }
}

/// Cancels a run moved to a blocking thread when its poller stops waiting.
struct CancelOnDrop(Arc<RunSignals>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Whether a module's code may show in logs: a private module's (the
/// enclave runtime's confidential code) may not, not even its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Plain code, cached by digest.
    Shared,
    /// Confidential code, kept by its caller.
    Private,
}

// The invoker shares one sandbox, and prepared modules, across threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Sandbox>();
    shared::<PreparedModule>();
};

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("compiler", &self.compiler)
            .field("epoch_tick", &self.epoch_tick)
            .field("cached_modules", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// The one linker: WASI preview 1, built once, with our `poll_oneoff`
/// (which stops a sleeping guest at its deadline) in place of wasmtime-wasi's.
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |host: &mut Host| &mut host.wasi)?;
    poll::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The linker of runs on the async runtime: WASI preview 1's async
/// functions, and our async `poll_oneoff`.
fn build_linker_async(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut Host| &mut host.wasi)?;
    poll::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// The thread advancing the engines' epochs every tick, stopped on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engines: Vec<Engine>, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("clemmys-epoch".into())
            .spawn(move || {
                let mut next = Instant::now() + tick;
                while !stopping.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        // Woken early by `drop` (or spuriously): check again.
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                    next += tick;
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The loop body cannot panic; a join error would only repeat one.
            let _ = thread.join();
        }
    }
}
