//! Per-namespace throttles, as OpenWhisk's: at most `concurrentInvocations`
//! activations in flight and `invocationsPerMinute` accepted in any sliding
//! minute; past either, an invoke answers 429 and nothing runs.
//!
//! An activation counts from acceptance until its completion is reported,
//! blocking or not. Sequence components are not counted: the sequence is.
//! Trigger fires count against `firesPerMinute` alone; the activations
//! their rules start count as invokes.
//!
//! Over a networked bus a completion can be lost (the controller was cut
//! off from the bus when it came): then the activation's record is in the
//! store, but its slot would stay taken until a restart.
//! [`Controller::watch_lost_completions`] looks for the record of every
//! activation whose completion is overdue (its time limit plus
//! [`COMPLETION_MARGIN`] after acceptance) and releases the slot once the
//! record is there, or, without one, after as long again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use clemmys_bus::{Completion, CompletionRegistry, CompletionSink};
use clemmys_whisk::{ActivationId, NamespaceLimits};

use crate::{ApiError, Controller};

/// The sliding window of `invocationsPerMinute`.
const MINUTE_MS: u64 = 60_000;

/// How long past its time limit an activation's completion may come: the
/// wait on a busy invoker's queue, a redelivery after an invoker died, the
/// store write.
pub const COMPLETION_MARGIN: Duration = Duration::from_secs(60);
/// How often overdue completions are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

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
    /// Counted activations in flight.
    activations: HashMap<ActivationId, Held>,
}

/// A counted activation in flight.
#[derive(Debug)]
struct Held {
    namespace: String,
    /// When a networked bus should have reported its completion (epoch
    /// ms); `None` until it is published, and for a direct run, whose
    /// completion cannot be lost.
    overdue: Option<Overdue>,
}

/// When a held activation's completion is overdue.
#[derive(Debug, Clone, Copy)]
struct Overdue {
    /// When to look for its record next.
    look_at_ms: u64,
    /// When to release it without one.
    give_up_at_ms: u64,
}

/// An activation whose completion is overdue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueActivation {
    /// The activation.
    pub id: ActivationId,
    /// Where its record is stored.
    pub namespace: String,
    /// Whether its slot is to be released even without a record.
    pub give_up: bool,
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
        load.in_flight = load.in_flight.saturating_add(1);
        load.accepted.push_back(now_ms);
        state.activations.insert(
            id,
            Held {
                namespace: namespace.to_owned(),
                overdue: None,
            },
        );
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
        if let Some(held) = state.activations.remove(id)
            && let Some(load) = state.namespaces.get_mut(&held.namespace)
        {
            load.in_flight = load.in_flight.saturating_sub(1);
        }
    }

    /// Expects the completion of activation `id`, published on a networked
    /// bus at `accepted_ms` with time limit `limit_ms`, within
    /// [`COMPLETION_MARGIN`] after the limit; nothing if it is not counted.
    pub fn expect_completion(&self, id: &ActivationId, accepted_ms: u64, limit_ms: u64) {
        let margin = u64::try_from(COMPLETION_MARGIN.as_millis()).unwrap_or(u64::MAX);
        let bound = limit_ms.saturating_add(margin);
        let look_at_ms = accepted_ms.saturating_add(bound);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = state.activations.get_mut(id) {
            held.overdue = Some(Overdue {
                look_at_ms,
                give_up_at_ms: look_at_ms.saturating_add(bound),
            });
        }
    }

    /// The activations whose completion is overdue at `now_ms`; each is
    /// named again only after `recheck_ms`, or once it is given up on.
    pub fn overdue(&self, now_ms: u64, recheck_ms: u64) -> Vec<OverdueActivation> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found = Vec::new();
        for (id, held) in &mut state.activations {
            let Some(overdue) = held.overdue.as_mut() else {
                continue;
            };
            if overdue.look_at_ms > now_ms {
                continue;
            }
            overdue.look_at_ms = now_ms.saturating_add(recheck_ms).min(overdue.give_up_at_ms);
            found.push(OverdueActivation {
                id: *id,
                namespace: held.namespace.clone(),
                give_up: now_ms >= overdue.give_up_at_ms,
            });
        }
        found
    }
}

impl Controller {
    /// Releases, in the background every few seconds, the slots of
    /// activations whose completion a networked bus lost (see the module
    /// docs). Ends when the controller is dropped.
    pub fn watch_lost_completions(self: &Arc<Self>) {
        let controller = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(controller) = controller.upgrade() else {
                    return;
                };
                controller
                    .release_lost_completions(clemmys_whisk::now_ms())
                    .await;
            }
        });
    }

    /// Releases the slot of every overdue activation whose record is
    /// stored (its completion was lost), or that is given up on; answers
    /// how many were released.
    pub(crate) async fn release_lost_completions(&self, now_ms: u64) -> usize {
        let recheck_ms = u64::try_from(SWEEP_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let mut released = 0usize;
        for overdue in self.throttle.overdue(now_ms, recheck_ms) {
            let recorded = match self
                .store
                .get_activation(&overdue.namespace, &overdue.id)
                .await
            {
                Ok(record) => record.is_some(),
                Err(error) => {
                    tracing::warn!(%error, id = %overdue.id, "looking for an overdue activation's record failed");
                    false
                }
            };
            if recorded {
                tracing::info!(id = %overdue.id, "its completion was lost: releasing its slot");
            } else if overdue.give_up {
                tracing::warn!(
                    id = %overdue.id,
                    "no completion and no record long past its time limit: releasing its slot"
                );
            } else {
                continue;
            }
            self.throttle.release(&overdue.id);
            released = released.saturating_add(1);
        }
        released
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
    fn a_completion_is_overdue_its_limit_and_margin_after_acceptance() {
        let throttle = Throttle::default();
        let id = ActivationId::from_bytes([1; 16]);
        let margin = u64::try_from(COMPLETION_MARGIN.as_millis()).expect("ms");
        throttle
            .admit("ns", id, &limits(1, 100), 0)
            .expect("admitted");
        assert!(throttle.overdue(u64::MAX, 1).is_empty(), "not published");
        throttle.expect_completion(&id, 1_000, 500);
        let due = 1_000 + 500 + margin;
        assert!(throttle.overdue(due - 1, 10).is_empty());
        let overdue = throttle.overdue(due, 10);
        assert_eq!(
            overdue,
            vec![OverdueActivation {
                id,
                namespace: "ns".into(),
                give_up: false,
            }]
        );
        assert!(throttle.overdue(due + 9, 10).is_empty(), "rechecked later");
        assert_eq!(throttle.overdue(due + 10, 10).len(), 1);
        let give_up = throttle.overdue(due + 500 + margin, 10);
        assert!(give_up.iter().all(|overdue| overdue.give_up), "{give_up:?}");
        throttle.release(&id);
        assert!(throttle.overdue(u64::MAX, 1).is_empty(), "released");
    }

    /// A controller on `store` whose bus takes every message and never
    /// completes one: every completion is lost.
    fn controller_losing_completions(
        store: Arc<dyn clemmys_store::EntityStore>,
    ) -> Arc<Controller> {
        Arc::new(crate::acknowledge_tests::controller(store))
    }

    #[tokio::test]
    async fn a_lost_completion_releases_its_slot_once_the_record_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Arc::new(clemmys_store::RedbStore::open(&dir.path().join("store.redb")).expect("open"));
        let controller = controller_losing_completions(store.clone());
        let one = limits(1, 100);
        let (lost, never) = (
            ActivationId::from_bytes([1; 16]),
            ActivationId::from_bytes([2; 16]),
        );
        let mode = crate::invoke::InvokeMode {
            blocking: false,
            result_only: false,
            wait: Duration::from_secs(1),
        };
        controller
            .throttle
            .admit("guest", lost, &one, 1)
            .expect("admitted");
        let message = crate::acknowledge_tests::non_blocking_message(lost);
        let limit = message.action.limits.timeout;
        let record = message.record(
            1,
            5,
            clemmys_whisk::ActivationResponse::success(serde_json::json!({})),
            Vec::new(),
            clemmys_whisk::KeyValues::default(),
        );
        let answer = controller.run(message, mode).await.into_response(false);
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let margin = u64::try_from(COMPLETION_MARGIN.as_millis()).expect("ms");
        let due = 1 + limit + margin;

        // Not yet overdue, then overdue without a record: still running.
        assert_eq!(controller.release_lost_completions(due - 1).await, 0);
        assert_eq!(controller.release_lost_completions(due).await, 0);
        assert!(controller.throttle.admit("guest", never, &one, 2).is_err());
        // The invoker stored the record; its completion never came.
        clemmys_store::EntityStore::put_activation(store.as_ref(), record)
            .await
            .expect("stored");
        let recheck = u64::try_from(SWEEP_INTERVAL.as_millis()).expect("ms");
        assert_eq!(controller.release_lost_completions(due + recheck).await, 1);
        controller
            .throttle
            .admit("guest", never, &one, 3)
            .expect("the slot is free again");

        // No record at all: released once given up on.
        let answer = controller
            .run(crate::acknowledge_tests::non_blocking_message(never), mode)
            .await
            .into_response(false);
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        assert_eq!(controller.release_lost_completions(due).await, 0);
        assert_eq!(
            controller
                .release_lost_completions(due + limit + margin)
                .await,
            1
        );
        controller
            .throttle
            .admit("guest", ActivationId::from_bytes([3; 16]), &one, 4)
            .expect("the slot is free again");
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
