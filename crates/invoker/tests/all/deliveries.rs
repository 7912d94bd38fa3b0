//! Activations taken off a networked bus ([`Invoker::consume_deliveries`]):
//! a message is acknowledged only once its record is stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clemmys_bus::{Delivery, DeliveryFeed, InvokerMessage, Receipt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::direct_runs::{message, node_with, records_fail, redb};

/// What an invoker told the bus about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Done,
    RetryLater,
}

/// A receipt that writes down what it is told.
struct Recording(Arc<Mutex<Vec<Said>>>);

#[async_trait]
impl Receipt for Recording {
    async fn done(&self) {
        self.0.lock().expect("lock").push(Said::Done);
    }
    async fn in_progress(&self) {}
    async fn retry_later(&self) {
        self.0.lock().expect("lock").push(Said::RetryLater);
    }
    fn progress_interval(&self) -> Option<Duration> {
        None
    }
}

/// A feed of the deliveries sent on a channel.
struct Feed(mpsc::UnboundedReceiver<Delivery>);

#[async_trait]
impl DeliveryFeed for Feed {
    async fn next(&mut self) -> Option<Delivery> {
        self.0.recv().await
    }
}

/// Delivers one activation of `echo` to an invoker over a store wrapped by
/// `wrap`, and returns what the invoker said about it once it settled.
async fn deliver_one(
    wrap: fn(clemmys_store::RedbStore) -> Arc<dyn clemmys_store::EntityStore>,
) -> Vec<Said> {
    let node = node_with("echo", wrap).await;
    let activation = message(&node, "echo", json!({"k": "v"})).await;
    let said = Arc::new(Mutex::new(Vec::new()));
    let (deliveries, feed) = mpsc::unbounded_channel();
    deliveries
        .send(Delivery {
            message: InvokerMessage::Activate(Box::new(activation)),
            redelivered: false,
            receipt: Box::new(Recording(said.clone())),
        })
        .expect("the feed is open");
    drop(deliveries);
    let activations = node.invoker.activations();
    node.invoker.clone().consume_deliveries(Feed(feed)).await;
    activations.close();
    activations.wait().await;
    said.lock().expect("lock").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_acknowledged_once_its_record_is_stored() {
    assert_eq!(deliver_one(redb).await, [Said::Done]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_record_cannot_be_stored_is_not_acknowledged() {
    // Handed back, so that the bus delivers it again as redelivered: the
    // invoker that gets it records it without running it again.
    assert_eq!(deliver_one(records_fail).await, [Said::RetryLater]);
}
