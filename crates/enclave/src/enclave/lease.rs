//! The admission lease of session requests: after the broker admits one
//! request of an action's grant at some version, for some delegate (or
//! none), the enclave admits later session requests in the same scope
//! itself for a short while, instead of asking the broker for each.
//!
//! What a session request's admission checks at the broker is only that
//! the version is still current, that a delegate is still delegated and
//! that the request's stamp is not too old or too far ahead (replays are
//! the session's own counter window, inside the enclave). The lease keeps
//! the last two by bounding stamps near the one the broker checked, and
//! trades the first for speed: an update or a revocation reaches session
//! requests after at most [`SESSION_LEASE`] or [`SESSION_LEASE_USES`]
//! requests, whichever comes first (the count holds even against a host
//! that stalls the enclave's clock). Invocations, which consume a nonce at
//! the broker, are never leased.
//!
//! The host carries admissions and their answers, and can hold an answer
//! back past an update or a revocation. So a lease runs from when its
//! admission was asked, not from when the answer came, and an answer
//! starts one only if its admission was asked after the current lease
//! started, and is good only for the requests no lease admitted since it
//! was asked ([`SessionLeases`]): answers held back give at most one lease
//! after a change, which ends [`SESSION_LEASE`] after its admission was
//! asked (by the enclave's clock) or once [`SESSION_LEASE_USES`] requests
//! were leased since then. (Only the answer to the admission asked last would do too,
//! but under steady concurrent load a newer one is nearly always out, and
//! no lease would ever start.)

use std::time::{Duration, Instant};

use clemmys_proto::ClientId;

/// How long one broker admission vouches for later session requests.
pub const SESSION_LEASE: Duration = Duration::from_secs(1);

/// How many session requests one broker admission vouches for at most.
pub const SESSION_LEASE_USES: u32 = 10_000;

/// How far a leased request's stamp may stray from the stamp the broker
/// checked. The broker accepts stamps at most `REPLAY_WINDOW` old and
/// `MAX_CLOCK_SKEW` ahead; under a lease those bounds loosen by at most
/// this plus [`SESSION_LEASE`].
pub const STAMP_SLACK_MS: u64 = 1_000;

/// What one broker admission was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseScope {
    /// The grant the admission was MACed under.
    pub grant_id: [u8; 16],
    /// The version the broker found current.
    pub version: u64,
    /// The gateway the broker found delegated, if the client was one.
    pub delegate: Option<ClientId>,
}

/// An enclave's session lease, and the admissions it asked the broker for.
#[derive(Debug, Default)]
pub struct SessionLeases {
    /// How many admissions were asked for.
    asked: u64,
    /// How many had been asked for when the current lease started: only
    /// an admission asked after that may start another.
    asked_before_current: u64,
    /// How many session requests leases admitted, in all.
    leased: u64,
    current: Option<AdmissionLease>,
}

/// One admission asked of the broker: its number, and when.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    number: u64,
    at: Instant,
    /// [`SessionLeases::leased`] when it was asked.
    leased: u64,
}

impl SessionLeases {
    /// Admits a session request in `scope` stamped `timestamp_ms` under
    /// the current lease; `false` when the broker must be asked instead.
    pub fn admit(&mut self, scope: &LeaseScope, timestamp_ms: u64, now: Instant) -> bool {
        let admitted = self
            .current
            .as_mut()
            .is_some_and(|lease| lease.admit(scope, timestamp_ms, now));
        if admitted {
            self.leased = self.leased.saturating_add(1);
        }
        admitted
    }

    /// Numbers an admission about to be asked of the broker at `now`.
    pub fn asking(&mut self, now: Instant) -> Asked {
        self.asked = self.asked.saturating_add(1);
        Asked {
            number: self.asked,
            at: now,
            leased: self.leased,
        }
    }

    /// The broker admitted `asked`, a request in `scope` stamped
    /// `stamped_ms`: it leases later session requests, from when it was
    /// asked, only if it was asked after the current lease started, and
    /// only as many as leases have not admitted since it was asked (so
    /// that an answer held back while the lease before it was used up adds
    /// none).
    pub fn granted(&mut self, asked: Asked, scope: LeaseScope, stamped_ms: u64) {
        if asked.number > self.asked_before_current {
            let used_since = self.leased.saturating_sub(asked.leased);
            let uses =
                SESSION_LEASE_USES.saturating_sub(u32::try_from(used_since).unwrap_or(u32::MAX));
            self.current = Some(AdmissionLease::granted(scope, stamped_ms, asked.at, uses));
            self.asked_before_current = self.asked;
        }
    }
}

/// A broker admission, reused for session requests in its scope.
#[derive(Debug)]
struct AdmissionLease {
    scope: LeaseScope,
    stamped_ms: u64,
    until: Instant,
    uses_left: u32,
}

impl AdmissionLease {
    /// The lease of an admission asked at `asked` that the broker granted
    /// to a request stamped `stamped_ms`, good for `uses` requests.
    fn granted(scope: LeaseScope, stamped_ms: u64, asked: Instant, uses: u32) -> Self {
        Self {
            scope,
            stamped_ms,
            until: asked + SESSION_LEASE,
            uses_left: uses,
        }
    }

    /// Admits a session request in `scope` stamped `timestamp_ms`, using
    /// up one use; `false` when the broker must be asked instead.
    fn admit(&mut self, scope: &LeaseScope, timestamp_ms: u64, now: Instant) -> bool {
        let covered = self.uses_left > 0
            && now < self.until
            && self.scope == *scope
            && timestamp_ms.abs_diff(self.stamped_ms) <= STAMP_SLACK_MS;
        if covered {
            self.uses_left -= 1;
        }
        covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> LeaseScope {
        LeaseScope {
            grant_id: [7; 16],
            version: 3,
            delegate: None,
        }
    }

    #[test]
    fn admits_its_scope_near_the_checked_stamp_until_it_expires() {
        let start = Instant::now();
        let mut lease = AdmissionLease::granted(scope(), 1_000_000, start, SESSION_LEASE_USES);
        assert!(lease.admit(&scope(), 1_000_500, start));
        assert!(lease.admit(&scope(), 999_000, start + Duration::from_millis(999)));
        assert!(!lease.admit(&scope(), 1_000_000, start + SESSION_LEASE));
    }

    #[test]
    fn refuses_another_version_grant_or_delegate() {
        let start = Instant::now();
        let mut lease = AdmissionLease::granted(scope(), 1_000_000, start, SESSION_LEASE_USES);
        let newer = LeaseScope {
            version: 4,
            ..scope()
        };
        let regranted = LeaseScope {
            grant_id: [8; 16],
            ..scope()
        };
        let delegated = LeaseScope {
            delegate: Some(ClientId([1; 32])),
            ..scope()
        };
        for other in [newer, regranted, delegated] {
            assert!(!lease.admit(&other, 1_000_000, start), "{other:?}");
        }
    }

    #[test]
    fn refuses_stamps_far_from_the_checked_one() {
        let start = Instant::now();
        let mut lease = AdmissionLease::granted(scope(), 1_000_000, start, SESSION_LEASE_USES);
        assert!(!lease.admit(&scope(), 1_000_000 + STAMP_SLACK_MS + 1, start));
        assert!(!lease.admit(&scope(), 1_000_000 - STAMP_SLACK_MS - 1, start));
    }

    #[test]
    fn a_lease_runs_from_when_its_admission_was_asked() {
        let mut leases = SessionLeases::default();
        let start = Instant::now();
        let asked = leases.asking(start);
        // The host held the broker's answer back for two seconds.
        let answered = start + 2 * SESSION_LEASE;
        leases.granted(asked, scope(), 1_000_000);
        assert!(!leases.admit(&scope(), 1_000_000, answered));
    }

    #[test]
    fn answers_held_back_start_at_most_one_lease() {
        let mut leases = SessionLeases::default();
        let start = Instant::now();
        let held: Vec<Asked> = (0..3).map(|_| leases.asking(start)).collect();
        // The first answer released starts a lease...
        leases.granted(held[0], scope(), 1_000_000);
        for _ in 0..SESSION_LEASE_USES {
            assert!(leases.admit(&scope(), 1_000_000, start));
        }
        assert!(!leases.admit(&scope(), 1_000_000, start));
        // ...and the others, asked before it started, renew nothing, even
        // with the enclave's clock stalled.
        for asked in &held[1..] {
            leases.granted(*asked, scope(), 1_000_000);
            assert!(!leases.admit(&scope(), 1_000_000, start));
        }
    }

    #[test]
    fn an_answer_held_while_the_lease_before_was_used_up_adds_no_uses() {
        let mut leases = SessionLeases::default();
        let start = Instant::now();
        let first = leases.asking(start);
        leases.granted(first, scope(), 1_000_000);
        // Asked (for a request stamped too far from the first) and held.
        let held = leases.asking(start);
        for _ in 0..SESSION_LEASE_USES {
            assert!(leases.admit(&scope(), 1_000_000, start));
        }
        leases.granted(held, scope(), 1_000_000);
        assert!(!leases.admit(&scope(), 1_000_000, start));
    }

    #[test]
    fn under_steady_concurrent_asking_a_lease_starts() {
        let mut leases = SessionLeases::default();
        let start = Instant::now();
        // Eight admissions always out: each answer comes back after a
        // newer one was asked.
        let mut out: std::collections::VecDeque<Asked> =
            (0..8).map(|_| leases.asking(start)).collect();
        let answered = out.pop_front().expect("asked");
        out.push_back(leases.asking(start));
        leases.granted(answered, scope(), 1_000_000);
        assert!(leases.admit(&scope(), 1_000_000, start));
        // Once it lapses, the next admission asked starts the next one.
        let later = start + SESSION_LEASE;
        assert!(!leases.admit(&scope(), 1_000_000, later));
        let asked = leases.asking(later);
        leases.granted(asked, scope(), 1_000_000);
        assert!(leases.admit(&scope(), 1_000_000, later));
    }

    #[test]
    fn runs_out_after_its_uses_whatever_the_clock_says() {
        let start = Instant::now();
        let mut lease = AdmissionLease::granted(scope(), 1_000_000, start, SESSION_LEASE_USES);
        for _ in 0..SESSION_LEASE_USES {
            assert!(lease.admit(&scope(), 1_000_000, start));
        }
        assert!(!lease.admit(&scope(), 1_000_000, start));
    }
}
