//! Per-client rate limits on broker requests: a token bucket per client
//! identity, so one identity cannot keep the broker busy for everyone else.
//! Pure: the caller passes the time.

use std::collections::HashMap;

use clemmys_proto::ClientId;

/// Requests a client may send at once after being idle.
pub const BURST: u32 = 200;
/// Requests per second a client may sustain.
pub const PER_SECOND: u32 = 100;
/// Most clients tracked; past it the table is cleared (every client then
/// starts again with a full bucket, which only ever lets more through).
const MAX_CLIENTS: usize = 100_000;

/// One client's bucket: tokens in thousandths, so that refills are exact
/// integer arithmetic.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    at_ms: u64,
}

/// The buckets of every client seen recently.
#[derive(Debug)]
pub struct Throttle {
    burst: u32,
    per_second: u32,
    buckets: HashMap<ClientId, Bucket>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(BURST, PER_SECOND)
    }
}

impl Throttle {
    /// Allows `burst` requests at once and `per_second` sustained.
    pub fn new(burst: u32, per_second: u32) -> Self {
        Self {
            burst,
            per_second,
            buckets: HashMap::new(),
        }
    }

    /// Takes one request's token from `client`'s bucket at `now_ms`;
    /// false when the bucket is empty.
    pub fn allow(&mut self, client: &ClientId, now_ms: u64) -> bool {
        let full = u64::from(self.burst).saturating_mul(1000);
        if self.buckets.len() >= MAX_CLIENTS && !self.buckets.contains_key(client) {
            self.buckets.clear();
        }
        let bucket = self.buckets.entry(*client).or_insert(Bucket {
            milli_tokens: full,
            at_ms: now_ms,
        });
        // A clock that went backwards refills nothing.
        let elapsed = now_ms.saturating_sub(bucket.at_ms);
        let refill = elapsed.saturating_mul(u64::from(self.per_second));
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(full);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        match bucket.milli_tokens.checked_sub(1000) {
            Some(left) => {
                bucket.milli_tokens = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let mut throttle = Throttle::default();
        let client = ClientId([1; 32]);
        for _ in 0..BURST {
            assert!(throttle.allow(&client, 1_000));
        }
        assert!(!throttle.allow(&client, 1_000));
        // Another client is not affected.
        assert!(throttle.allow(&ClientId([2; 32]), 1_000));
        // 10 ms at 100/s is one token.
        assert!(throttle.allow(&client, 1_010));
        assert!(!throttle.allow(&client, 1_010));
        // A long pause refills up to the burst, not more.
        let mut allowed = 0;
        while throttle.allow(&client, 1_000_000) {
            allowed += 1;
        }
        assert_eq!(allowed, BURST);
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let mut throttle = Throttle::default();
        let client = ClientId([3; 32]);
        for _ in 0..BURST {
            assert!(throttle.allow(&client, u64::MAX));
        }
        assert!(!throttle.allow(&client, 0));
        assert!(!throttle.allow(&client, u64::MAX));
    }
}
