//! The bus over NATS JetStream (`--bus nats://HOST:PORT`), for a
//! controller and invokers in processes of their own.
//!
//! # Subjects
//!
//! - `PREFIX.invoke.INVOKER`: the activations and prewarms for one
//!   invoker, in the work-queue stream [`STREAM`] (file storage: a message
//!   outlives a restart of nats-server and of its invoker). Each invoker
//!   pulls its subject through a durable consumer `invoker-INVOKER`, with
//!   explicit acknowledgements.
//! - `PREFIX.done.CONTROLLER`: completions, in core NATS, to the controller
//!   that published the activation (the `Clemmys-Reply` header names it).
//! - `PREFIX.heartbeat`: every invoker says it is alive each
//!   [`HEARTBEAT_INTERVAL`], and that it leaves when it stops.
//!
//! One subject per invoker, not one shared pool, so that the controller
//! chooses where an action runs: its *home* invoker, the healthy invoker
//! that the action's fully qualified name hashes to (rendezvous hashing),
//! keeps its compiled module and enclaves warm, as OpenWhisk's sharding
//! balancer does. The price is that a dead invoker's messages wait in its
//! subject: the controller takes them over ([`NatsQueue`]'s takeover) and
//! moves them to the next healthy invoker.
//!
//! # Delivery
//!
//! An invoker acknowledges a message once the activation's record is
//! stored durably (without waiting for the server to confirm the
//! acknowledgement: a lost one only brings the message back as
//! redelivered), hands it back when the record could not be stored (see
//! `clemmys-invoker`), and says "in progress"
//! every [`PROGRESS_INTERVAL`] while it holds one. A message not
//! acknowledged within [`ACK_WAIT`] (its invoker died, or lost NATS for that
//! long) is delivered again, at most [`MAX_DELIVER`] times, and marked
//! [`Delivery::redelivered`]: the invoker that gets it does not run it
//! again but reports the record already stored or, when there is none,
//! records the activation as failed because its invoker was lost.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use async_nats::{HeaderMap, header};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    ActivationQueue, BusError, Completion, CompletionSink, Delivery, DeliveryFeed, InvokerMessage,
    Receipt,
};

/// The JetStream stream holding every invoker's activations.
pub const STREAM: &str = "CLEMMYS_INVOKE";
/// How long an invoker may hold a message without a word before it is
/// delivered again.
pub const ACK_WAIT: Duration = Duration::from_secs(6);
/// How often an invoker holding a message says it is still on it.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// Deliveries of one message at most; past them it is dropped, and its
/// activation's stand-in (if any) becomes its record at the next start.
pub const MAX_DELIVER: i64 = 10;
/// How often an invoker says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// An invoker not heard of for this long is not sent anything.
pub const HEALTHY_FOR: Duration = Duration::from_secs(3);
/// How long a publish waits for the stream's confirmation.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest message: parameters and results of up to a few MB (the
/// server's `max_payload` must allow it; scripts/nats.sh sets 8 MB).
const MAX_MESSAGE_BYTES: i32 = 8 * 1024 * 1024;

/// Headers of an activation message.
const REPLY_HEADER: &str = "Clemmys-Reply";
const KEY_HEADER: &str = "Clemmys-Key";
const REDELIVERED_HEADER: &str = "Clemmys-Redelivered";

/// Failure to set up the NATS bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// nats-server could not be reached.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why it failed.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The stream could not be created or opened (is JetStream enabled,
    /// `nats-server -js`?).
    #[error("opening the JetStream stream {STREAM} (is JetStream enabled, nats-server -js?): {0}")]
    Stream(#[source] async_nats::jetstream::context::CreateStreamError),
    /// An invoker's consumer could not be created or opened.
    #[error("opening the JetStream consumer of invoker {invoker}: {source}")]
    Consumer {
        /// The invoker.
        invoker: String,
        /// Why it failed.
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// A subscription could not be made.
    #[error("subscribing to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why it failed.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// An invoker id that cannot be a subject token.
    #[error(
        "invalid invoker id {0:?}: use letters, digits, '-' and '_' only (at most 64 characters)"
    )]
    InvalidInvokerId(String),
}

/// Where the NATS bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The first token of every subject, so that clusters can share a
    /// server (default `clemmys`).
    pub prefix: String,
}

impl NatsConfig {
    /// The bus at `url`, with the default prefix.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "clemmys".into(),
        }
    }
}

/// Whether `id` can name an invoker: one subject token, a consumer name.
pub fn valid_invoker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A connection to the NATS bus, with its stream.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    prefix: String,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NatsBus")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects (failing at once if nats-server is not there; once
    /// connected, reconnecting for ever) and opens or creates the stream.
    pub async fn connect(config: &NatsConfig) -> Result<Self, NatsError> {
        let client = async_nats::ConnectOptions::new()
            .name("clemmys")
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            // Back to work soon after nats-server is: at most a second
            // between attempts.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(u64::try_from(attempts).unwrap_or(u64::MAX).min(10) * 100)
            })
            .connect(config.url.as_str())
            .await
            .map_err(|source| NatsError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(PUBLISH_TIMEOUT);
        let stream = jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{}.invoke.>", config.prefix)],
                // A message is gone once acknowledged: a queue, not a log.
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                max_message_size: MAX_MESSAGE_BYTES,
                // Long enough to catch a message moved twice by a takeover
                // that was interrupted.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(NatsError::Stream)?;
        Ok(Self {
            client,
            jetstream,
            stream,
            prefix: config.prefix.clone(),
        })
    }

    fn invoke_subject(&self, invoker: &str) -> String {
        format!("{}.invoke.{invoker}", self.prefix)
    }

    fn heartbeat_subject(&self) -> String {
        format!("{}.heartbeat", self.prefix)
    }

    fn done_subject(&self, controller: &str) -> String {
        format!("{}.done.{controller}", self.prefix)
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    async fn consumer_of(&self, invoker: &str) -> Result<PullConsumer, NatsError> {
        let name = consumer_name(invoker);
        self.stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.invoke_subject(invoker),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: MAX_DELIVER,
                    ..Default::default()
                },
            )
            .await
            .map_err(|source| NatsError::Consumer {
                invoker: invoker.to_owned(),
                source,
            })
    }

    /// Publishes `payload` to `invoker`'s subject and waits for the stream
    /// to confirm it holds it.
    async fn publish(
        &self,
        invoker: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<(), BusError> {
        let confirmed = self
            .jetstream
            .publish_with_headers(self.invoke_subject(invoker), headers, payload)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "publishing an activation to NATS failed");
                BusError::Unavailable
            })?;
        confirmed.await.map(drop).map_err(|error| {
            tracing::warn!(%error, "NATS did not confirm an activation");
            BusError::Unavailable
        })
    }
}

fn consumer_name(invoker: &str) -> String {
    format!("invoker-{invoker}")
}

/// What an invoker says on the heartbeat subject.
#[derive(Debug, Serialize, Deserialize)]
struct Heartbeat {
    invoker: String,
    /// The invoker stops: send it nothing more.
    #[serde(default)]
    leaving: bool,
}

/// The invokers heard of, and when.
#[derive(Debug, Default)]
pub struct InvokerSet {
    last_seen: Mutex<HashMap<String, Instant>>,
}

impl InvokerSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Every operation is one insert, remove or read.
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn beat(&self, heartbeat: Heartbeat, now: Instant) {
        if heartbeat.leaving {
            self.lock().remove(&heartbeat.invoker);
        } else {
            self.lock().insert(heartbeat.invoker, now);
        }
    }

    /// The invokers heard of within [`HEALTHY_FOR`] of `now`, sorted.
    pub fn healthy(&self, now: Instant) -> Vec<String> {
        let mut healthy: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) < HEALTHY_FOR)
            .map(|(id, _)| id.clone())
            .collect();
        healthy.sort();
        healthy
    }

    fn is_healthy(&self, invoker: &str, now: Instant) -> bool {
        self.lock()
            .get(invoker)
            .is_some_and(|seen| now.saturating_duration_since(*seen) < HEALTHY_FOR)
    }

    /// The healthy invoker that `key` (an action's fully qualified name)
    /// prefers, if any.
    pub fn home(&self, key: &str, now: Instant) -> Option<String> {
        home_invoker(key, &self.healthy(now))
    }
}

/// Rendezvous (highest random weight) hashing: every (key, invoker) pair
/// gets a score and the key goes to its highest-scoring invoker. An action
/// keeps its home while its invoker is healthy, whoever else comes or goes;
/// only the actions of an invoker that leaves move, spread over the rest.
pub fn home_invoker(key: &str, invokers: &[String]) -> Option<String> {
    invokers
        .iter()
        .max_by_key(|invoker| {
            // SipHash with fixed keys: the same on every controller built
            // from this source, which is all that affinity needs.
            #[allow(deprecated)]
            let mut hasher = std::hash::SipHasher::new();
            key.hash(&mut hasher);
            invoker.hash(&mut hasher);
            hasher.finish()
        })
        .cloned()
}

/// The affinity key of a message: its action's fully qualified name.
fn affinity_key(message: &InvokerMessage) -> String {
    match message {
        InvokerMessage::Activate(activation) => activation.action.path(),
        InvokerMessage::Prewarm(action) => action.path(),
    }
}

/// The controller's side of the NATS bus: sends each message to its
/// action's home invoker, listens to heartbeats and completions, and
/// moves the messages of dead invokers to living ones.
pub struct NatsQueue {
    bus: NatsBus,
    invokers: Arc<InvokerSet>,
    reply_subject: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NatsQueue")
            .field("reply_subject", &self.reply_subject)
            .finish_non_exhaustive()
    }
}

impl NatsQueue {
    /// Starts the controller `controller` (a token unique to this process)
    /// on `bus`: completions of its activations go to `completions`.
    pub async fn start(
        bus: NatsBus,
        controller: &str,
        completions: Arc<dyn CompletionSink>,
    ) -> Result<Self, NatsError> {
        if !valid_invoker_id(controller) {
            return Err(NatsError::InvalidInvokerId(controller.to_owned()));
        }
        let invokers = Arc::new(InvokerSet::default());
        let subscribe = |subject: String| {
            let client = bus.client.clone();
            async move {
                client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|source| NatsError::Subscribe { subject, source })
            }
        };
        let mut heartbeats = subscribe(bus.heartbeat_subject()).await?;
        let reply_subject = bus.done_subject(controller);
        let mut done = subscribe(reply_subject.clone()).await?;
        let listening = {
            let invokers = invokers.clone();
            tokio::spawn(async move {
                while let Some(message) = heartbeats.next().await {
                    match serde_json::from_slice::<Heartbeat>(&message.payload) {
                        Ok(heartbeat) if valid_invoker_id(&heartbeat.invoker) => {
                            invokers.beat(heartbeat, Instant::now());
                        }
                        _ => tracing::warn!("ignoring a malformed heartbeat"),
                    }
                }
            })
        };
        let completing = tokio::spawn(async move {
            while let Some(message) = done.next().await {
                match serde_json::from_slice::<Completion>(&message.payload) {
                    Ok(completion) => completions.complete(completion),
                    Err(error) => tracing::warn!(%error, "ignoring a malformed completion"),
                }
            }
        });
        let takeover = tokio::spawn(take_over_dead_invokers(bus.clone(), invokers.clone()));
        Ok(Self {
            bus,
            invokers,
            reply_subject,
            tasks: vec![listening, completing, takeover],
        })
    }

    /// The invokers heard of lately.
    pub fn invokers(&self) -> &Arc<InvokerSet> {
        &self.invokers
    }
}

impl Drop for NatsQueue {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl ActivationQueue for NatsQueue {
    async fn send(&self, message: InvokerMessage) -> Result<(), BusError> {
        if !self.bus.connected() {
            return Err(BusError::Unavailable);
        }
        let key = affinity_key(&message);
        let invoker = self
            .invokers
            .home(&key, Instant::now())
            .ok_or(BusError::NoHealthyInvoker)?;
        let mut headers = HeaderMap::new();
        headers.insert(REPLY_HEADER, self.reply_subject.as_str());
        headers.insert(KEY_HEADER, key.as_str());
        if let InvokerMessage::Activate(activation) = &message {
            // JetStream drops a second publish of one activation.
            headers.insert(
                header::NATS_MESSAGE_ID,
                activation.activation_id.to_string().as_str(),
            );
        }
        let payload = serde_json::to_vec(&message).map_err(BusError::Encode)?;
        self.bus.publish(&invoker, headers, payload.into()).await
    }
}

/// Every second, finds the consumers of invokers not heard of lately that
/// still hold messages, and moves those messages to living invokers.
async fn take_over_dead_invokers(bus: NatsBus, invokers: Arc<InvokerSet>) {
    let started = Instant::now();
    let taking_over: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        // A controller that just started has not heard the living yet.
        if started.elapsed() < HEALTHY_FOR || !bus.connected() {
            continue;
        }
        let mut names = bus.stream.consumer_names();
        let mut dead = Vec::new();
        while let Some(name) = names.next().await {
            let Ok(name) = name else { break };
            if let Some(invoker) = name.strip_prefix("invoker-")
                && !invokers.is_healthy(invoker, Instant::now())
            {
                dead.push(invoker.to_owned());
            }
        }
        for invoker in dead {
            let claimed = taking_over
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(invoker.clone());
            if !claimed {
                continue;
            }
            let (bus, invokers, taking_over) = (bus.clone(), invokers.clone(), taking_over.clone());
            tokio::spawn(async move {
                if let Err(error) = take_over(&bus, &invokers, &invoker).await {
                    tracing::warn!(%error, invoker, "taking over a dead invoker's messages failed");
                }
                taking_over
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&invoker);
            });
        }
    }
}

/// Moves the messages of dead `invoker` to the home invokers of their
/// actions among the living, until none is left or it lives again. A
/// message it had taken comes back after [`ACK_WAIT`] and moves marked as
/// redelivered.
async fn take_over(
    bus: &NatsBus,
    invokers: &InvokerSet,
    invoker: &str,
) -> Result<(), async_nats::Error> {
    let mut consumer = bus.consumer_of(invoker).await?;
    loop {
        if invokers.is_healthy(invoker, Instant::now()) {
            return Ok(());
        }
        let info = consumer.info().await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            // Nothing left: forget the consumer, so that those of invokers
            // gone for good do not pile up. An invoker that was only
            // slow makes its consumer again on its next pull.
            bus.stream.delete_consumer(&consumer_name(invoker)).await?;
            return Ok(());
        }
        let mut batch = consumer
            .batch()
            .max_messages(64)
            .expires(Duration::from_secs(1))
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message?;
            let headers = message.headers.clone().unwrap_or_default();
            let key = headers
                .get(KEY_HEADER)
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default();
            let Some(target) = invokers.home(&key, Instant::now()) else {
                // Nobody to move it to: it waits where it is.
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                continue;
            };
            let info = message.info()?;
            let mut moved = headers.clone();
            if info.delivered > 1 {
                moved.insert(REDELIVERED_HEADER, "true");
            }
            // The same id if this move is repeated: JetStream keeps one.
            moved.insert(
                header::NATS_MESSAGE_ID,
                format!("moved-{}-{}", info.stream, info.stream_sequence).as_str(),
            );
            bus.publish(&target, moved, message.payload.clone())
                .await
                .map_err(Box::new)?;
            message.double_ack().await?;
            tracing::info!(
                from = invoker,
                to = target,
                key,
                "moved a dead invoker's message"
            );
        }
    }
}

/// The invoker's side of the NATS bus: its consumer, heartbeats and
/// completions.
pub struct NatsInvoker {
    bus: NatsBus,
    id: String,
    replies: Arc<Mutex<HashMap<crate::ActivationId, String>>>,
    stop: watch::Sender<bool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NatsInvoker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NatsInvoker")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl NatsInvoker {
    /// Joins the bus as invoker `id`: starts its heartbeat and opens its
    /// consumer. Returns the invoker's link, its feed and the sink its
    /// completions go to.
    pub async fn join(
        bus: NatsBus,
        id: &str,
    ) -> Result<(Self, NatsFeed, Arc<NatsCompletions>), NatsError> {
        if !valid_invoker_id(id) {
            return Err(NatsError::InvalidInvokerId(id.to_owned()));
        }
        // Made now, so that a bus without JetStream fails the join.
        bus.consumer_of(id).await?;
        let heartbeat = {
            let (client, subject) = (bus.client.clone(), bus.heartbeat_subject());
            let beat = serde_json::to_vec(&Heartbeat {
                invoker: id.to_owned(),
                leaving: false,
            })
            .unwrap_or_default();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
                loop {
                    tick.tick().await;
                    // While disconnected, the client buffers: a stale beat
                    // is harmless.
                    let _ = client.publish(subject.clone(), beat.clone().into()).await;
                }
            })
        };
        let (stop, stopped) = watch::channel(false);
        let replies = Arc::new(Mutex::new(HashMap::new()));
        let feed = NatsFeed {
            bus: bus.clone(),
            id: id.to_owned(),
            inbox: None,
            stopped,
            replies: replies.clone(),
        };
        let completions = Arc::new(NatsCompletions {
            client: bus.client.clone(),
            replies: replies.clone(),
        });
        Ok((
            Self {
                bus,
                id: id.to_owned(),
                replies,
                stop,
                heartbeat,
            },
            feed,
            completions,
        ))
    }

    /// Stops taking messages: the feed ends.
    pub fn stop_taking(&self) {
        self.stop.send_replace(true);
    }

    /// Says goodbye on the heartbeat subject (the controller sends this
    /// invoker nothing more) and flushes what is buffered.
    pub async fn leave(self) {
        self.heartbeat.abort();
        let goodbye = serde_json::to_vec(&Heartbeat {
            invoker: self.id.clone(),
            leaving: true,
        })
        .unwrap_or_default();
        let _ = self
            .bus
            .client
            .publish(self.bus.heartbeat_subject(), goodbye.into())
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.bus.client.flush()).await;
        drop(self.replies);
    }
}

/// Completions of an invoker on the NATS bus, each to the controller that
/// sent its activation.
pub struct NatsCompletions {
    client: async_nats::Client,
    replies: Arc<Mutex<HashMap<crate::ActivationId, String>>>,
}

impl CompletionSink for NatsCompletions {
    fn complete(&self, completion: Completion) {
        let id = completion.activation.activation_id;
        let reply = self
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let Some(reply) = reply else {
            return;
        };
        let payload = match serde_json::to_vec(&completion) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, %id, "encoding a completion failed");
                return;
            }
        };
        let client = self.client.clone();
        // Best effort: the record is stored; a controller that misses it
        // answers a waiting caller 202 when its wait ends.
        tokio::spawn(async move {
            if let Err(error) = client.publish(reply, payload.into()).await {
                tracing::warn!(%error, %id, "publishing a completion failed");
            }
        });
    }
}

/// An invoker's messages, pulled one at a time.
///
/// Each pull is one request to the consumer (`$JS.API.CONSUMER.MSG.NEXT`,
/// one message, expiring after `PULL_EXPIRES`) answered on one inbox
/// that the feed subscribes to once: no subscription made and dropped per
/// message, as a fresh batch would do.
pub struct NatsFeed {
    bus: NatsBus,
    id: String,
    /// Where pulled messages (and the server's "nothing came") arrive.
    inbox: Option<(String, async_nats::Subscriber)>,
    stopped: watch::Receiver<bool>,
    replies: Arc<Mutex<HashMap<crate::ActivationId, String>>>,
}

/// How long one pull waits on the server for a message.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

impl NatsFeed {
    /// After a failed pull: waits a little, and makes the consumer again
    /// in case a controller deleted it, taking this invoker for dead.
    async fn recover(&mut self) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Err(error) = self.bus.consumer_of(&self.id).await {
            tracing::debug!(%error, "making this invoker's consumer again failed");
        }
    }

    /// Pulls one message, waiting at most about a second; `None` if none
    /// came.
    async fn pull(&mut self) -> Option<jetstream::Message> {
        let (inbox, subscriber) = match &mut self.inbox {
            Some(open) => open,
            None => {
                let inbox = self.bus.client.new_inbox();
                match self.bus.client.subscribe(inbox.clone()).await {
                    Ok(subscriber) => self.inbox.insert((inbox, subscriber)),
                    Err(error) => {
                        tracing::debug!(%error, "subscribing to a pull inbox failed; retrying");
                        self.recover().await;
                        return None;
                    }
                }
            }
        };
        let request = format!("{{\"batch\":1,\"expires\":{}}}", PULL_EXPIRES.as_nanos());
        let subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{}",
            consumer_name(&self.id)
        );
        if let Err(error) = self
            .bus
            .client
            .publish_with_reply(subject, inbox.clone(), request.into())
            .await
        {
            tracing::debug!(%error, "pulling from NATS failed; retrying");
            self.recover().await;
            return None;
        }
        // A request lost with a connection gets no answer: ask again after
        // a while. An answer to an earlier request that comes late is as
        // good as one to this request.
        let answer =
            tokio::time::timeout(PULL_EXPIRES + Duration::from_secs(1), subscriber.next()).await;
        match answer {
            Ok(Some(message)) => match message.status {
                None | Some(async_nats::StatusCode::OK) if message.reply.is_some() => {
                    Some(jetstream::Message {
                        message,
                        context: self.bus.jetstream.clone(),
                    })
                }
                // The request expired with nothing to deliver.
                Some(async_nats::StatusCode::TIMEOUT) => None,
                status => {
                    // No such consumer (a controller took this invoker for
                    // dead and deleted it), or the server refused the pull.
                    tracing::debug!(?status, description = ?message.description, "pulling from NATS failed; retrying");
                    self.recover().await;
                    None
                }
            },
            Ok(None) => {
                // The subscription ended: make a new one.
                self.inbox = None;
                None
            }
            Err(_elapsed) => None,
        }
    }
}

#[async_trait]
impl DeliveryFeed for NatsFeed {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if *self.stopped.borrow() {
                return None;
            }
            let mut stopped = self.stopped.clone();
            let pulled = tokio::select! {
                pulled = self.pull() => pulled,
                _ = stopped.changed() => return None,
            };
            let Some(message) = pulled else { continue };
            let delivered = message.info().map_or(1, |info| info.delivered);
            let headers = message.headers.clone().unwrap_or_default();
            let redelivered = delivered > 1 || headers.get(REDELIVERED_HEADER).is_some();
            let decoded = serde_json::from_slice::<InvokerMessage>(&message.payload);
            let (message, acker) = message.split();
            let receipt = Box::new(NatsReceipt { acker });
            let decoded = match decoded {
                Ok(decoded) => decoded,
                Err(error) => {
                    // Never deliverable: drop it rather than redeliver it.
                    tracing::error!(%error, subject = %message.subject, "dropping an undecodable message");
                    let _ = receipt.acker.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            if let (InvokerMessage::Activate(activation), Some(reply)) =
                (&decoded, headers.get(REPLY_HEADER))
            {
                self.replies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(activation.activation_id, reply.as_str().to_owned());
            }
            return Some(Delivery {
                message: decoded,
                redelivered,
                receipt,
            });
        }
    }
}

/// Acknowledges one message to JetStream.
struct NatsReceipt {
    acker: jetstream::message::Acker,
}

#[async_trait]
impl Receipt for NatsReceipt {
    async fn done(&self) {
        // Sent without waiting for the server's confirmation: one round
        // trip less per activation. An acknowledgement that is lost costs
        // nothing but time: the message comes back marked redelivered after
        // `ACK_WAIT`, and its record, stored before this, is reported then.
        if let Err(error) = self.acker.ack().await {
            tracing::warn!(%error, "acknowledging a message failed; it will come back as redelivered");
        }
    }

    async fn in_progress(&self) {
        let _ = self.acker.ack_with(AckKind::Progress).await;
    }

    async fn retry_later(&self) {
        let _ = self
            .acker
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
    }

    fn progress_interval(&self) -> Option<Duration> {
        Some(PROGRESS_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn an_action_keeps_its_home_while_other_invokers_come_and_go() {
        let three = ids(&["a", "b", "c"]);
        let keys: Vec<String> = (0..200).map(|i| format!("guest/action{i}")).collect();
        let homes: Vec<String> = keys
            .iter()
            .map(|key| home_invoker(key, &three).expect("a home"))
            .collect();
        // Every invoker is someone's home.
        for invoker in &three {
            assert!(homes.contains(invoker), "{invoker} got nothing");
        }
        // Without `c`, only `c`'s actions move.
        let two = ids(&["a", "b"]);
        for (key, home) in keys.iter().zip(&homes) {
            let now = home_invoker(key, &two).expect("a home");
            if home != "c" {
                assert_eq!(&now, home, "{key} moved though its home stayed");
            }
        }
        assert_eq!(home_invoker("guest/x", &[]), None);
    }

    #[test]
    fn an_invoker_not_heard_of_lately_is_not_healthy() {
        let set = InvokerSet::default();
        let start = Instant::now();
        set.beat(
            Heartbeat {
                invoker: "a".into(),
                leaving: false,
            },
            start,
        );
        set.beat(
            Heartbeat {
                invoker: "b".into(),
                leaving: false,
            },
            start,
        );
        assert_eq!(set.healthy(start), ids(&["a", "b"]));
        let later = start + HEALTHY_FOR;
        assert!(set.healthy(later).is_empty());
        assert_eq!(set.home("guest/x", later), None);
        set.beat(
            Heartbeat {
                invoker: "a".into(),
                leaving: true,
            },
            start,
        );
        assert_eq!(set.healthy(start), ids(&["b"]));
    }

    #[test]
    fn invoker_ids_are_single_subject_tokens() {
        for good in ["invoker0", "node-1_a"] {
            assert!(valid_invoker_id(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(65)] {
            assert!(!valid_invoker_id(bad), "{bad}");
        }
    }
}
