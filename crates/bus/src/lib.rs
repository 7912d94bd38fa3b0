//! The message bus between controller and invokers.
//!
//! The controller publishes [`InvokerMessage`]s to an invoker through an
//! [`ActivationQueue`]; the invoker reports each finished activation through
//! a [`CompletionSink`], which wakes the controller's blocking request via
//! the [`CompletionRegistry`]. The default bus is in-process ([`in_process`]);
//! a networked bus implements the same two traits with the same (serde)
//! messages.
//!
//! When the invoker is in the controller's process, a blocking invoke skips
//! the queue and the registry: the controller hands the message to an
//! [`ActivationRunner`], which runs it on the request's own task. Both ways
//! share one admission order (see `clemmys-invoker`).
//!
//! A networked bus hands an invoker [`Delivery`]s instead, each with a
//! [`Receipt`] to acknowledge once its record is stored: the NATS
//! JetStream bus ([`nats`], feature `nats`) redelivers what an invoker
//! took and never acknowledged.
//!
//! The bus is untrusted: for confidential actions the payload it carries is
//! a sealed envelope, and the results in completions are sealed.

#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "test-support")]
pub mod test_nats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clemmys_whisk::{Action, Activation, ActivationId, ActivationResponse, KeyValues};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Failure to hand a message to the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The queue is full: the system is overloaded.
    #[error("System is overloaded, try again later.")]
    Overloaded,
    /// No invoker consumes the queue any more.
    #[error("no invoker is available")]
    Closed,
    /// No invoker has reported itself healthy lately.
    #[error("No invokers are available; try again shortly.")]
    NoHealthyInvoker,
    /// The message broker cannot be reached, or did not confirm that it
    /// holds the message.
    #[error("The message bus is unavailable; try again shortly.")]
    Unavailable,
    /// The message could not be encoded for the wire.
    #[error("the activation message could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),
}

/// One activation to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivationMessage {
    /// The id the controller assigned.
    pub activation_id: ActivationId,
    /// The invoking namespace (where the record is stored).
    pub namespace: String,
    /// Who invoked it.
    pub subject: String,
    /// The action as it was when invoked (metadata, no code), shared with
    /// the controller's cache rather than copied per request.
    pub action: Arc<Action>,
    /// Parameters (bound merged under invoked), or a sealed envelope for a
    /// confidential action.
    pub payload: serde_json::Value,
    /// Whether a client is waiting for the answer.
    pub blocking: bool,
    /// The enclosing sequence activation, if any.
    pub cause: Option<ActivationId>,
    /// When the controller accepted the request, epoch ms (for `waitTime`).
    pub accepted_at: u64,
}

impl ActivationMessage {
    /// The activation record of this message: it started at `start` (epoch
    /// ms), took `duration` ms and ended with `response` and `logs`.
    pub fn record(
        &self,
        start: u64,
        duration: u64,
        response: ActivationResponse,
        logs: Vec<String>,
        annotations: KeyValues,
    ) -> Activation {
        Activation {
            namespace: self.namespace.clone(),
            name: self.action.name.to_string(),
            subject: self.subject.clone(),
            activation_id: self.activation_id,
            version: self.action.version.to_string(),
            publish: false,
            start,
            end: start + duration,
            duration,
            cause: self.cause,
            response,
            logs,
            annotations,
        }
    }
}

/// What the controller sends an invoker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InvokerMessage {
    /// Run an activation.
    Activate(Box<ActivationMessage>),
    /// An action was created or updated: prepare its code before the first
    /// invoke arrives.
    Prewarm(Box<Action>),
}

/// A finished activation, reported by the invoker after it tried to store
/// its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    /// The record, shared with whoever else holds it (the answer of a
    /// direct run).
    pub activation: Arc<Activation>,
}

/// The controller's side of the activation queue.
#[async_trait]
pub trait ActivationQueue: Send + Sync + 'static {
    /// Enqueues a message for an invoker.
    async fn send(&self, message: InvokerMessage) -> Result<(), BusError>;
}

/// An invoker in the controller's own process, which runs an activation on
/// the caller's task: no queue, no thread in between, no completion
/// registry.
#[async_trait]
pub trait ActivationRunner: Send + Sync + 'static {
    /// Admits `message`'s activation in arrival order (one order with the
    /// messages the invoker takes off the bus), runs it, stores its record,
    /// reports its [`Completion`] and returns the record.
    ///
    /// The guest runs on the caller's task and gives the thread back at
    /// every epoch tick, so a caller can give up on time whatever the
    /// action's time limit.
    ///
    /// The activation runs to its end and is recorded even when the caller
    /// drops the returned future first (its wait ran out, its client went
    /// away): the rest then goes on in the background, and a stopping node
    /// waits for it like for any activation it accepted. A record that
    /// could not be stored is still returned.
    async fn run(self: Arc<Self>, message: ActivationMessage) -> Result<Arc<Activation>, BusError>;
}

/// The invoker's side of the completion channel.
pub trait CompletionSink: Send + Sync + 'static {
    /// Reports a finished activation.
    fn complete(&self, completion: Completion);
}

/// Blocking requests waiting for their activation to finish.
#[derive(Debug, Default)]
pub struct CompletionRegistry {
    waiting: Mutex<HashMap<ActivationId, oneshot::Sender<Completion>>>,
}

impl CompletionRegistry {
    /// Registers interest in `id`; call before publishing the activation.
    pub fn wait_for(&self, id: ActivationId) -> oneshot::Receiver<Completion> {
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(id, sender);
        receiver
    }

    /// Stops waiting for `id` (the request gave up or was answered 202).
    pub fn forget(&self, id: &ActivationId) {
        self.lock().remove(id);
    }

    /// Number of requests currently waiting.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ActivationId, oneshot::Sender<Completion>>> {
        // The map stays consistent even if a holder panicked: every
        // operation on it is a single insert or remove.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CompletionSink for CompletionRegistry {
    fn complete(&self, completion: Completion) {
        let waiter = self.lock().remove(&completion.activation.activation_id);
        if let Some(waiter) = waiter {
            // The request may have stopped waiting in the meantime; the
            // record is stored either way.
            let _ = waiter.send(completion);
        }
    }
}

/// What an invoker does with a message once it has handled it, told to
/// the bus that delivered it.
#[async_trait]
pub trait Receipt: Send + Sync + 'static {
    /// The message is handled (its record is stored): never deliver it
    /// again.
    async fn done(&self);
    /// The message is still being worked on: do not hand it to another
    /// invoker yet.
    async fn in_progress(&self);
    /// The message could not be handled now (the store is away): deliver
    /// it again later.
    async fn retry_later(&self);
    /// How often [`Receipt::in_progress`] must be said while the message
    /// is held; `None` if the bus never redelivers.
    fn progress_interval(&self) -> Option<Duration>;
}

/// One message taken off a networked bus.
pub struct Delivery {
    /// The message.
    pub message: InvokerMessage,
    /// Whether the bus delivered it before, to an invoker that did not
    /// acknowledge it (it died, or lost the bus for longer than the
    /// acknowledgement deadline): it may have run, in part or in full.
    pub redelivered: bool,
    /// Where to say what became of it.
    pub receipt: Box<dyn Receipt>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Delivery")
            .field("message", &self.message)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

/// The invoker's side of a networked bus: it asks for the next message
/// only once it has admitted the previous one, so that at most one message
/// waits, taken but not started, in an invoker.
#[async_trait]
pub trait DeliveryFeed: Send + 'static {
    /// The next message, or `None` once the invoker is told to stop.
    async fn next(&mut self) -> Option<Delivery>;
}

/// The in-process queue: a bounded channel from controller to invoker.
#[derive(Debug, Clone)]
pub struct InProcessQueue {
    sender: mpsc::Sender<InvokerMessage>,
}

/// The receiving end an in-process invoker consumes.
pub type InvokerFeed = mpsc::Receiver<InvokerMessage>;

/// Creates an in-process queue holding at most `capacity` messages.
pub fn in_process(capacity: usize) -> (InProcessQueue, InvokerFeed) {
    let (sender, receiver) = mpsc::channel(capacity);
    (InProcessQueue { sender }, receiver)
}

#[async_trait]
impl ActivationQueue for InProcessQueue {
    async fn send(&self, message: InvokerMessage) -> Result<(), BusError> {
        self.sender.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => BusError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => BusError::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::{ActivationResponse, KeyValues};

    fn record(id: u8) -> Activation {
        Activation {
            namespace: "guest".into(),
            name: "a".into(),
            subject: "guest".into(),
            activation_id: ActivationId::from_bytes([id; 16]),
            version: "0.0.1".into(),
            publish: false,
            start: 0,
            end: 0,
            duration: 0,
            cause: None,
            response: ActivationResponse::success(serde_json::json!({})),
            logs: vec![],
            annotations: KeyValues::default(),
        }
    }

    #[tokio::test]
    async fn completion_wakes_only_its_waiter() {
        let registry = CompletionRegistry::default();
        let first = registry.wait_for(ActivationId::from_bytes([1; 16]));
        let mut second = registry.wait_for(ActivationId::from_bytes([2; 16]));
        registry.complete(Completion {
            activation: Arc::new(record(1)),
        });
        let done = first.await.expect("completed");
        assert_eq!(
            done.activation.activation_id,
            ActivationId::from_bytes([1; 16])
        );
        assert!(
            second.try_recv().is_err(),
            "the other request is still waiting"
        );
        assert_eq!(registry.waiting(), 1);
        registry.forget(&ActivationId::from_bytes([2; 16]));
        assert_eq!(registry.waiting(), 0);
        // Completing an activation nobody waits for is harmless.
        registry.complete(Completion {
            activation: Arc::new(record(3)),
        });
    }

    #[tokio::test]
    async fn full_queue_reports_overload() {
        let (queue, mut feed) = in_process(1);
        let message = || InvokerMessage::Prewarm(Box::new(test_action()));
        queue.send(message()).await.expect("room for one");
        assert!(matches!(
            queue.send(message()).await,
            Err(BusError::Overloaded)
        ));
        assert!(feed.recv().await.is_some());
        drop(feed);
        assert!(matches!(queue.send(message()).await, Err(BusError::Closed)));
    }

    fn test_action() -> Action {
        Action {
            namespace: clemmys_whisk::EntityName::new("guest").expect("name"),
            name: clemmys_whisk::EntityName::new("a").expect("name"),
            version: "0.0.1".parse().expect("version"),
            publish: false,
            exec: clemmys_whisk::Exec::Sequence { components: vec![] },
            limits: Default::default(),
            annotations: KeyValues::default(),
            parameters: KeyValues::default(),
            package: None,
            updated: 0,
        }
    }
}
