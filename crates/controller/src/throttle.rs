//! Per-namespace throttles, as OpenWhisk's: at most `concurrentInvocations`
//! activations in flight and `invocationsPerMinute` accepted in any sliding
//! minute; past either, an invoke answers 429 and nothing runs.
//!
//! An activation counts from acceptance until its completion is reported,
//! blocking or not. Sequence components are not counted: the sequence is.
//! Trigger fires count against `firesPerMinute` alone; the activations
//! their rules start count as invokes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use clemmys_bus::{Completion, CompletionRegistry, CompletionSink};
use clemmys_whisk::{ActivationId, NamespaceLimits};

use crate::ApiError;

/// The sliding window of `invocationsPerMinute`.
const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Default)]
struct NamespaceLoad {
    in_flight: u32,
    /// Acceptance times within the last minute, oldest first.
    accepted: VecDeque<u64>,
    /// Trigger fire times within the last minute, oldest first.
    fired: VecDeque<u64>,
}

/// Forgets the times of `window` a minute or more before `now_ms`.
fn slide(window: &mut VecDeque<u64>, now_ms: u64) {
    while window
        .front()
        .is_some_and(|t| t.saturating_add(MINUTE_MS) <= now_ms)
    {
        window.pop_front();
    }
}

/// OpenWhisk's 429 for a rate limit of `allowed` per minute.
fn too_many_per_minute(count: usize, allowed: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many requests in the last minute (count: {count}, allowed: {allowed})."),
    )
}

/// Counts activations per namespace and releases them on completion.
#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    namespaces: HashMap<String, NamespaceLoad>,
    /// Counted activations in flight → their namespace.
    activations: HashMap<ActivationId, String>,
}

impl Throttle {
    /// Admits one activation of `namespace` under `limits`, or says why not.
    pub fn admit(
        &self,
        namespace: &str,
        id: ActivationId,
        limits: &NamespaceLimits,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let load = state.namespaces.entry(namespace.to_owned()).or_default();
        slide(&mut load.accepted, now_ms);
        if load.in_flight >= limits.concurrent_invocations {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many concurrent requests in flight (count: {}, allowed: {}).",
                    load.in_flight, limits.concurrent_invocations
                ),
            ));
        }
        let count = load.accepted.len();
        if count >= limits.invocations_per_minute as usize {
            return Err(too_many_per_minute(count, limits.invocations_per_minute));
        }
        load.in_flight += 1;
        load.accepted.push_back(now_ms);
        state.activations.insert(id, namespace.to_owned());
        Ok(())
    }

    /// Admits one fire of a trigger of `namespace` under its
    /// `firesPerMinute`, or answers 429 as OpenWhisk does.
    pub fn admit_fire(
        &self,
        namespace: &str,
        limits: &NamespaceLimits,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let load = state.namespaces.entry(namespace.to_owned()).or_default();
        slide(&mut load.fired, now_ms);
        let count = load.fired.len();
        if count >= limits.fires_per_minute as usize {
            return Err(too_many_per_minute(count, limits.fires_per_minute));
        }
        load.fired.push_back(now_ms);
        Ok(())
    }

    /// Releases activation `id` if it was counted.
    pub fn release(&self, id: &ActivationId) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(namespace) = state.activations.remove(id)
            && let Some(load) = state.namespaces.get_mut(&namespace)
        {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }
}

/// The completion sink the invokers report to: releases throttles, then
/// wakes whoever waits for the activation.
pub struct Completions {
    /// Blocking requests waiting.
    pub registry: Arc<CompletionRegistry>,
    /// The throttle to release.
    pub throttle: Arc<Throttle>,
}

impl CompletionSink for Completions {
    fn complete(&self, completion: Completion) {
        self.throttle.release(&completion.activation.activation_id);
        self.registry.complete(completion);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrent: u32, per_minute: u32) -> NamespaceLimits {
        NamespaceLimits {
            concurrent_invocations: concurrent,
            invocations_per_minute: per_minute,
            ..Default::default()
        }
    }

    #[test]
    fn refuses_past_the_concurrency_limit_until_released() {
        let throttle = Throttle::default();
        let (a, b) = (
            ActivationId::from_bytes([1; 16]),
            ActivationId::from_bytes([2; 16]),
        );
        throttle.admit("ns", a, &limits(1, 100), 0).expect("first");
        let refused = throttle
            .admit("ns", b, &limits(1, 100), 1)
            .expect_err("second in flight");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message,
            "Too many concurrent requests in flight (count: 1, allowed: 1)."
        );
        throttle
            .admit("other", b, &limits(1, 100), 1)
            .expect("namespaces are independent");
        throttle.release(&a);
        throttle
            .admit("ns", ActivationId::from_bytes([3; 16]), &limits(1, 100), 2)
            .expect("released");
    }

    #[test]
    fn fires_have_their_own_rate_limit() {
        let throttle = Throttle::default();
        let fires = NamespaceLimits {
            fires_per_minute: 2,
            invocations_per_minute: 1,
            ..Default::default()
        };
        throttle.admit_fire("ns", &fires, 0).expect("first");
        throttle.admit_fire("ns", &fires, 1).expect("second");
        let refused = throttle.admit_fire("ns", &fires, 2).expect_err("third");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.message,
            "Too many requests in the last minute (count: 2, allowed: 2)."
        );
        throttle
            .admit("ns", ActivationId::from_bytes([1; 16]), &fires, 3)
            .expect("fires do not count as invokes");
        throttle
            .admit_fire("ns", &fires, MINUTE_MS)
            .expect("a minute later");
    }

    #[test]
    fn refuses_past_the_rate_limit_within_a_sliding_minute() {
        let throttle = Throttle::default();
        for i in 0..3u8 {
            let id = ActivationId::from_bytes([i; 16]);
            throttle
                .admit("ns", id, &limits(100, 3), u64::from(i))
                .expect("within the rate");
            throttle.release(&id);
        }
        let refused = throttle
            .admit("ns", ActivationId::from_bytes([9; 16]), &limits(100, 3), 10)
            .expect_err("rate");
        assert_eq!(
            refused.message,
            "Too many requests in the last minute (count: 3, allowed: 3)."
        );
        throttle
            .admit(
                "ns",
                ActivationId::from_bytes([9; 16]),
                &limits(100, 3),
                MINUTE_MS + 1,
            )
            .expect("a minute later");
    }
}
