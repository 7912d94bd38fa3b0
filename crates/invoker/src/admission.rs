//! Admission in arrival order: an activation takes its share of the memory
//! budget and one slot before it runs, and activations are admitted in the
//! order they asked, whichever way they came (off the bus or a direct run).

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// The memory budget and the slots, handed out first come, first served.
pub(crate) struct Admission {
    /// Held while one activation takes both its memory and its slot, so the
    /// pair is taken in one go, in the order of arrival: tokio's mutex
    /// queues its waiters first in, first out.
    turn: Mutex<()>,
    /// One permit per activation that may run at once.
    slots: Arc<Semaphore>,
    /// One permit per MB of the memory budget.
    memory: Arc<Semaphore>,
    memory_budget_mb: u32,
}

/// What a running activation holds; dropping it admits the next.
pub(crate) struct Admitted {
    _memory: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl Admission {
    /// `concurrency` slots and `memory_budget_mb` MB (each at least 1).
    pub(crate) fn new(concurrency: usize, memory_budget_mb: u32) -> Self {
        let memory_budget_mb = memory_budget_mb.max(1);
        Self {
            turn: Mutex::new(()),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::new(Semaphore::new(memory_budget_mb as usize)),
            memory_budget_mb,
        }
    }

    /// Waits for every activation that asked earlier to be admitted, then
    /// until `memory_mb` (clamped to the budget: a larger one runs alone)
    /// and a slot are free, and takes both. `None` only if the semaphores
    /// were closed, which they never are.
    pub(crate) async fn admit(&self, memory_mb: u32) -> Option<Admitted> {
        let memory_mb = memory_mb.clamp(1, self.memory_budget_mb);
        let _turn = self.turn.lock().await;
        let memory = self
            .memory
            .clone()
            .acquire_many_owned(memory_mb)
            .await
            .ok()?;
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some(Admitted {
            _memory: memory,
            _slot: slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Starts `count` admissions of `memory_mb` each, in order, each one
    /// queued before the next starts; they report their index when admitted
    /// and hold what they got until `release` closes.
    async fn queue_in_order(
        admission: &Arc<Admission>,
        sizes: &[u32],
        admitted: &mpsc::UnboundedSender<usize>,
        release: &tokio::sync::watch::Receiver<bool>,
    ) {
        for (index, &memory_mb) in sizes.iter().enumerate() {
            let (admission, admitted, mut release) =
                (admission.clone(), admitted.clone(), release.clone());
            tokio::spawn(async move {
                let held = admission.admit(memory_mb).await.expect("never closed");
                let _ = admitted.send(index);
                let _ = release.wait_for(|released| *released).await;
                drop(held);
            });
            // On this single-threaded runtime the task runs until it waits.
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_smaller_activation_does_not_overtake_a_waiting_larger_one() {
        let admission = Arc::new(Admission::new(8, 4));
        let first = admission.admit(3).await.expect("fits");
        let (admitted, mut order) = mpsc::unbounded_channel();
        let (release, released) = tokio::sync::watch::channel(false);
        // 1 MB is free: the second (2 MB) waits, the third (1 MB) would fit
        // but must wait behind it.
        queue_in_order(&admission, &[2, 1], &admitted, &released).await;
        tokio::task::yield_now().await;
        assert!(order.try_recv().is_err(), "nothing admitted past the first");
        drop(first);
        assert_eq!(order.recv().await, Some(0));
        assert_eq!(order.recv().await, Some(1));
        release.send_replace(true);
    }

    #[tokio::test]
    async fn with_one_slot_activations_are_admitted_in_the_order_they_asked() {
        let admission = Arc::new(Admission::new(1, 1024));
        let running = admission.admit(1).await.expect("fits");
        let (admitted, mut order) = mpsc::unbounded_channel();
        let (release, released) = tokio::sync::watch::channel(false);
        queue_in_order(&admission, &[256, 1, 512], &admitted, &released).await;
        drop(running);
        // Each holds the only slot until all are released, so release
        // before waiting for the next.
        let mut seen = Vec::new();
        release.send_replace(true);
        while seen.len() < 3 {
            seen.push(order.recv().await.expect("admitted"));
        }
        assert_eq!(seen, [0, 1, 2]);
    }
}
