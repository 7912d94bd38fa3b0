//! The sandbox's own WASI `poll_oneoff`, so that a sleeping guest stops at
//! its deadline.
//!
//! # Why it exists
//!
//! Timeouts are epoch interruptions, and an epoch only interrupts wasm code.
//! wasmtime-wasi's `poll_oneoff` blocks in host code for as long as the guest
//! asked (in `std::thread::sleep`, or a tokio timer that never fires for a
//! sleep too long for tokio), so a guest calling
//! `std::thread::sleep(Duration::from_secs(3600))` would hold its thread for
//! an hour past its time limit. wasmtime-wasi's function cannot be wrapped
//! either: called through the linker from the host it has no calling
//! instance, and fails with "missing required memory export".
//!
//! So [`add_to_linker`] shadows `wasi_snapshot_preview1::poll_oneoff` with
//! an implementation over the guest's exported `memory` that knows the
//! activation's deadline ([`Timing`]): it sleeps until the earliest clock
//! subscription is due, but never past the deadline, and if the deadline
//! comes first it fails with [`DeadlinePassed`], which the run reports as
//! the action's timeout.
//!
//! # What it supports
//!
//! * Clock subscriptions on the realtime and monotonic clocks, relative or
//!   absolute (`subscription_clock_abstime`); `precision` is ignored. The
//!   guest's monotonic clock is [`ActivationClock`], whose origin this
//!   module knows, so absolute monotonic deadlines are exact.
//! * `fd_read` on stdin and `fd_write` on stdout and stderr, which are
//!   always ready: stdin is an in-memory pipe and stdout and stderr never
//!   block. Like wasmtime-wasi, an event reports `nbytes` 1 ("some").
//!
//! Anything else is refused as wasmtime-wasi refuses it: `inval` for no
//! subscriptions, an unknown event type or clock (the CPU-time clocks
//! included) or unknown clock flags; `badf` for any other descriptor or
//! direction; and a trap for arrays out of bounds or misaligned (WASI
//! preview 1 says such a call "shall trap"). Every check happens before
//! sleeping, and nothing the guest writes can make this code panic.
//!
//! As in wasmtime-wasi, subscriptions are read again after sleeping to write
//! the events; a guest whose `out` array overlaps its `in` array gets
//! whatever that makes of its subscriptions, never more events than it
//! asked for.

use std::ops::Range;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::{Caller, Extern, Linker, Memory};
use wasmtime_wasi::HostMonotonicClock;

use crate::run::Host;
use crate::validate::WASI_MODULE;

/// `sizeof(subscription)`: userdata u64 @0, tag u8 @8, union @16.
const SUBSCRIPTION_SIZE: usize = 48;
/// `sizeof(event)`: userdata u64 @0, error u16 @8, type u8 @10,
/// `fd_readwrite` {nbytes u64 @16, flags u16 @24}.
const EVENT_SIZE: usize = 32;
/// Both records hold `u64`s.
const RECORD_ALIGN: usize = 8;
/// `sizeof(size)` and its alignment: where `nevents` goes.
const SIZE_SIZE: usize = 4;

/// `eventtype` values, the subscription's tag and the event's type.
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;

/// `clockid` values.
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// `subclockflags::subscription_clock_abstime`, the only defined flag.
const ABSTIME: u16 = 1;

/// The arguments' names in error messages.
const ARG_IN: &str = "subscription array `in`";
const ARG_OUT: &str = "event array `out`";
const ARG_NEVENTS: &str = "event count";

/// What `nbytes` says for stdio: at least one byte can be read or written.
const STDIO_NBYTES: u64 = 1;

/// What `poll_oneoff` needs to know about time, kept in the store's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// When the guest's monotonic clock reads zero (see [`ActivationClock`]).
    pub(crate) monotonic_origin: Instant,
    /// When the activation times out; `None` if never (a timeout too large
    /// for an `Instant`).
    pub(crate) deadline: Option<Instant>,
}

impl Timing {
    /// An activation starting at `started` that may run for `timeout`.
    pub(crate) fn new(started: Instant, timeout: Duration) -> Self {
        Self {
            monotonic_origin: started,
            deadline: started.checked_add(timeout),
        }
    }

    /// The guest's monotonic clock for this activation.
    pub(crate) fn clock(&self) -> ActivationClock {
        ActivationClock {
            origin: self.monotonic_origin,
        }
    }
}

/// The guest's WASI monotonic clock: nanoseconds since the activation
/// started (like wasmtime-wasi's, whose origin is when its context was
/// built), with an origin [`Timing`] shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActivationClock {
    origin: Instant,
}

impl HostMonotonicClock for ActivationClock {
    fn resolution(&self) -> u64 {
        /// wasmtime-wasi's answer, asked once (it is a system call).
        static RESOLUTION: LazyLock<u64> =
            LazyLock::new(|| wasmtime_wasi::clocks::monotonic_clock().resolution());
        *RESOLUTION
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A sleeping guest reached its activation's deadline: the run is a
/// timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the activation's deadline passed while the guest slept in `poll_oneoff`")]
pub(crate) struct DeadlinePassed;

/// A `poll_oneoff` call that traps: the guest gave memory it does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BadMemory {
    /// The module exports no linear memory called `memory`.
    #[error("poll_oneoff: the module exports no linear memory named `memory`")]
    NoMemory,
    /// An argument reaches past the end of linear memory.
    #[error("poll_oneoff: the {what} at {at:#x} is out of bounds")]
    OutOfBounds {
        /// Which argument (see [`ARG_IN`], [`ARG_OUT`], [`ARG_NEVENTS`]).
        what: &'static str,
        /// Its address.
        at: u32,
    },
    /// An argument is not aligned for what it holds.
    #[error("poll_oneoff: the {what} at {at:#x} is misaligned")]
    Misaligned {
        /// Which argument (see [`ARG_IN`], [`ARG_OUT`], [`ARG_NEVENTS`]).
        what: &'static str,
        /// Its address.
        at: u32,
    },
}

/// The WASI errors `poll_oneoff` returns to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
enum Errno {
    /// `badf`: not a descriptor this call can wait on.
    Badf = 8,
    /// `inval`: no subscriptions, or one WASI does not define.
    Inval = 28,
}

/// Why a call returns before sleeping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// An error for the guest to handle.
    Errno(Errno),
    /// A trap.
    Trap(BadMemory),
}

impl From<Errno> for Refused {
    fn from(errno: Errno) -> Self {
        Self::Errno(errno)
    }
}

impl From<BadMemory> for Refused {
    fn from(bad: BadMemory) -> Self {
        Self::Trap(bad)
    }
}

/// Replaces wasmtime-wasi's `poll_oneoff` in `linker`, which must already
/// hold WASI preview 1.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = linker
        .func_wrap(WASI_MODULE, "poll_oneoff", poll_oneoff)
        .map(|_| ());
    linker.allow_shadowing(false);
    added
}

/// Replaces wasmtime-wasi's `poll_oneoff` in `linker`, which must already
/// hold WASI preview 1's async functions, with one that sleeps on the async
/// runtime's timer.
pub(crate) fn add_to_linker_async(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = linker
        .func_wrap_async(
            WASI_MODULE,
            "poll_oneoff",
            |caller: Caller<'_, Host>,
             (subscriptions, events, nsubscriptions, nevents): (u32, u32, u32, u32)| {
                Box::new(poll_oneoff_async(
                    caller,
                    [subscriptions, events, nsubscriptions, nevents],
                ))
            },
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    added
}

/// `poll_oneoff(in, out, nsubscriptions, nevents) -> errno`, blocking.
fn poll_oneoff(
    mut caller: Caller<'_, Host>,
    subscriptions: u32,
    events: u32,
    nsubscriptions: u32,
    nevents: u32,
) -> wasmtime::Result<i32> {
    let planned = match plan(
        &mut caller,
        [subscriptions, events, nsubscriptions, nevents],
    )? {
        Planned::Sleep(planned) => planned,
        Planned::Refused(errno) => return Ok(errno),
    };
    sleep_until(planned.wake, planned.timing.deadline)?;
    planned.write_events(&mut caller)?;
    Ok(0)
}

/// `poll_oneoff`, sleeping on the async runtime's timer.
async fn poll_oneoff_async(
    mut caller: Caller<'_, Host>,
    arguments: [u32; 4],
) -> wasmtime::Result<i32> {
    let planned = match plan(&mut caller, arguments)? {
        Planned::Sleep(planned) => planned,
        Planned::Refused(errno) => return Ok(errno),
    };
    sleep_until_async(planned.wake, planned.timing.deadline).await?;
    planned.write_events(&mut caller)?;
    Ok(0)
}

/// What a call does after its checks.
enum Planned {
    /// Returns this errno at once.
    Refused(i32),
    /// Sleeps, then writes the events.
    Sleep(Sleep),
}

/// A checked call waiting for its wake-up.
struct Sleep {
    call: Call,
    memory: Memory,
    timing: Timing,
    started: Now,
    /// When the earliest subscription is due (`None`: never).
    wake: Option<Instant>,
}

impl Sleep {
    /// Writes the events due now.
    fn write_events(&self, caller: &mut Caller<'_, Host>) -> wasmtime::Result<()> {
        self.call.write_events(
            self.memory.data_mut(caller),
            &self.timing,
            self.started,
            Instant::now(),
        )?;
        Ok(())
    }
}

/// Checks a call's `[in, out, nsubscriptions, nevents]` against the
/// guest's memory and finds when it wakes; an error is a trap.
fn plan(caller: &mut Caller<'_, Host>, arguments: [u32; 4]) -> wasmtime::Result<Planned> {
    let [subscriptions, events, nsubscriptions, nevents] = arguments;
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Err(BadMemory::NoMemory.into());
    };
    let timing = caller.data().timing;
    let started = Now::read();
    let planned = Call::new(
        memory.data(&*caller).len(),
        subscriptions,
        events,
        nsubscriptions,
        nevents,
    )
    .and_then(|call| {
        let wake = call.wake(memory.data(&*caller), &timing, started)?;
        Ok((call, wake))
    });
    match planned {
        Ok((call, wake)) => Ok(Planned::Sleep(Sleep {
            call,
            memory,
            timing,
            started,
            wake,
        })),
        Err(Refused::Errno(errno)) => Ok(Planned::Refused(i32::from(errno as u16))),
        Err(Refused::Trap(bad)) => Err(bad.into()),
    }
}

/// Sleeps until `wake` (forever if `None`), or fails at `deadline` if that
/// comes first. Returns at once if `wake` has passed, even after the
/// deadline: the guest then runs on until its epoch deadline stops it.
fn sleep_until(wake: Option<Instant>, deadline: Option<Instant>) -> Result<(), DeadlinePassed> {
    loop {
        match next_sleep(wake, deadline, Instant::now())? {
            Wait::Done => return Ok(()),
            Wait::Until(until) => std::thread::sleep(until - Instant::now().min(until)),
            Wait::Forever => std::thread::sleep(Duration::MAX),
        }
    }
}

/// [`sleep_until`] on the async runtime's timer.
async fn sleep_until_async(
    wake: Option<Instant>,
    deadline: Option<Instant>,
) -> Result<(), DeadlinePassed> {
    loop {
        match next_sleep(wake, deadline, Instant::now())? {
            Wait::Done => return Ok(()),
            // Tokio caps a timer at about two years; the loop sleeps again.
            Wait::Until(until) => tokio::time::sleep_until(until.into()).await,
            Wait::Forever => std::future::pending::<()>().await,
        }
    }
}

/// What a sleeping call does next at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Its wake-up is due: write the events.
    Done,
    /// Sleep until then (the wake-up or the deadline), and look again.
    Until(Instant),
    /// Nothing will wake it: no subscription is due and there is no
    /// deadline.
    Forever,
}

/// The next step of a call due at `wake` with `deadline`, at `now`.
fn next_sleep(
    wake: Option<Instant>,
    deadline: Option<Instant>,
    now: Instant,
) -> Result<Wait, DeadlinePassed> {
    if wake.is_some_and(|wake| wake <= now) {
        return Ok(Wait::Done);
    }
    if deadline.is_some_and(|deadline| deadline <= now) {
        return Err(DeadlinePassed);
    }
    Ok(match (wake, deadline) {
        (Some(wake), Some(deadline)) => Wait::Until(wake.min(deadline)),
        (Some(until), None) | (None, Some(until)) => Wait::Until(until),
        (None, None) => Wait::Forever,
    })
}

/// The moment a call started, on both WASI clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Now {
    instant: Instant,
    /// The realtime clock, in nanoseconds since the Unix epoch.
    unix_nanos: u64,
}

impl Now {
    fn read() -> Self {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            instant: Instant::now(),
            unix_nanos: u64::try_from(unix.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

/// A call's arguments, checked against the size of the guest's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    subscriptions: Range<usize>,
    events: Range<usize>,
    nevents: Range<usize>,
}

impl Call {
    /// Checks the arguments of a call: at least one subscription, and every
    /// array in bounds of a memory of `memory_len` bytes and aligned.
    fn new(
        memory_len: usize,
        subscriptions: u32,
        events: u32,
        nsubscriptions: u32,
        nevents: u32,
    ) -> Result<Self, Refused> {
        if nsubscriptions == 0 {
            return Err(Errno::Inval.into());
        }
        let array = |what, at: u32, count: u32, size: usize, align: usize| {
            let start = usize::try_from(at).map_err(|_| BadMemory::OutOfBounds { what, at })?;
            if start % align != 0 {
                return Err(BadMemory::Misaligned { what, at });
            }
            usize::try_from(count)
                .ok()
                .and_then(|count| count.checked_mul(size))
                .and_then(|len| start.checked_add(len))
                .filter(|&end| end <= memory_len)
                .map(|end| start..end)
                .ok_or(BadMemory::OutOfBounds { what, at })
        };
        Ok(Self {
            subscriptions: array(
                ARG_IN,
                subscriptions,
                nsubscriptions,
                SUBSCRIPTION_SIZE,
                RECORD_ALIGN,
            )?,
            events: array(ARG_OUT, events, nsubscriptions, EVENT_SIZE, RECORD_ALIGN)?,
            nevents: array(ARG_NEVENTS, nevents, 1, SIZE_SIZE, SIZE_SIZE)?,
        })
    }

    /// The subscriptions as they are in `memory` now.
    fn subscriptions<'m>(
        &self,
        memory: &'m [u8],
    ) -> Result<&'m [[u8; SUBSCRIPTION_SIZE]], BadMemory> {
        let bytes = memory
            .get(self.subscriptions.clone())
            .ok_or(BadMemory::OutOfBounds {
                what: ARG_IN,
                at: address(self.subscriptions.start),
            })?;
        Ok(bytes.as_chunks().0)
    }

    /// When the call should return: when the first subscription is ready
    /// (`None`: never). Checks every subscription.
    fn wake(&self, memory: &[u8], timing: &Timing, now: Now) -> Result<Option<Instant>, Refused> {
        let mut wake = None;
        for record in self.subscriptions(memory)? {
            let ready = Subscription::parse(record)?.ready_at(timing, now);
            wake = match (wake, ready) {
                (Some(wake), Some(ready)) => Some(ready.min(wake)),
                (wake, ready) => wake.or(ready),
            };
        }
        Ok(wake)
    }

    /// Writes, in order, an event for every subscription ready at
    /// `finished` of a call that started at `started`, and their number.
    fn write_events(
        &self,
        memory: &mut [u8],
        timing: &Timing,
        started: Now,
        finished: Instant,
    ) -> Result<(), BadMemory> {
        let mut count = 0;
        for index in 0..self.subscriptions.len() / SUBSCRIPTION_SIZE {
            // Read again, one at a time: the events may overwrite them.
            let Some(record) = self.subscriptions(memory)?.get(index).copied() else {
                break;
            };
            // Only an event written over it can make it invalid now.
            let Ok(subscription) = Subscription::parse(&record) else {
                continue;
            };
            if subscription
                .ready_at(timing, started)
                .is_some_and(|ready| ready <= finished)
            {
                let at = self.events.start + count * EVENT_SIZE;
                let slot = memory
                    .get_mut(at..at + EVENT_SIZE)
                    .ok_or(BadMemory::OutOfBounds {
                        what: ARG_OUT,
                        at: address(self.events.start),
                    })?;
                slot.copy_from_slice(&subscription.event());
                count += 1;
            }
        }
        let nevents = memory
            .get_mut(self.nevents.clone())
            .ok_or(BadMemory::OutOfBounds {
                what: ARG_NEVENTS,
                at: address(self.nevents.start),
            })?;
        // At most `nsubscriptions`, a `u32`.
        nevents.copy_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
        Ok(())
    }
}

/// A checked address back in the guest's terms, for error messages.
fn address(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// One subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subscription {
    userdata: u64,
    kind: Kind,
}

/// What a subscription waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A clock to reach a time.
    Clock(Due),
    /// Stdin to be readable.
    Stdin,
    /// Stdout or stderr to be writable.
    Output,
}

/// When a clock subscription is due, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// This long after the call (on either clock: both run at real speed).
    After(u64),
    /// When the monotonic clock reads this.
    Monotonic(u64),
    /// When the realtime clock reads this: time since the Unix epoch.
    Realtime(u64),
}

impl Subscription {
    /// Parses a `subscription` record.
    fn parse(record: &[u8; SUBSCRIPTION_SIZE]) -> Result<Self, Errno> {
        let record = Record(record);
        let userdata = u64::from_le_bytes(record.field::<0, 8>());
        let [tag] = record.field::<8, 1>();
        let kind = match tag {
            EVENTTYPE_CLOCK => {
                let id = u32::from_le_bytes(record.field::<16, 4>());
                let timeout = u64::from_le_bytes(record.field::<24, 8>());
                let flags = u16::from_le_bytes(record.field::<40, 2>());
                if flags & !ABSTIME != 0 {
                    return Err(Errno::Inval);
                }
                let due = match (id, flags & ABSTIME != 0) {
                    (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => Due::After(timeout),
                    (CLOCK_MONOTONIC, true) => Due::Monotonic(timeout),
                    (CLOCK_REALTIME, true) => Due::Realtime(timeout),
                    // The CPU-time clocks, and clocks that do not exist.
                    _ => return Err(Errno::Inval),
                };
                Kind::Clock(due)
            }
            EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => {
                let fd = u32::from_le_bytes(record.field::<16, 4>());
                match (tag, fd) {
                    (EVENTTYPE_FD_READ, 0) => Kind::Stdin,
                    (EVENTTYPE_FD_WRITE, 1 | 2) => Kind::Output,
                    _ => return Err(Errno::Badf),
                }
            }
            _ => return Err(Errno::Inval),
        };
        Ok(Self { userdata, kind })
    }

    /// When it is ready, for a call made at `now`; `None` if never (a time
    /// too far away for an `Instant`).
    fn ready_at(&self, timing: &Timing, now: Now) -> Option<Instant> {
        let Kind::Clock(due) = self.kind else {
            return Some(now.instant);
        };
        match due {
            Due::After(nanos) => now.instant.checked_add(Duration::from_nanos(nanos)),
            Due::Monotonic(nanos) => timing
                .monotonic_origin
                .checked_add(Duration::from_nanos(nanos)),
            Due::Realtime(nanos) => now
                .instant
                .checked_add(Duration::from_nanos(nanos.saturating_sub(now.unix_nanos))),
        }
    }

    /// Its `event` record, once ready.
    fn event(&self) -> [u8; EVENT_SIZE] {
        let (event_type, nbytes) = match self.kind {
            Kind::Clock(_) => (EVENTTYPE_CLOCK, 0),
            Kind::Stdin => (EVENTTYPE_FD_READ, STDIO_NBYTES),
            Kind::Output => (EVENTTYPE_FD_WRITE, STDIO_NBYTES),
        };
        let mut event = [0; EVENT_SIZE];
        let mut record = RecordMut(&mut event);
        record.set::<0, 8>(self.userdata.to_le_bytes());
        // error (u16 @8) is 0, success; fd_readwrite.flags (u16 @24) empty.
        record.set::<10, 1>([event_type]);
        record.set::<16, 8>(nbytes.to_le_bytes());
        event
    }
}

/// A WASI record read at fixed offsets, checked when compiled.
struct Record<'a, const N: usize>(&'a [u8; N]);

impl<const N: usize> Record<'_, N> {
    /// The `W` bytes at offset `AT`.
    fn field<const AT: usize, const W: usize>(&self) -> [u8; W] {
        const { assert!(AT + W <= N, "field outside its record") };
        std::array::from_fn(|i| self.0[AT + i])
    }
}

/// A WASI record written at fixed offsets, checked when compiled.
struct RecordMut<'a, const N: usize>(&'a mut [u8; N]);

impl<const N: usize> RecordMut<'_, N> {
    /// Sets the `W` bytes at offset `AT`.
    fn set<const AT: usize, const W: usize>(&mut self, bytes: [u8; W]) {
        const { assert!(AT + W <= N, "field outside its record") };
        self.0[AT..AT + W].copy_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBS: u32 = 64;
    const EVENTS: u32 = 512;
    const NEVENTS: u32 = 1024;

    fn clock(userdata: u64, id: u32, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut record = [0; SUBSCRIPTION_SIZE];
        record[..8].copy_from_slice(&userdata.to_le_bytes());
        record[8] = EVENTTYPE_CLOCK;
        record[16..20].copy_from_slice(&id.to_le_bytes());
        record[24..32].copy_from_slice(&timeout.to_le_bytes());
        record[32..40].copy_from_slice(&1_000u64.to_le_bytes());
        record[40..42].copy_from_slice(&flags.to_le_bytes());
        record
    }

    fn fd(userdata: u64, tag: u8, fd: u32) -> [u8; SUBSCRIPTION_SIZE] {
        let mut record = [0; SUBSCRIPTION_SIZE];
        record[..8].copy_from_slice(&userdata.to_le_bytes());
        record[8] = tag;
        record[16..20].copy_from_slice(&fd.to_le_bytes());
        record
    }

    /// A memory holding `subscriptions` at [`SUBS`].
    fn memory_with(subscriptions: &[[u8; SUBSCRIPTION_SIZE]]) -> Vec<u8> {
        let mut memory = vec![0xaa; 2048];
        for (i, record) in subscriptions.iter().enumerate() {
            let at = SUBS as usize + i * SUBSCRIPTION_SIZE;
            memory[at..at + SUBSCRIPTION_SIZE].copy_from_slice(record);
        }
        memory
    }

    fn call(memory: &[u8], n: u32) -> Call {
        Call::new(memory.len(), SUBS, EVENTS, n, NEVENTS).expect("valid call")
    }

    fn timing(now: Now) -> Timing {
        Timing::new(now.instant, Duration::from_secs(1))
    }

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_nanos: 1_795_000_000_000_000_000,
        }
    }

    /// The events written, as (userdata, error, type, nbytes, flags).
    fn events_in(memory: &[u8]) -> Vec<(u64, u16, u8, u64, u16)> {
        let count = u32::from_le_bytes(
            memory[NEVENTS as usize..NEVENTS as usize + 4]
                .try_into()
                .expect("4 bytes"),
        );
        (0..count as usize)
            .map(|i| {
                let e = &memory[EVENTS as usize + i * EVENT_SIZE..][..EVENT_SIZE];
                let u64_at = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().expect("8"));
                let u16_at = |at: usize| u16::from_le_bytes(e[at..at + 2].try_into().expect("2"));
                (u64_at(0), u16_at(8), e[10], u64_at(16), u16_at(24))
            })
            .collect()
    }

    #[test]
    fn records_have_the_witx_layout() {
        let parsed = Subscription::parse(&clock(7, CLOCK_MONOTONIC, 50, 0)).expect("clock");
        assert_eq!(
            parsed,
            Subscription {
                userdata: 7,
                kind: Kind::Clock(Due::After(50)),
            }
        );
        let abs = Subscription::parse(&clock(8, CLOCK_REALTIME, 9, ABSTIME)).expect("clock");
        assert_eq!(abs.kind, Kind::Clock(Due::Realtime(9)));
        let abs = Subscription::parse(&clock(8, CLOCK_MONOTONIC, 9, ABSTIME)).expect("clock");
        assert_eq!(abs.kind, Kind::Clock(Due::Monotonic(9)));
        let event = Subscription::parse(&fd(0x0102_0304_0506_0708, EVENTTYPE_FD_WRITE, 2))
            .expect("fd")
            .event();
        let mut expected = [0; EVENT_SIZE];
        expected[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        expected[10] = EVENTTYPE_FD_WRITE;
        expected[16] = 1;
        assert_eq!(event, expected);
    }

    #[test]
    fn undefined_subscriptions_are_inval_and_other_descriptors_badf() {
        let parse = |record| Subscription::parse(&record).map(|_| ());
        assert_eq!(
            parse(clock(0, 2, 1, 0)),
            Err(Errno::Inval),
            "process CPU time"
        );
        assert_eq!(
            parse(clock(0, 3, 1, 0)),
            Err(Errno::Inval),
            "thread CPU time"
        );
        assert_eq!(parse(clock(0, 99, 1, 0)), Err(Errno::Inval));
        assert_eq!(parse(clock(0, CLOCK_MONOTONIC, 1, 2)), Err(Errno::Inval));
        assert_eq!(parse(fd(0, 3, 0)), Err(Errno::Inval), "no event type 3");
        assert_eq!(parse(fd(0, EVENTTYPE_FD_READ, 0)), Ok(()));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_WRITE, 1)), Ok(()));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_WRITE, 2)), Ok(()));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_READ, 1)), Err(Errno::Badf));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_WRITE, 0)), Err(Errno::Badf));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_READ, 3)), Err(Errno::Badf));
        assert_eq!(parse(fd(0, EVENTTYPE_FD_WRITE, u32::MAX)), Err(Errno::Badf));
    }

    #[test]
    fn arguments_are_checked_before_anything_else() {
        let len = 4096;
        let new = |subs, events, n, nevents| Call::new(len, subs, events, n, nevents);
        assert_eq!(new(SUBS, EVENTS, 0, NEVENTS), Err(Errno::Inval.into()));
        let out_of_bounds = |what, at| Err(Refused::Trap(BadMemory::OutOfBounds { what, at }));
        assert_eq!(
            new(4096 - 40, EVENTS, 1, NEVENTS),
            out_of_bounds(ARG_IN, 4096 - 40)
        );
        assert_eq!(
            new(SUBS, EVENTS, u32::MAX, NEVENTS),
            out_of_bounds(ARG_IN, SUBS)
        );
        assert_eq!(
            new(SUBS, u32::MAX - 7, 1, NEVENTS),
            out_of_bounds(ARG_OUT, u32::MAX - 7)
        );
        assert_eq!(new(SUBS, EVENTS, 1, 4096), out_of_bounds(ARG_NEVENTS, 4096));
        let misaligned = |what, at| Err(Refused::Trap(BadMemory::Misaligned { what, at }));
        assert_eq!(
            new(SUBS + 4, EVENTS, 1, NEVENTS),
            misaligned(ARG_IN, SUBS + 4)
        );
        assert_eq!(
            new(SUBS, EVENTS + 1, 1, NEVENTS),
            misaligned(ARG_OUT, EVENTS + 1)
        );
        assert_eq!(
            new(SUBS, EVENTS, 1, NEVENTS + 2),
            misaligned(ARG_NEVENTS, NEVENTS + 2)
        );
        assert_eq!(
            new(4096 - 48, 4096 - 32, 1, 4096 - 4).map(|call| call.nevents),
            Ok(4092..4096),
            "arrays may end at the end of memory"
        );
    }

    #[test]
    fn clocks_are_due_relative_to_the_call_or_absolute() {
        let now = now();
        let timing = timing(now);
        let ready = |record| {
            Subscription::parse(&record)
                .expect("valid")
                .ready_at(&timing, now)
        };
        let ms = |ms| Duration::from_millis(ms);
        let in_50ms = Some(now.instant + ms(50));
        assert_eq!(ready(clock(0, CLOCK_MONOTONIC, 50_000_000, 0)), in_50ms);
        assert_eq!(ready(clock(0, CLOCK_REALTIME, 50_000_000, 0)), in_50ms);
        assert_eq!(
            ready(clock(0, CLOCK_MONOTONIC, 70_000_000, ABSTIME)),
            Some(timing.monotonic_origin + ms(70))
        );
        assert_eq!(
            ready(clock(
                0,
                CLOCK_REALTIME,
                now.unix_nanos + 50_000_000,
                ABSTIME
            )),
            in_50ms
        );
        assert_eq!(
            ready(clock(0, CLOCK_REALTIME, 1, ABSTIME)),
            Some(now.instant),
            "a time in the past is now"
        );
        assert_eq!(ready(clock(0, CLOCK_MONOTONIC, u64::MAX, 0)), {
            now.instant.checked_add(Duration::from_nanos(u64::MAX))
        });
        assert_eq!(ready(fd(0, EVENTTYPE_FD_READ, 0)), Some(now.instant));
    }

    #[test]
    fn the_call_wakes_for_its_first_ready_subscription() {
        let now = now();
        let timing = timing(now);
        let memory = memory_with(&[
            clock(1, CLOCK_MONOTONIC, 90_000_000, 0),
            clock(2, CLOCK_MONOTONIC, 30_000_000, 0),
            clock(3, CLOCK_REALTIME, 60_000_000, 0),
        ]);
        let wake = call(&memory, 3).wake(&memory, &timing, now);
        assert_eq!(wake, Ok(Some(now.instant + Duration::from_millis(30))));

        let memory = memory_with(&[
            clock(1, CLOCK_MONOTONIC, 90_000_000, 0),
            fd(2, EVENTTYPE_FD_WRITE, 1),
        ]);
        let wake = call(&memory, 2).wake(&memory, &timing, now);
        assert_eq!(wake, Ok(Some(now.instant)), "stdout is always ready");

        let memory = memory_with(&[
            clock(1, CLOCK_MONOTONIC, 10, 0),
            fd(2, EVENTTYPE_FD_READ, 4),
        ]);
        let wake = call(&memory, 2).wake(&memory, &timing, now);
        assert_eq!(
            wake,
            Err(Errno::Badf.into()),
            "every subscription is checked"
        );
    }

    #[test]
    fn events_are_written_for_ready_subscriptions_in_order() {
        let now = now();
        let timing = timing(now);
        let mut memory = memory_with(&[
            clock(1, CLOCK_MONOTONIC, 90_000_000, 0),
            fd(2, EVENTTYPE_FD_READ, 0),
            clock(3, CLOCK_MONOTONIC, 0, 0),
            fd(4, EVENTTYPE_FD_WRITE, 2),
        ]);
        call(&memory, 4)
            .write_events(&mut memory, &timing, now, now.instant)
            .expect("in bounds");
        assert_eq!(
            events_in(&memory),
            [
                (2, 0, EVENTTYPE_FD_READ, 1, 0),
                (3, 0, EVENTTYPE_CLOCK, 0, 0),
                (4, 0, EVENTTYPE_FD_WRITE, 1, 0),
            ]
        );

        let later = now.instant + Duration::from_millis(90);
        call(&memory, 4)
            .write_events(&mut memory, &timing, now, later)
            .expect("in bounds");
        assert_eq!(events_in(&memory).len(), 4);
        assert_eq!(events_in(&memory)[0], (1, 0, EVENTTYPE_CLOCK, 0, 0));
    }

    #[test]
    fn events_written_over_the_subscriptions_never_exceed_them() {
        // `out` starts at the second subscription: each event written
        // clobbers subscriptions still to be read.
        let now = now();
        let timing = timing(now);
        let subs: Vec<_> = (0..8).map(|i| fd(i, EVENTTYPE_FD_WRITE, 1)).collect();
        let mut memory = memory_with(&subs);
        let out = SUBS + SUBSCRIPTION_SIZE as u32;
        let call = Call::new(memory.len(), SUBS, out, 8, NEVENTS).expect("valid");
        call.write_events(&mut memory, &timing, now, now.instant)
            .expect("in bounds");
        let count = u32::from_le_bytes(memory[1024..1028].try_into().expect("4"));
        assert!(count <= 8, "{count}");
    }

    #[test]
    fn arbitrary_guest_memory_never_panics() {
        // xorshift64*: deterministic noise for every byte the guest controls.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let now = now();
        let timing = timing(now);
        let (mut refused, mut written) = (0, 0);
        for _ in 0..2_000 {
            let mut memory: Vec<u8> = (0..1056).map(|_| next() as u8).collect();
            // Records at multiples of 48 are mostly plausible (tags 0 to 3,
            // clocks and descriptors 0 to 2, flags 0 or 1, timeouts under
            // 4.3 s), so that many calls get past the checks.
            for record in memory.as_chunks_mut::<SUBSCRIPTION_SIZE>().0 {
                record[8] %= 4;
                record[16] %= 3;
                record[17..20].fill(0);
                record[28..32].fill(0);
                record[40] %= 2;
                record[41] = 0;
            }
            let subs = (next() % 22) as u32 * SUBSCRIPTION_SIZE as u32;
            let events = (next() % 1100) as u32 & !7;
            let nevents = (next() % 1100) as u32 & !3;
            let n = (next() % 8) as u32;
            let call = match Call::new(memory.len(), subs, events, n, nevents) {
                Ok(call) => call,
                Err(_) => {
                    refused += 1;
                    continue;
                }
            };
            match call.wake(&memory, &timing, now) {
                Ok(_) => {
                    let finished = now.instant + Duration::from_secs(next() % 5);
                    call.write_events(&mut memory, &timing, now, finished)
                        .expect("checked bounds hold");
                    written += 1;
                }
                Err(_) => refused += 1,
            }
        }
        assert!(written > 100 && refused > 100, "{written} {refused}");
    }

    #[test]
    fn sleeps_end_at_the_wake_time_or_fail_at_the_deadline() {
        let start = Instant::now();
        let soon = start + Duration::from_millis(20);
        assert_eq!(
            sleep_until(Some(soon), Some(soon + Duration::from_secs(60))),
            Ok(())
        );
        assert!(Instant::now() >= soon);

        let start = Instant::now();
        let deadline = start + Duration::from_millis(20);
        let an_hour = start + Duration::from_secs(3600);
        assert_eq!(
            sleep_until(Some(an_hour), Some(deadline)),
            Err(DeadlinePassed)
        );
        assert_eq!(sleep_until(None, Some(deadline)), Err(DeadlinePassed));
        assert!(Instant::now() >= deadline);

        // A time already passed returns even after the deadline.
        assert_eq!(sleep_until(Some(start), Some(deadline)), Ok(()));
    }

    #[test]
    fn the_guest_monotonic_clock_counts_from_the_origin() {
        let origin = Instant::now() - Duration::from_secs(2);
        let timing = Timing::new(origin, Duration::from_secs(5));
        assert_eq!(timing.deadline, Some(origin + Duration::from_secs(5)));
        let clock = timing.clock();
        assert!(clock.now() >= 2_000_000_000);
        assert!(clock.resolution() > 0);
        assert_eq!(Timing::new(origin, Duration::MAX).deadline, None);
    }
}
