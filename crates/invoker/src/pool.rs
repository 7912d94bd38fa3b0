//! [`EnclavePool`]: the enclaves of one invoker.
//!
//! The pool is host code: it decides which enclave serves which action and
//! when enclaves start and stop, and sees only what [`Enclave`] shows the
//! host (sealed bytes, public keys, whether it is ready). It keeps
//!
//! * **idle** enclaves: started and attested ahead of time, bound to no
//!   action yet ([`EnclavePoolConfig::idle_target`] of them, refilled in
//!   the background whenever one is taken);
//! * **bound** enclaves: one per action, holding that action's key and
//!   compiled module and serving all its activations, concurrently, each in
//!   a fresh wasm instance. An action's first invoke binds an idle enclave
//!   (the enclave then asks the broker for the key and compiles), or starts
//!   one on the critical path if none is idle; [`EnclavePool::prewarm`]
//!   does all of that ahead of the first invoke, when an action is deployed.
//!
//! A background thread evicts bound enclaves whose action has been idle
//! longer than its [`KeepAlivePolicy`] window (dropping an enclave zeroes
//! its keys and the action key), evicts the least recently used ones past
//! [`EnclavePoolConfig::max_bound`], provisions again, shortly before its
//! next expected invocation, an action the policy unloaded after its last
//! run, and refills the idle enclaves. An enclave running an activation is
//! never evicted, and an evicted enclave is never reused for another action.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use clemmys_proto::identity::EnclavePublicKeys;

use clemmys_enclave::{Enclave, EnclaveError, SealedOutcome, SealedRun};

use crate::keepalive::{IdleHistory, KeepAliveConfig, KeepAlivePolicy, Window, WindowBasis};

/// Actions whose idle history the pool keeps; past it, the histories of
/// the actions idle the longest are forgotten (they start over as new).
const MAX_TRACKED_ACTIONS: usize = 4096;

/// Where the pool fetches an action's sealed code: the untrusted store.
pub trait CodeSource: Send + Sync + 'static {
    /// The sealed code of `namespace/name`, if stored.
    fn sealed_code(&self, namespace: &str, name: &str) -> Option<Vec<u8>>;
}

/// Starts one enclave (key generation and attestation inside).
pub type Launcher = Box<dyn Fn() -> Result<Enclave, EnclaveError> + Send + Sync>;

/// Where the pool reads the time (tests substitute a manual clock).
type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// How an invoker's enclaves are pooled.
#[derive(Debug, Clone, PartialEq)]
pub struct EnclavePoolConfig {
    /// Enclaves kept started and attested but bound to no action, so an
    /// action's first invoke (or its prewarm) pays no attestation. 0: no
    /// idle enclaves; every binding starts one. Default 2.
    pub idle_target: usize,
    /// Most enclaves bound to actions at once (at least 1); past it the
    /// least recently used idle one is evicted. Enclaves running an
    /// activation are never evicted, so while all are busy a new binding
    /// exceeds this until one is idle. Default 64.
    pub max_bound: usize,
    /// Whether enclaves are provisioned ahead of invocations: when an
    /// action is created or updated (the controller's `Prewarm`), and when
    /// the keep-alive policy expects an unloaded action to be invoked
    /// again. false: an action's key is requested and its code compiled by
    /// its first invoke after each binding. Default true.
    pub prewarm: bool,
    /// How long bound enclaves stay, per action.
    pub keep_alive: KeepAliveConfig,
    /// How often the background thread evicts, refills and re-provisions.
    /// Default 1 s.
    pub maintenance_period: Duration,
}

impl Default for EnclavePoolConfig {
    fn default() -> Self {
        Self {
            idle_target: 2,
            max_bound: 64,
            prewarm: true,
            keep_alive: KeepAliveConfig::default(),
            maintenance_period: Duration::from_secs(1),
        }
    }
}

/// Counters of a pool, for benchmarks and operators. Every count is since
/// the pool started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Enclaves idle now.
    pub idle: usize,
    /// Enclaves bound to an action now.
    pub bound: usize,
    /// Enclaves started.
    pub started: u64,
    /// Of those, started on an invocation's critical path (none was idle).
    pub started_on_demand: u64,
    /// Enclaves bound to an action (each then holds the action's key).
    pub provisioned: u64,
    /// Provisionings done ahead of invocations (key and compiled code).
    pub prewarmed: u64,
    /// Bound enclaves evicted (expired, least recently used, or asked to).
    pub evicted: u64,
    /// Runs that found their action's enclave bound.
    pub hits: u64,
    /// Runs that had to bind an enclave first.
    pub misses: u64,
}

type ActionKey = (String, String);

/// A bound enclave.
struct Bound {
    enclave: Arc<Enclave>,
    /// Keep-alive counts from here: when it was bound or last used.
    since: Instant,
    /// Whether a run completed on it since it was bound.
    served: bool,
}

/// What the pool knows of one action.
#[derive(Default)]
struct ActionState {
    history: IdleHistory,
    /// Activations running.
    running: u32,
    /// Prewarms under way.
    preparing: u32,
    /// The idle period a scheduled re-provisioning was done for.
    reloaded_for: Option<Instant>,
    /// The policy's window for `history`, until the next arrival changes it.
    window: Option<Window>,
}

impl ActionState {
    fn busy(&self) -> bool {
        self.running > 0 || self.preparing > 0
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Arc<Enclave>>,
    bound: HashMap<ActionKey, Bound>,
    actions: HashMap<ActionKey, ActionState>,
    stats: PoolStats,
}

/// Why an enclave is leased.
#[derive(Clone, Copy)]
enum Purpose {
    /// To run an activation.
    Run,
    /// To provision it ahead of time; keep-alive counts from `since`
    /// (default: now).
    Prewarm { since: Option<Instant> },
}

/// The enclaves of one invoker; see the module docs.
pub struct EnclavePool {
    launch: Launcher,
    code: Arc<dyn CodeSource>,
    config: EnclavePoolConfig,
    policy: KeepAlivePolicy,
    clock: Clock,
    state: Mutex<PoolState>,
    maintainer: OnceLock<Thread>,
}

impl EnclavePool {
    /// Starts a pool: starts one enclave now (kept idle, or dropped when
    /// `idle_target` is 0), so a misconfiguration (say, a broker whose
    /// evidence does not verify) fails here rather than at the first
    /// invoke, and a thread that fills and maintains the pool every
    /// [`maintenance_period`](EnclavePoolConfig::maintenance_period). The
    /// thread stops when the pool is dropped.
    pub fn start(
        launch: Launcher,
        code: Arc<dyn CodeSource>,
        config: EnclavePoolConfig,
    ) -> Result<Arc<Self>, EnclaveError> {
        let pool = Arc::new(Self::with_clock(
            launch,
            code,
            config,
            Box::new(Instant::now),
        ));
        let first = (pool.launch)()?;
        {
            let mut state = pool.lock();
            state.stats.started += 1;
            if pool.config.idle_target > 0 {
                state.idle.push(Arc::new(first));
            }
        }
        let weak = Arc::downgrade(&pool);
        let period = pool.config.maintenance_period.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new()
            .name("clemmys-enclave-pool".into())
            .spawn(move || {
                loop {
                    match weak.upgrade() {
                        Some(pool) => pool.maintain(),
                        None => break,
                    }
                    std::thread::park_timeout(period);
                }
            })
            .map_err(EnclaveError::PoolThread)?;
        // Set once, here; the cell exists only because the thread needs
        // the pool first.
        let _ = pool.maintainer.set(thread.thread().clone());
        Ok(pool)
    }

    /// A pool without its thread, reading time from `clock`: whoever owns
    /// it calls [`maintain`](Self::maintain).
    pub(crate) fn with_clock(
        launch: Launcher,
        code: Arc<dyn CodeSource>,
        config: EnclavePoolConfig,
        clock: Clock,
    ) -> Self {
        Self {
            launch,
            code,
            policy: KeepAlivePolicy::new(config.keep_alive.clone()),
            config,
            clock,
            state: Mutex::default(),
            maintainer: OnceLock::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &EnclavePoolConfig {
        &self.config
    }

    /// Runs one sealed input of `run.namespace/run.action` in the action's
    /// enclave, binding one first if needed. The guest runs on the async
    /// runtime polling this; starting an enclave, fetching a key from the
    /// broker, reading and compiling code still block the thread while they
    /// last (a warm session request does none of them). The outcome's
    /// `init_time` includes the time to start an enclave when none was
    /// idle.
    pub async fn run(&self, run: SealedRun<'_>) -> Result<SealedOutcome, EnclaveError> {
        let (namespace, name) = (run.namespace, run.action);
        let (lease, enclave, started_in) = self.lease(namespace, name, Purpose::Run)?;
        let result = enclave
            .run(run, || self.code.sealed_code(namespace, name))
            .await;
        match &result {
            Err(EnclaveError::KeyRefused(_) | EnclaveError::CodeMissing) => {
                self.unbind_unprovisioned(&lease.key, &enclave);
            }
            Err(EnclaveError::OwnedByAnother { .. }) => self.unbind(&lease.key, &enclave),
            _ => {}
        }
        drop(lease);
        let mut outcome = result?;
        if let Some(start) = started_in {
            outcome.init_time = Some(outcome.init_time.unwrap_or_default() + start);
        }
        Ok(outcome)
    }

    /// Provisions `namespace/name` ahead of its invocations (the action was
    /// just created or updated): binds an enclave, which gets the current
    /// key from the broker and compiles the sealed code. Returns whether it
    /// provisioned anything; does nothing when
    /// [`prewarm`](EnclavePoolConfig::prewarm) is off. Blocks.
    pub fn prewarm(&self, namespace: &str, name: &str) -> Result<bool, EnclaveError> {
        if !self.config.prewarm {
            return Ok(false);
        }
        self.provision(namespace, name, None)
    }

    /// Whether `namespace/name` has a bound enclave holding its key and
    /// compiled code.
    pub fn is_ready(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .bound
            .get(&key(namespace, name))
            .is_some_and(|bound| bound.enclave.is_ready())
    }

    /// The public keys of the enclave bound to `namespace/name`, if any.
    pub fn bound_enclave(&self, namespace: &str, name: &str) -> Option<EnclavePublicKeys> {
        self.lock()
            .bound
            .get(&key(namespace, name))
            .map(|bound| bound.enclave.public_keys())
    }

    /// Evicts the enclave bound to `namespace/name` now (runs under way
    /// finish on it); returns whether there was one.
    pub fn evict(&self, namespace: &str, name: &str) -> bool {
        let evicted = {
            let mut state = self.lock();
            let evicted = state.bound.remove(&key(namespace, name));
            if evicted.is_some() {
                state.stats.evicted += 1;
            }
            evicted
        };
        evicted.is_some()
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            idle: state.idle.len(),
            bound: state.bound.len(),
            ..state.stats
        }
    }

    /// One maintenance pass: evicts expired and surplus bound enclaves,
    /// forgets old histories, refills the idle enclaves, and provisions the
    /// actions whose next invocation is expected soon. Blocks.
    pub(crate) fn maintain(&self) {
        let now = self.now();
        let mut dropped = Vec::new();
        let (missing, reloads) = {
            let mut state = self.lock();
            for action in state.actions.values_mut() {
                if action.window.is_none() {
                    action.window = Some(self.policy.window(&action.history));
                }
            }
            self.evict_expired(&mut state, now, &mut dropped);
            self.trim(&mut state, None, &mut dropped);
            let reloads = if self.config.prewarm {
                self.due_reloads(&mut state, now)
            } else {
                Vec::new()
            };
            forget_histories(&mut state);
            let missing = self.config.idle_target.saturating_sub(state.idle.len());
            (missing, reloads)
        };
        drop(dropped);
        for _ in 0..missing {
            match (self.launch)() {
                Ok(enclave) => {
                    let mut state = self.lock();
                    state.stats.started += 1;
                    if state.idle.len() < self.config.idle_target {
                        state.idle.push(Arc::new(enclave));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "starting an idle enclave failed");
                    break;
                }
            }
        }
        for ((namespace, name), since) in reloads {
            if let Err(error) = self.provision(&namespace, &name, Some(since)) {
                tracing::warn!(action = %format!("{namespace}/{name}"), %error, "provisioning ahead of an expected invoke failed");
            }
        }
    }

    /// Binds (if needed) and provisions the action's enclave.
    fn provision(
        &self,
        namespace: &str,
        name: &str,
        since: Option<Instant>,
    ) -> Result<bool, EnclaveError> {
        let (lease, enclave, _) = self.lease(namespace, name, Purpose::Prewarm { since })?;
        let result = enclave.prewarm(namespace, name, || self.code.sealed_code(namespace, name));
        match &result {
            Ok(true) => self.lock().stats.prewarmed += 1,
            Ok(false) => {}
            Err(EnclaveError::KeyRefused(_) | EnclaveError::CodeMissing) => {
                self.unbind_unprovisioned(&lease.key, &enclave)
            }
            // Another owner's code under the name: a fresh enclave serves
            // it, never this one.
            Err(EnclaveError::OwnedByAnother { .. }) => self.unbind(&lease.key, &enclave),
            Err(_) => {}
        }
        drop(lease);
        result
    }

    /// The enclave for `namespace/name`: its bound one, else an idle one
    /// bound now, else one started now (with the time that took).
    fn lease(
        &self,
        namespace: &str,
        name: &str,
        purpose: Purpose,
    ) -> Result<(Lease<'_>, Arc<Enclave>, Option<Duration>), EnclaveError> {
        let key = key(namespace, name);
        let now = self.now();
        let run = matches!(purpose, Purpose::Run);
        let since = match purpose {
            Purpose::Prewarm { since: Some(since) } => since,
            _ => now,
        };
        let mut dropped = Vec::new();
        let mut lease = {
            let mut state = self.lock();
            let action = tracked(&mut state, &key);
            if run {
                if action.running == 0 {
                    self.policy.record_arrival(&mut action.history, now);
                    action.window = None;
                }
                action.running += 1;
            } else {
                action.preparing += 1;
            }
            // From here on the lease undoes the counts, whatever happens.
            let mut lease = Lease {
                pool: self,
                key,
                run,
                enclave: None,
            };
            if let Some(bound) = state.bound.get_mut(&lease.key) {
                if !matches!(purpose, Purpose::Prewarm { since: Some(_) }) {
                    bound.since = now;
                }
                let enclave = bound.enclave.clone();
                if run {
                    state.stats.hits += 1;
                }
                lease.enclave = Some(enclave.clone());
                return Ok((lease, enclave, None));
            }
            if run {
                state.stats.misses += 1;
            }
            if let Some(enclave) = state.idle.pop() {
                self.bind(&mut state, &lease.key, enclave.clone(), since, &mut dropped);
                drop(state);
                self.wake_maintainer();
                lease.enclave = Some(enclave.clone());
                return Ok((lease, enclave, None));
            }
            lease
        };
        // None idle: start one on the critical path.
        let started = Instant::now();
        let fresh = Arc::new((self.launch)()?);
        let start_time = started.elapsed();
        let mut state = self.lock();
        state.stats.started += 1;
        if run {
            state.stats.started_on_demand += 1;
        }
        let enclave = match state.bound.get(&lease.key) {
            // Another run bound one meanwhile: use it, keep ours idle.
            Some(bound) => {
                let theirs = bound.enclave.clone();
                if state.idle.len() < self.config.idle_target {
                    state.idle.push(fresh);
                } else {
                    dropped.push(fresh);
                }
                theirs
            }
            None => {
                self.bind(&mut state, &lease.key, fresh.clone(), since, &mut dropped);
                fresh
            }
        };
        drop(state);
        lease.enclave = Some(enclave.clone());
        Ok((lease, enclave, Some(start_time)))
    }

    fn bind(
        &self,
        state: &mut PoolState,
        key: &ActionKey,
        enclave: Arc<Enclave>,
        since: Instant,
        dropped: &mut Vec<Arc<Enclave>>,
    ) {
        state.bound.insert(
            key.clone(),
            Bound {
                enclave,
                since,
                served: false,
            },
        );
        state.stats.provisioned += 1;
        self.trim(state, Some(key), dropped);
    }

    /// Evicts least recently used idle bound enclaves past `max_bound`,
    /// never `keep`.
    fn trim(
        &self,
        state: &mut PoolState,
        keep: Option<&ActionKey>,
        dropped: &mut Vec<Arc<Enclave>>,
    ) {
        let max = self.config.max_bound.max(1);
        while state.bound.len() > max {
            let victim = state
                .bound
                .iter()
                .filter(|(key, _)| Some(*key) != keep)
                .filter(|(key, _)| !state.actions.get(*key).is_some_and(ActionState::busy))
                .min_by_key(|(_, bound)| bound.since)
                .map(|(key, _)| key.clone());
            let Some(victim) = victim else {
                break; // every bound enclave is busy
            };
            if let Some(bound) = state.bound.remove(&victim) {
                dropped.push(bound.enclave);
                state.stats.evicted += 1;
            }
        }
    }

    /// Evicts bound enclaves idle past their action's window, and those
    /// the window unloads after a run.
    fn evict_expired(&self, state: &mut PoolState, now: Instant, dropped: &mut Vec<Arc<Enclave>>) {
        let expired: Vec<ActionKey> = state
            .bound
            .iter()
            .filter(|(key, bound)| {
                let action = state.actions.get(*key);
                if action.is_some_and(ActionState::busy) {
                    return false;
                }
                let window = self.window(action);
                (!window.prewarm.is_zero() && bound.served)
                    || now.saturating_duration_since(bound.since) >= window.keep_alive
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            if let Some(bound) = state.bound.remove(&key) {
                dropped.push(bound.enclave);
                state.stats.evicted += 1;
            }
        }
    }

    /// Unloaded actions whose next invocation is due within one
    /// maintenance period (and not yet overdue past their keep-alive).
    fn due_reloads(&self, state: &mut PoolState, now: Instant) -> Vec<(ActionKey, Instant)> {
        let mut due = Vec::new();
        for (key, action) in &mut state.actions {
            if action.busy() || state.bound.contains_key(key) {
                continue;
            }
            let Some(idle_since) = action.history.idle_since() else {
                continue;
            };
            if action.reloaded_for == Some(idle_since) {
                continue;
            }
            let window = self.window(Some(action));
            if window.prewarm.is_zero() {
                continue;
            }
            let lead = window
                .prewarm
                .saturating_sub(self.config.maintenance_period);
            let idle = now.saturating_duration_since(idle_since);
            if idle >= lead && idle < window.keep_alive {
                action.reloaded_for = Some(idle_since);
                due.push((key.clone(), idle_since));
            }
        }
        due
    }

    fn window(&self, action: Option<&ActionState>) -> Window {
        match action {
            Some(ActionState {
                window: Some(window),
                ..
            }) => *window,
            Some(action) => self.policy.window(&action.history),
            None => self.policy.fixed(WindowBasis::TooFewSamples),
        }
    }

    /// Unbinds `enclave` from `key` if it holds no key (the broker refused
    /// it): an enclave that cannot serve its action is not worth keeping.
    fn unbind_unprovisioned(&self, key: &ActionKey, enclave: &Arc<Enclave>) {
        if enclave.is_provisioned() {
            return;
        }
        self.unbind(key, enclave);
    }

    /// Drops `enclave` as the one bound to `key`, if it still is.
    fn unbind(&self, key: &ActionKey, enclave: &Arc<Enclave>) {
        let removed = {
            let mut state = self.lock();
            let ours = state
                .bound
                .get(key)
                .is_some_and(|bound| Arc::ptr_eq(&bound.enclave, enclave));
            if ours {
                state.stats.evicted += 1;
                state.bound.remove(key)
            } else {
                None
            }
        };
        drop(removed);
    }

    fn wake_maintainer(&self) {
        if let Some(thread) = self.maintainer.get() {
            thread.unpark();
        }
    }

    fn now(&self) -> Instant {
        (self.clock)()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Nothing panics while holding the lock: a poisoned state is intact.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EnclavePool {
    fn drop(&mut self) {
        // Let the maintenance thread notice, now, that the pool is gone.
        self.wake_maintainer();
    }
}

impl std::fmt::Debug for EnclavePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclavePool")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// An action's enclave in use by a run or a prewarm: while it lives the
/// enclave is not evicted; dropping it records when the action went idle.
struct Lease<'a> {
    pool: &'a EnclavePool,
    key: ActionKey,
    run: bool,
    enclave: Option<Arc<Enclave>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let now = self.pool.now();
        let mut state = self.pool.lock();
        let PoolState { actions, bound, .. } = &mut *state;
        if let Some(action) = actions.get_mut(&self.key) {
            if self.run {
                action.running = action.running.saturating_sub(1);
                if action.running == 0 {
                    self.pool.policy.record_idle(&mut action.history, now);
                }
            } else {
                action.preparing = action.preparing.saturating_sub(1);
            }
        }
        if self.run
            && let Some(bound) = bound.get_mut(&self.key)
            && self
                .enclave
                .as_ref()
                .is_some_and(|enclave| Arc::ptr_eq(enclave, &bound.enclave))
        {
            bound.since = now;
            bound.served = true;
        }
    }
}

fn key(namespace: &str, name: &str) -> ActionKey {
    (namespace.to_owned(), name.to_owned())
}

/// The state of `key`'s action, tracked from now on. (Looked up before
/// inserting: on every run but the first the key is there, and cloning it
/// would allocate.)
fn tracked<'s>(state: &'s mut PoolState, key: &ActionKey) -> &'s mut ActionState {
    if !state.actions.contains_key(key) {
        state.actions.insert(key.clone(), ActionState::default());
    }
    state
        .actions
        .get_mut(key)
        .expect("the action's state is present: inserted just above if it was not")
}

/// Forgets the histories of the actions idle the longest, past
/// [`MAX_TRACKED_ACTIONS`] (never one that is busy or bound).
fn forget_histories(state: &mut PoolState) {
    while state.actions.len() > MAX_TRACKED_ACTIONS {
        let oldest = state
            .actions
            .iter()
            .filter(|(key, action)| !action.busy() && !state.bound.contains_key(*key))
            .min_by_key(|(_, action)| action.history.idle_since())
            .map(|(key, _)| key.clone());
        let Some(oldest) = oldest else {
            break;
        };
        state.actions.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use clemmys_broker::Broker;
    use clemmys_proto::Digest;
    use clemmys_proto::broker::{
        BrokerOp, BrokerReply, Policy, RegisteredKind, open_broker_reply, seal_broker_request,
    };
    use clemmys_proto::code::{CodeBinding, SealedCode};
    use clemmys_proto::identity::ClientIdentity;
    use clemmys_sandbox::{Sandbox, SandboxConfig};
    use clemmys_tee::sim::{SimPlatform, SimTee};
    use clemmys_tee::{Role, Verifier, measurement, os_rng};

    use super::*;

    /// The smallest WASI command: `(module (func (export "_start")))`.
    const MODULE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: [] -> []
        0x03, 0x02, 0x01, 0x00, // func 0: type 0
        0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // body: no locals, end
    ];

    #[derive(Default)]
    struct Codes(Mutex<HashMap<ActionKey, Vec<u8>>>);

    impl CodeSource for Codes {
        fn sealed_code(&self, namespace: &str, name: &str) -> Option<Vec<u8>> {
            let codes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            codes.get(&key(namespace, name)).cloned()
        }
    }

    /// A time that moves only when told.
    #[derive(Clone)]
    struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }

    /// A broker with registered actions, their sealed code, and a clock.
    struct Fixture {
        _dir: tempfile::TempDir,
        platform: Arc<SimPlatform>,
        broker: Arc<Broker>,
        sandbox: Arc<Sandbox>,
        owner: ClientIdentity,
        codes: Arc<Codes>,
        clock: ManualClock,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let platform = Arc::new(SimPlatform::generate());
            let verifier = Verifier::new().trust_sim_platform(platform.public_key());
            let broker_tee = Arc::new(SimTee::new(
                platform.clone(),
                &measurement::expected_digest(Role::KeyBroker),
            ));
            let broker = Broker::open(&dir.path().join("broker.redb"), broker_tee, verifier)
                .expect("broker opens");
            let sandbox = Sandbox::new(&SandboxConfig::with_slots(2)).expect("sandbox");
            Self {
                _dir: dir,
                platform,
                broker: Arc::new(broker),
                sandbox: Arc::new(sandbox),
                owner: ClientIdentity::generate(&mut os_rng()),
                codes: Arc::default(),
                clock: ManualClock(Arc::new(Mutex::new(Instant::now()))),
            }
        }

        /// Registers version `version` of `ns/name` and stores its sealed code.
        fn deploy(&self, name: &str, version: u64) {
            let op = BrokerOp::Register {
                namespace: "ns".into(),
                name: name.into(),
                version,
                code_digest: Digest::of(MODULE),
                policy: Policy {
                    allowed_measurements: vec![measurement::expected(Role::ActionRuntime)],
                    require_hardware: false,
                    allowed_clients: Vec::new(),
                    min_version: version,
                    entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                    kind: RegisteredKind::Action,
                    limits: None,
                },
            };
            let (request, reply_key) = seal_broker_request(
                &self.owner,
                &self.broker.identity().keys.kem,
                op,
                clemmys_whisk::now_ms(),
                &mut os_rng(),
            )
            .expect("request seals");
            let reply = self.broker.handle_client(&request).expect("broker answers");
            let BrokerReply::Action(descriptor) = open_broker_reply(&reply, &reply_key)
                .expect("reply opens")
                .reply
            else {
                panic!("the broker refused the registration");
            };
            let binding = CodeBinding {
                namespace: "ns",
                action: name,
                version,
                code_digest: descriptor.code_digest,
                entry: &descriptor.policy.entry,
            };
            let sealed = SealedCode::seal(
                MODULE,
                self.owner.id(),
                &descriptor.action_key,
                &binding,
                &mut os_rng(),
            )
            .expect("code seals");
            self.codes
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key("ns", name), sealed.to_bytes());
        }

        fn launcher(&self) -> Launcher {
            let tee = SimTee::new(
                self.platform.clone(),
                &measurement::expected_digest(Role::ActionRuntime),
            );
            let verifier = Verifier::new().trust_sim_platform(self.platform.public_key());
            let (sandbox, broker) = (self.sandbox.clone(), self.broker.clone());
            Box::new(move || {
                Enclave::start(
                    &tee,
                    sandbox.clone(),
                    broker.clone(),
                    &verifier,
                    measurement::expected(Role::KeyBroker),
                )
            })
        }

        fn pool(&self, config: EnclavePoolConfig) -> EnclavePool {
            let clock = self.clock.clone();
            EnclavePool::with_clock(
                self.launcher(),
                self.codes.clone(),
                config,
                Box::new(move || clock.now()),
            )
        }

        /// Simulates one activation of `ns/name` lasting 10 ms.
        fn run(&self, pool: &EnclavePool, name: &str) {
            let (lease, _, _) = pool.lease("ns", name, Purpose::Run).expect("lease");
            self.clock.advance(Duration::from_millis(10));
            drop(lease);
        }
    }

    fn config(idle_target: usize, max_bound: usize) -> EnclavePoolConfig {
        EnclavePoolConfig {
            idle_target,
            max_bound,
            ..EnclavePoolConfig::default()
        }
    }

    #[test]
    fn prewarm_binds_an_idle_enclave_and_compiles_before_the_first_run() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(1, 8));
        pool.maintain();
        assert_eq!(pool.stats().idle, 1);
        assert!(!pool.is_ready("ns", "a"));

        assert!(pool.prewarm("ns", "a").expect("prewarm"));
        assert!(pool.is_ready("ns", "a"));
        let stats = pool.stats();
        assert_eq!((stats.idle, stats.bound), (0, 1));
        assert_eq!((stats.started, stats.started_on_demand), (1, 0));
        assert_eq!((stats.provisioned, stats.prewarmed), (1, 1));
        // Nothing left to do at the same version.
        assert!(!pool.prewarm("ns", "a").expect("prewarm again"));

        // The background pass refills the idle enclave it took.
        pool.maintain();
        assert_eq!(pool.stats().idle, 1);
        assert_eq!(pool.stats().started, 2);

        // A run finds it bound.
        fixture.run(&pool, "a");
        assert_eq!((pool.stats().hits, pool.stats().misses), (1, 0));
    }

    #[test]
    fn prewarm_after_an_update_provisions_the_new_version_in_the_same_enclave() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(1, 8));
        assert!(pool.prewarm("ns", "a").expect("prewarm v1"));
        let before = pool.bound_enclave("ns", "a");
        fixture.deploy("a", 2);
        assert!(pool.prewarm("ns", "a").expect("prewarm v2"));
        assert!(pool.is_ready("ns", "a"));
        assert_eq!(pool.bound_enclave("ns", "a"), before);
    }

    #[test]
    fn prewarm_does_nothing_when_switched_off() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(EnclavePoolConfig {
            prewarm: false,
            ..config(1, 8)
        });
        assert!(!pool.prewarm("ns", "a").expect("prewarm"));
        assert!(pool.bound_enclave("ns", "a").is_none());
    }

    #[test]
    fn each_action_gets_an_enclave_of_its_own() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        fixture.deploy("b", 1);
        let pool = fixture.pool(config(2, 8));
        pool.maintain();
        pool.prewarm("ns", "a").expect("prewarm a");
        pool.prewarm("ns", "b").expect("prewarm b");
        let a = pool.bound_enclave("ns", "a").expect("a bound");
        let b = pool.bound_enclave("ns", "b").expect("b bound");
        assert_ne!(a.signing, b.signing);
        assert_eq!(pool.stats().bound, 2);
    }

    #[test]
    fn an_enclave_refuses_a_second_action() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        fixture.deploy("b", 1);
        let enclave = (fixture.launcher())().expect("enclave starts");
        let load = |name: &str| fixture.codes.sealed_code("ns", name);
        assert!(enclave.prewarm("ns", "a", || load("a")).expect("a"));
        assert_eq!(enclave.action(), Some(("ns", "a")));
        let refused = enclave.prewarm("ns", "b", || load("b"));
        assert!(
            matches!(refused, Err(EnclaveError::BoundToAnotherAction { .. })),
            "{refused:?}"
        );
        assert!(enclave.is_ready());
    }

    #[test]
    fn an_empty_pool_starts_an_enclave_on_the_critical_path() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(0, 8));
        pool.maintain();
        assert_eq!(pool.stats().idle, 0);
        let (lease, _, started_in) = pool.lease("ns", "a", Purpose::Run).expect("lease");
        assert!(started_in.is_some());
        drop(lease);
        let stats = pool.stats();
        assert_eq!((stats.started, stats.started_on_demand), (1, 1));
        assert_eq!((stats.hits, stats.misses, stats.bound), (0, 1, 1));
        // The next run finds it.
        let (_lease, _, started_in) = pool.lease("ns", "a", Purpose::Run).expect("lease");
        assert!(started_in.is_none());
        assert_eq!(pool.stats().hits, 1);
    }

    #[test]
    fn the_least_recently_used_enclave_is_evicted_past_max_bound() {
        let fixture = Fixture::new();
        for name in ["a", "b", "c"] {
            fixture.deploy(name, 1);
        }
        let pool = fixture.pool(config(0, 2));
        pool.prewarm("ns", "a").expect("a");
        fixture.clock.advance(Duration::from_secs(1));
        pool.prewarm("ns", "b").expect("b");
        fixture.clock.advance(Duration::from_secs(1));
        fixture.run(&pool, "a"); // a is now more recent than b
        fixture.clock.advance(Duration::from_secs(1));
        pool.prewarm("ns", "c").expect("c");
        assert!(pool.is_ready("ns", "a"));
        assert!(pool.bound_enclave("ns", "b").is_none());
        assert!(pool.is_ready("ns", "c"));
        assert_eq!((pool.stats().bound, pool.stats().evicted), (2, 1));
    }

    #[test]
    fn a_busy_enclave_is_not_evicted_for_another() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        fixture.deploy("b", 1);
        let pool = fixture.pool(config(0, 1));
        let (lease, _, _) = pool.lease("ns", "a", Purpose::Run).expect("lease a");
        pool.prewarm("ns", "b").expect("b");
        // Over the maximum while `a` runs …
        assert_eq!(pool.stats().bound, 2);
        drop(lease);
        // … until the next pass.
        pool.maintain();
        assert_eq!(pool.stats().bound, 1);
        assert_eq!(pool.stats().evicted, 1);
    }

    #[test]
    fn an_idle_enclave_expires_after_the_fixed_keep_alive_and_is_rebound_fresh() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(1, 8));
        pool.prewarm("ns", "a").expect("prewarm");
        fixture.run(&pool, "a");
        let first = pool.bound_enclave("ns", "a").expect("bound");

        fixture.clock.advance(Duration::from_secs(9 * 60));
        pool.maintain();
        assert!(pool.is_ready("ns", "a"));
        fixture.clock.advance(Duration::from_secs(2 * 60));
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
        assert_eq!(pool.stats().evicted, 1);

        // The next run binds a fresh enclave, which provisions again.
        fixture.run(&pool, "a");
        let second = pool.bound_enclave("ns", "a").expect("bound again");
        assert_ne!(first.signing, second.signing);
        assert_eq!(pool.stats().misses, 1);
    }

    #[test]
    fn a_running_enclave_is_never_expired() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(0, 8));
        let (lease, _, _) = pool.lease("ns", "a", Purpose::Run).expect("lease");
        fixture.clock.advance(Duration::from_secs(3600));
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_some());
        drop(lease);
        // Keep-alive counts from the end of the run.
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_some());
        fixture.clock.advance(Duration::from_secs(601));
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
    }

    #[test]
    fn a_regular_action_is_unloaded_after_its_run_and_provisioned_before_the_next() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(1, 8));
        pool.maintain();
        pool.prewarm("ns", "a").expect("prewarm");
        // Eleven runs 60.5 s apart: a representative histogram.
        let gap = Duration::from_millis(60_500);
        fixture.run(&pool, "a");
        for _ in 0..10 {
            fixture.clock.advance(gap);
            fixture.run(&pool, "a");
        }
        let window = pool.window(pool.lock().actions.get(&key("ns", "a")));
        assert_eq!(window.basis, WindowBasis::Histogram);
        assert_eq!(window.prewarm, Duration::from_secs(54));

        // Unloaded after the run …
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
        let evicted = pool.stats().evicted;
        // … provisioned again one maintenance period before the pre-warm
        // window ends …
        fixture.clock.advance(Duration::from_secs(52));
        pool.maintain();
        assert!(!pool.is_ready("ns", "a"));
        fixture.clock.advance(Duration::from_millis(1500));
        pool.maintain();
        assert!(pool.is_ready("ns", "a"));
        let prewarmed = pool.stats().prewarmed;
        // … ready for the next arrival, a hit.
        fixture.clock.advance(Duration::from_secs(7));
        let hits = pool.stats().hits;
        fixture.run(&pool, "a");
        assert_eq!(pool.stats().hits, hits + 1);
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
        assert_eq!(pool.stats().evicted, evicted + 1);

        // When the expected arrival does not come, the reloaded enclave
        // goes at the end of the keep-alive window.
        fixture.clock.advance(Duration::from_millis(53_500));
        pool.maintain();
        assert!(pool.is_ready("ns", "a"));
        assert_eq!(pool.stats().prewarmed, prewarmed + 1);
        fixture.clock.advance(Duration::from_secs(14));
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
        // And it is not provisioned again for the same idle period.
        fixture.clock.advance(Duration::from_secs(60));
        pool.maintain();
        assert!(pool.bound_enclave("ns", "a").is_none());
    }

    #[test]
    fn an_explicit_eviction_drops_the_binding() {
        let fixture = Fixture::new();
        fixture.deploy("a", 1);
        let pool = fixture.pool(config(0, 8));
        pool.prewarm("ns", "a").expect("prewarm");
        assert!(pool.evict("ns", "a"));
        assert!(!pool.evict("ns", "a"));
        assert!(!pool.is_ready("ns", "a"));
        assert_eq!(pool.stats().evicted, 1);
    }

    #[test]
    fn a_refused_key_leaves_no_enclave_bound() {
        let fixture = Fixture::new();
        let pool = fixture.pool(config(1, 8));
        pool.maintain();
        // Stored (a copy of another action's code), never registered.
        fixture.deploy("a", 1);
        let codes = fixture.codes.clone();
        let sealed = codes.sealed_code("ns", "a").expect("stored");
        codes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key("ns", "unknown"), sealed);
        let refused = pool.prewarm("ns", "unknown");
        assert!(
            matches!(refused, Err(EnclaveError::KeyRefused(_))),
            "{refused:?}"
        );
        assert!(pool.bound_enclave("ns", "unknown").is_none());
    }
}
