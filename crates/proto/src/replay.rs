//! The replay window: accepts each (scope, nonce) once within a time
//! window, refuses requests that are too old, from the future, or older than
//! the window's own start (whose earlier nonces it cannot know).
//!
//! Pure state: the caller passes the current time in. The cut-off only ever
//! moves forward (it follows the largest time seen), so turning a clock back
//! cannot make an evicted nonce acceptable again.

use std::collections::{BTreeSet, HashSet};

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
    /// The timestamp predates this window's start (e.g. a broker restart);
    /// a fresh request will be accepted.
    #[error("request predates the replay guard's start; seal it again")]
    PredatesStart,
}

/// Nonces seen within the window.
#[derive(Debug)]
pub struct ReplayWindow {
    window_ms: u64,
    max_skew_ms: u64,
    started_ms: u64,
    high_water_ms: u64,
    seen: HashSet<(String, [u8; 16])>,
    by_time: BTreeSet<(u64, String, [u8; 16])>,
}

impl ReplayWindow {
    /// A window of `window_ms` starting now, allowing `max_skew_ms` of clock
    /// skew into the future.
    pub fn new(now_ms: u64, window_ms: u64, max_skew_ms: u64) -> Self {
        Self {
            window_ms,
            max_skew_ms,
            started_ms: now_ms.saturating_sub(max_skew_ms),
            high_water_ms: now_ms,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
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
        self.evict(cutoff);
        if timestamp_ms < self.started_ms {
            return Err(ReplayError::PredatesStart);
        }
        if timestamp_ms < cutoff {
            return Err(ReplayError::Stale);
        }
        if timestamp_ms > self.high_water_ms.saturating_add(self.max_skew_ms) {
            return Err(ReplayError::Future);
        }
        let key = (scope.to_owned(), nonce);
        if !self.seen.insert(key.clone()) {
            return Err(ReplayError::Replayed);
        }
        self.by_time.insert((timestamp_ms, key.0, key.1));
        Ok(())
    }

    fn evict(&mut self, cutoff: u64) {
        while let Some(first) = self.by_time.first() {
            if first.0 >= cutoff {
                break;
            }
            if let Some((_, scope, nonce)) = self.by_time.pop_first() {
                self.seen.remove(&(scope, nonce));
            }
        }
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
    fn accepts_once_and_refuses_replays() {
        let mut window = ReplayWindow::new(10_000, 1_000, 100);
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
        let mut window = ReplayWindow::new(10_000, 1_000, 100);
        assert_eq!(
            window.check("a", [1; 16], 9_000, 10_000),
            Err(ReplayError::PredatesStart)
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
    fn evicts_old_nonces_and_never_moves_the_cutoff_back() {
        let mut window = ReplayWindow::new(10_000, 1_000, 100);
        window.check("a", [1; 16], 10_000, 10_000).expect("first");
        window.check("a", [2; 16], 11_500, 11_500).expect("later");
        assert_eq!(window.len(), 1, "the first nonce left the window");
        // A clock turned back does not reopen the window for the old nonce.
        assert_eq!(
            window.check("a", [1; 16], 10_000, 10_000),
            Err(ReplayError::Stale)
        );
    }
}
