//! Tier-up: the background thread of a tiered sandbox. It compiles each
//! module Winch compiled a second time, with Cranelift's optimising
//! compiler, and swaps that code into the [`PreparedModule`], so that every
//! activation starting afterwards runs optimised code.
//!
//! Modules are taken one at a time, in the order they were compiled, on
//! this one thread: the other cores stay free for activations. A module
//! that nobody holds any more by the time its turn comes is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PreparedModule;
use crate::sandbox::{Backend, Visibility};

/// The tier-up thread and its queue; stopped on drop.
pub(crate) struct TierUp {
    jobs: Option<Sender<Job>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A module to compile again, with its code.
struct Job {
    module: Weak<PreparedModule>,
    code: Vec<u8>,
    visibility: Visibility,
}

#[derive(Default)]
struct Shared {
    /// Jobs queued or being compiled.
    pending: Mutex<usize>,
    /// Notified whenever `pending` falls to zero.
    drained: Condvar,
    /// Set on drop: queued jobs are dropped unrun.
    stop: AtomicBool,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, usize> {
        // Nothing panics while holding the lock: a poisoned count is intact.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TierUp {
    /// Starts the thread, which compiles with `optimizing`.
    pub(crate) fn start(optimizing: Backend) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("clemmys-tier-up".into())
            .spawn(move || work(&optimizing, &queue, &worker))?;
        Ok(Self {
            jobs: Some(jobs),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `module`, compiled from `code`, for its optimised code.
    pub(crate) fn queue(
        &self,
        module: &Arc<PreparedModule>,
        code: Vec<u8>,
        visibility: Visibility,
    ) {
        let Some(jobs) = &self.jobs else { return };
        *self.shared.pending() += 1;
        let job = Job {
            module: Arc::downgrade(module),
            code,
            visibility,
        };
        if jobs.send(job).is_err() {
            // The thread is gone (it cannot panic; only drop ends it): the
            // module keeps its baseline code, which runs correctly.
            finish_one(&self.shared);
        }
    }

    /// Modules queued or being compiled now.
    pub(crate) fn pending(&self) -> usize {
        *self.shared.pending()
    }

    /// Waits until no module is queued or being compiled, at most
    /// `timeout`; whether none is.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self.shared.pending();
        while *pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .shared
                .drained
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for TierUp {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Closing the queue ends the thread's loop once its current compile
        // (if any) is done.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // The loop cannot panic; a join error would only repeat one.
            let _ = thread.join();
        }
    }
}

/// The thread's loop: compile each job's code, swap it in, count it done.
fn work(optimizing: &Backend, queue: &Receiver<Job>, shared: &Shared) {
    for Job {
        module,
        code,
        visibility,
    } in queue
    {
        if !shared.stop.load(Ordering::Relaxed)
            && let Some(module) = module.upgrade()
        {
            match optimizing.compile(&code) {
                // A private module's digest and compiler messages derive
                // from confidential code: nothing about it is logged.
                Ok(linked) if visibility == Visibility::Private => module.finish(linked),
                Err(_) if visibility == Visibility::Private => {}
                Ok(linked) => {
                    module.finish(linked);
                    tracing::debug!(digest = %module.digest(), "optimised code swapped in");
                }
                // The baseline code stays and runs correctly; an error here
                // would be wasmtime's, since the module compiled once.
                Err(error) => tracing::warn!(
                    digest = %module.digest(), %error,
                    "optimising compile failed; the module keeps its baseline code"
                ),
            }
        }
        finish_one(shared);
    }
}

fn finish_one(shared: &Shared) {
    let mut pending = shared.pending();
    *pending = pending.saturating_sub(1);
    if *pending == 0 {
        shared.drained.notify_all();
    }
}
