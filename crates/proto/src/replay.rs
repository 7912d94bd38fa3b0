//! Replay guards.
//!
//! * [`ReplayWindow`]: accepts each (scope, nonce) once within a time
//!   window, refuses requests that are too old, from the future, or older
//!   than the window's own start (whose earlier nonces it cannot know). The
//!   broker's, for requests any enclave of an action could open.
//! * [`CounterWindow`]: accepts each counter of one numbered stream once
//!   (a session's requests, which only one enclave can open).
//!
//! After a start a [`ReplayWindow`] knows nothing of what was accepted
//! before, and a request accepted then may carry a timestamp up to the old
//! clock plus the allowed skew; so it refuses everything stamped before its
//! start plus that skew (its floor), with the floor in the refusal
//! ([`ReplayError::PredatesStart`]) so that an honest client re-stamps at it
//! (which the future bound still allows) and retries once.
//!
//! Pure state: the caller passes the current time in. The cut-off only ever
//! moves forward (it follows the largest time seen), so turning a clock back
//! cannot make an evicted nonce acceptable again.
//!
//! It is on the path of every confidential request and holds every nonce of
//! the last minutes (hundreds of thousands under load), so an entry is a
//! fixed 16 bytes and entries leave in the order they came: a nonce is
//! forgotten once the cut-off has passed the latest timestamp it could
//! carry (accepted time + allowed skew), never before.

use std::collections::{HashSet, VecDeque};

use sha2::{Digest as _, Sha256};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The nonce was already accepted in this scope.
    #[error("replayed request: this nonce was already used")]
    Replayed,
    /// The timestamp is older than the window.
    #[error("stale request: its timestamp is older than the replay window")]
    Stale,
    /// The timestamp is too far in the future.
    #[error("request timestamp is in the future")]
    Future,
    /// The timestamp is below the window's floor (its start plus the
    /// allowed skew: a broker restarted and cannot know what it accepted
    /// before); a request stamped at or after `floor_ms` will be accepted.
    #[error(
        "request is stamped before {floor_ms}, the replay guard's floor since it restarted: seal it again, stamped at or after it"
    )]
    PredatesStart {
        /// The earliest timestamp the window accepts, epoch ms.
        floor_ms: u64,
    },
    /// The counter is too far below the highest one accepted for its
    /// stream to tell whether it was seen; a fresh request will be accepted.
    #[error("request counter is below the replay window; seal it again")]
    BelowWindow,
}

/// Counters below the highest accepted one that a [`CounterWindow`] still
/// tells apart: how far a stream's messages may arrive out of order.
pub const COUNTER_WINDOW: u64 = 2048;
const COUNTER_WORDS: usize = (COUNTER_WINDOW / 64) as usize;

/// Each counter of one numbered stream accepted once: the highest accepted
/// counter and a bitmap of the [`COUNTER_WINDOW`] counters up to it, as
/// IPsec's anti-replay window (RFC 4303, section 3.4.3) keeps them.
/// Counters further below are refused ([`ReplayError::BelowWindow`]), so the
/// state is fixed-size however long the stream runs.
///
/// Check a counter only after its message authenticated: a forged counter
/// would otherwise move the window.
#[derive(Debug, Clone)]
pub struct CounterWindow {
    highest: u64,
    /// Bit `c % COUNTER_WINDOW` is set when counter `c` (within the window)
    /// was accepted.
    seen: [u64; COUNTER_WORDS],
}

impl Default for CounterWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl CounterWindow {
    /// A window that has accepted nothing.
    pub fn new() -> Self {
        Self {
            highest: 0,
            seen: [0; COUNTER_WORDS],
        }
    }

    /// Accepts `counter` once.
    pub fn accept(&mut self, counter: u64) -> Result<(), ReplayError> {
        if counter > self.highest {
            // Forget the counters that slide out of the window.
            let advance = counter - self.highest;
            if advance >= COUNTER_WINDOW {
                self.seen = [0; COUNTER_WORDS];
            } else {
                for skipped in self.highest + 1..=counter {
                    self.clear(skipped);
                }
            }
            self.highest = counter;
        } else if self.highest - counter >= COUNTER_WINDOW {
            return Err(ReplayError::BelowWindow);
        } else if self.is_set(counter) {
            return Err(ReplayError::Replayed);
        }
        self.set(counter);
        Ok(())
    }

    fn position(counter: u64) -> (usize, u64) {
        let bit = counter % COUNTER_WINDOW;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, mask) = Self::position(counter);
        self.seen[word] & mask != 0
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::position(counter);
        self.seen[word] |= mask;
    }

    fn clear(&mut self, counter: u64) {
        let (word, mask) = Self::position(counter);
        self.seen[word] &= !mask;
    }
}

/// Nonces seen within the window.
#[derive(Debug)]
pub struct ReplayWindow {
    window_ms: u64,
    max_skew_ms: u64,
    started_ms: u64,
    high_water_ms: u64,
    seen: HashSet<NonceKey>,
    /// The keys of `seen` in the order they were accepted, each with the
    /// time after which it can be forgotten.
    expiries: VecDeque<(u64, NonceKey)>,
}

/// A (scope, nonce) pair: SHA-256 of both, truncated to 128 bits. Fixed
/// size, so remembering one allocates nothing; collisions are out of reach.
type NonceKey = [u8; 16];

fn nonce_key(scope: &str, nonce: &[u8; 16]) -> NonceKey {
    // The nonce has a fixed length, so `scope ‖ nonce` is unambiguous.
    let digest = Sha256::new()
        .chain_update(scope.as_bytes())
        .chain_update(nonce)
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

impl ReplayWindow {
    /// A window of `window_ms` starting now, allowing `max_skew_ms` of clock
    /// skew into the future. It refuses everything stamped before
    /// `now_ms + max_skew_ms` (see [`ReplayWindow::floor_ms`]): a request
    /// accepted before this start, by a window now forgotten, cannot carry a
    /// later timestamp, as long as the clock did not go back across the
    /// restart.
    pub fn new(now_ms: u64, window_ms: u64, max_skew_ms: u64) -> Self {
        Self::with_floor(
            now_ms.saturating_add(max_skew_ms),
            now_ms,
            window_ms,
            max_skew_ms,
        )
    }

    /// A window that accepts timestamps from `floor_ms` on. Only for
    /// requests whose replay after a restart is harmless (the broker's
    /// client requests, whose every answer is sealed under a fresh salt).
    pub fn with_floor(floor_ms: u64, now_ms: u64, window_ms: u64, max_skew_ms: u64) -> Self {
        Self {
            window_ms,
            max_skew_ms,
            started_ms: floor_ms,
            high_water_ms: now_ms,
            seen: HashSet::new(),
            expiries: VecDeque::new(),
        }
    }

    /// Accepts `(scope, nonce)` stamped `timestamp_ms` once.
    pub fn check(
        &mut self,
        scope: &str,
        nonce: [u8; 16],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        self.high_water_ms = self.high_water_ms.max(now_ms);
        let cutoff = self.high_water_ms.saturating_sub(self.window_ms);
        self.evict();
        if timestamp_ms < self.started_ms {
            return Err(ReplayError::PredatesStart {
                floor_ms: self.started_ms,
            });
        }
        if timestamp_ms < cutoff {
            return Err(ReplayError::Stale);
        }
        if timestamp_ms > self.high_water_ms.saturating_add(self.max_skew_ms) {
            return Err(ReplayError::Future);
        }
        let key = nonce_key(scope, &nonce);
        if !self.seen.insert(key) {
            return Err(ReplayError::Replayed);
        }
        // The timestamp is at most `high_water_ms + max_skew_ms`, and a
        // replay of it is stale once the cut-off passes it.
        let expiry = self
            .high_water_ms
            .saturating_add(self.max_skew_ms)
            .saturating_add(self.window_ms);
        self.expiries.push_back((expiry, key));
        Ok(())
    }

    /// Forgets the nonces no request inside the window can carry any more.
    fn evict(&mut self) {
        while let Some(&(expiry, key)) = self.expiries.front() {
            if expiry >= self.high_water_ms {
                break;
            }
            self.expiries.pop_front();
            self.seen.remove(&key);
        }
    }

    /// The earliest timestamp this window accepts, epoch ms.
    pub fn floor_ms(&self) -> u64 {
        self.started_ms
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_accepted_once_in_any_order_within_the_window() {
        let mut window = CounterWindow::new();
        for counter in [1, 3, 2, 10, 4] {
            window.accept(counter).expect("first time");
        }
        for counter in [1, 2, 3, 4, 10] {
            assert_eq!(window.accept(counter), Err(ReplayError::Replayed));
        }
        window.accept(5).expect("a gap is filled later");
    }

    #[test]
    fn counters_below_the_window_are_refused_and_slid_out_bits_cleared() {
        let mut window = CounterWindow::new();
        window.accept(1).expect("first");
        window.accept(COUNTER_WINDOW).expect("still inside");
        assert_eq!(window.accept(1), Err(ReplayError::Replayed));
        window.accept(COUNTER_WINDOW + 1).expect("moves the window");
        // Counter 1 left the window: not accepted again, whatever its bit.
        assert_eq!(window.accept(1), Err(ReplayError::BelowWindow));
        // Counter 2 was never seen and is still inside.
        window.accept(2).expect("inside the window");
        // Counters 1, COUNTER_WINDOW + 1 and 2 * COUNTER_WINDOW + 1 share a
        // bit: sliding the window must clear it for each in turn.
        assert_eq!(
            window.accept(COUNTER_WINDOW + 1),
            Err(ReplayError::Replayed)
        );
        window
            .accept(3 * COUNTER_WINDOW)
            .expect("a jump past the window");
        assert_eq!(
            window.accept(COUNTER_WINDOW + 1),
            Err(ReplayError::BelowWindow)
        );
        window
            .accept(2 * COUNTER_WINDOW + 1)
            .expect("inside and never seen, though its bit was set before the jump");
        assert_eq!(
            window.accept(3 * COUNTER_WINDOW),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn accepts_once_and_refuses_replays() {
        let mut window = ReplayWindow::with_floor(0, 10_000, 1_000, 100);
        window.check("a", [1; 16], 10_000, 10_000).expect("first");
        assert_eq!(
            window.check("a", [1; 16], 10_000, 10_001),
            Err(ReplayError::Replayed)
        );
        window
            .check("b", [1; 16], 10_000, 10_001)
            .expect("other scope");
    }

    #[test]
    fn refuses_stale_future_and_pre_start_requests() {
        let mut window = ReplayWindow::with_floor(10_000, 10_000, 1_000, 100);
        assert_eq!(
            window.check("a", [1; 16], 9_000, 10_000),
            Err(ReplayError::PredatesStart { floor_ms: 10_000 })
        );
        assert_eq!(
            window.check("a", [2; 16], 10_200, 10_000),
            Err(ReplayError::Future)
        );
        window.check("a", [3; 16], 10_050, 10_050).expect("fresh");
        assert_eq!(
            window.check("a", [4; 16], 10_100, 12_000),
            Err(ReplayError::Stale)
        );
    }

    #[test]
    fn after_a_start_nothing_stamped_before_start_plus_skew_passes() {
        // Before the restart (clock at most 9_999), a request could be
        // stamped up to 9_999 + 100 and accepted; the new window forgot it.
        let mut window = ReplayWindow::new(10_000, 1_000, 100);
        assert_eq!(window.floor_ms(), 10_100);
        for stamped in [9_950, 10_000, 10_099] {
            assert_eq!(
                window.check("a", [1; 16], stamped, 10_000),
                Err(ReplayError::PredatesStart { floor_ms: 10_100 }),
                "stamped {stamped}"
            );
        }
        // An honest client re-stamps at the floor: the future bound allows it.
        window
            .check("a", [2; 16], 10_100, 10_000)
            .expect("re-stamped at the floor");
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let mut window = ReplayWindow::new(u64::MAX - 1, u64::MAX, u64::MAX);
        assert!(window.check("a", [1; 16], u64::MAX, u64::MAX).is_ok());
        let mut window = ReplayWindow::new(0, 1_000, 100);
        assert_eq!(
            window.check("a", [1; 16], u64::MAX, 0),
            Err(ReplayError::Future)
        );
        assert_eq!(
            window.check("a", [1; 16], 0, u64::MAX),
            Err(ReplayError::PredatesStart { floor_ms: 100 })
        );
    }

    #[test]
    fn evicts_old_nonces_and_never_moves_the_cutoff_back() {
        let mut window = ReplayWindow::with_floor(0, 10_000, 1_000, 100);
        window.check("a", [1; 16], 10_000, 10_000).expect("first");
        window.check("a", [2; 16], 11_500, 11_500).expect("later");
        assert_eq!(window.len(), 1, "the first nonce left the window");
        // A clock turned back does not reopen the window for the old nonce.
        assert_eq!(
            window.check("a", [1; 16], 10_000, 10_000),
            Err(ReplayError::Stale)
        );
    }

    #[test]
    fn a_nonce_from_the_future_is_remembered_until_its_replay_is_stale() {
        let mut window = ReplayWindow::with_floor(0, 10_000, 1_000, 100);
        // Stamped 100 ms ahead (within the allowed skew).
        window.check("a", [1; 16], 10_100, 10_000).expect("first");
        // The cut-off (10_050) has not passed it: still a replay.
        assert_eq!(
            window.check("a", [1; 16], 10_100, 11_050),
            Err(ReplayError::Replayed)
        );
        // Once it has, the request is stale, and the nonce forgotten.
        assert_eq!(
            window.check("a", [1; 16], 10_100, 11_150),
            Err(ReplayError::Stale)
        );
        assert!(window.is_empty());
    }
}
