//! `Controller::acknowledge`: a 202 only once the stand-in is durable,
//! otherwise a 503, against a store whose stand-in writes fail.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use clemmys_bus::{ActivationQueue, BusError, CompletionRegistry, InvokerMessage};
use clemmys_store::faults::{Failing, FailingWrites};
use clemmys_store::{EntityStore, RedbStore};
use clemmys_whisk::{
    Action, Activation, ActivationId, ActivationResponse, ActivationStatus, EntityName, KeyValues,
};

use crate::{CodeCheck, Controller, ControllerConfig, Throttle};

/// A bus nobody reads, counting what was sent to it.
#[derive(Default)]
struct CountingBus(std::sync::atomic::AtomicUsize);

#[async_trait]
impl ActivationQueue for CountingBus {
    async fn send(&self, _message: InvokerMessage) -> Result<(), BusError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

pub(crate) struct AnyCode;

impl CodeCheck for AnyCode {
    fn check(&self, _code: &[u8], _confidential: bool) -> Result<(), String> {
        Ok(())
    }
}

/// A controller over `store` whose bus nobody reads.
pub(crate) fn controller(store: Arc<dyn EntityStore>) -> Controller {
    controller_on(store, Arc::new(CountingBus::default()))
}

fn controller_on(store: Arc<dyn EntityStore>, bus: Arc<CountingBus>) -> Controller {
    Controller::new(
        store,
        bus,
        Arc::new(CompletionRegistry::default()),
        Arc::new(Throttle::default()),
        Arc::new(AnyCode),
        ControllerConfig::default(),
    )
}

fn stand_in(id: u8) -> Activation {
    Activation {
        namespace: "guest".into(),
        name: "slow".into(),
        subject: "guest".into(),
        activation_id: ActivationId::from_bytes([id; 16]),
        version: "0.0.1".into(),
        publish: false,
        start: 1,
        end: 1,
        duration: 0,
        cause: None,
        response: ActivationResponse::error(ActivationStatus::InternalError, "interrupted"),
        logs: Vec::new(),
        annotations: KeyValues::default(),
    }
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn an_acknowledgement_whose_stand_in_cannot_be_stored_is_a_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
    let controller = controller(Arc::new(FailingWrites::new(store, Failing::StandIns)));
    let response = controller.acknowledge(stand_in(1)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = body_text(response).await;
    assert!(
        body.contains(&ActivationId::from_bytes([1; 16]).to_string()),
        "{body}"
    );
    assert!(body.contains("could not be recorded"), "{body}");
}

#[tokio::test]
async fn an_acknowledgement_is_a_202_once_its_stand_in_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open"));
    let controller = controller(store.clone());
    let response = controller.acknowledge(stand_in(2)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // The stand-in is there to be settled if the activation never ends.
    assert_eq!(store.settle_interrupted().await.expect("settle"), 1);
    let id = ActivationId::from_bytes([2; 16]);
    assert!(
        store
            .get_activation("guest", &id)
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn a_non_blocking_invoke_whose_stand_in_cannot_be_stored_never_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
    let bus = Arc::new(CountingBus::default());
    let controller = controller_on(
        Arc::new(FailingWrites::new(store, Failing::StandIns)),
        bus.clone(),
    );
    let message = non_blocking_message(ActivationId::from_bytes([3; 16]));
    let mode = crate::invoke::InvokeMode {
        blocking: false,
        result_only: false,
        wait: std::time::Duration::from_secs(1),
    };
    let response = controller.run(message, mode).await.into_response(false);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A 503 the caller may retry: nothing went to the invokers.
    assert_eq!(bus.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A non-blocking activation `id` of `guest/slow`, as the controller
/// publishes it (the action's code is never looked at).
pub(crate) fn non_blocking_message(id: ActivationId) -> clemmys_bus::ActivationMessage {
    let action = Action {
        namespace: EntityName::new("guest").expect("name"),
        name: EntityName::new("slow").expect("name"),
        package: None,
        version: "0.0.1".parse().expect("version"),
        publish: false,
        exec: clemmys_whisk::Exec::Wasm {
            code_digest: "sha256:00".into(),
            code_size: 1,
            main: None,
        },
        limits: Default::default(),
        annotations: KeyValues::default(),
        parameters: KeyValues::default(),
        updated: 0,
    };
    clemmys_bus::ActivationMessage {
        activation_id: id,
        namespace: "guest".into(),
        subject: "guest".into(),
        action: Arc::new(action),
        payload: serde_json::json!({}),
        blocking: false,
        cause: None,
        accepted_at: 1,
    }
}

/// An invoker that stores each activation's record and whose completion
/// is lost on the way back (a bus that reconnected meanwhile).
struct CompletionLost(Arc<dyn EntityStore>);

#[async_trait]
impl ActivationQueue for CompletionLost {
    async fn send(&self, message: InvokerMessage) -> Result<(), BusError> {
        let InvokerMessage::Activate(message) = message else {
            return Ok(());
        };
        let mut record = stand_in(0);
        record.activation_id = message.activation_id;
        record.response = ActivationResponse::success(serde_json::json!({"ran": true}));
        let store = self.0.clone();
        tokio::spawn(async move { store.put_activation(record).await });
        Ok(())
    }
}

#[tokio::test]
async fn a_blocking_invoke_whose_completion_is_lost_is_answered_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn EntityStore> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open"));
    let controller = Controller::new(
        store.clone(),
        Arc::new(CompletionLost(store)),
        Arc::new(CompletionRegistry::default()),
        Arc::new(Throttle::default()),
        Arc::new(AnyCode),
        ControllerConfig::default(),
    );
    let mut message = non_blocking_message(ActivationId::from_bytes([4; 16]));
    message.blocking = true;
    let mode = crate::invoke::InvokeMode {
        blocking: true,
        result_only: false,
        // Long enough that answering 202 would be the wait running out.
        wait: std::time::Duration::from_secs(30),
    };
    let response = controller.run(message, mode).await.into_response(false);
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_text(response).await;
    assert!(body.contains("\"ran\":true"), "{body}");
}
