//! `POST …/actions/{name}`: invoke, blocking or not.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clemmys_bus::{ActivationMessage, ActivationRunner, BusError, InvokerMessage};
use clemmys_whisk::action::merge_parameters;
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::{
    Activation, ActivationId, ActivationResponse, ActivationStatus, ApiActivationStarted,
    EntityName, Exec, KeyValues, NamespaceRecord,
};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::body::read_limited;
use crate::query::{self, Params, QueryParams};
use crate::sequence::SequenceRun;
use crate::{ApiError, Controller};

/// The header OpenWhisk puts on every invoke answer.
pub const ACTIVATION_ID_HEADER: &str = "x-openwhisk-activation-id";

/// The field of a confidential invoke body that carries the sealed envelope.
pub const SEALED_FIELD: &str = "sealed";

/// The error of the record kept for an acknowledged activation that was
/// still running when the node stopped.
pub const INTERRUPTED: &str = "The node stopped before this activation finished; it may have \
run in part or not at all, and its result is lost.";

/// How the caller wants the answer.
#[derive(Debug, Clone, Copy)]
pub struct InvokeMode {
    /// Wait for the activation to finish.
    pub blocking: bool,
    /// Answer only `response.result`.
    pub result_only: bool,
    /// How long to wait before answering 202.
    pub wait: Duration,
}

/// `POST …/actions/{name}?blocking=&result=&timeout=`.
#[utoipa::path(
    post,
    path = "/namespaces/{ns}/actions/{name}",
    operation_id = "actions_invoke",
    tag = "Actions",
    summary = "Invoke an action",
    params(crate::api_docs::EntityPath, crate::api_docs::InvokeOptions),
    request_body(content = crate::api_docs::Parameters, description = "The invoke's parameters: any JSON object (may be empty), merged over the bound ones; for a confidential action, the sealed envelope a Clemmys client makes."),
    responses((status = 200, description = "Blocking: the activation record, or its result with `result=true`.", body = crate::api_docs::BlockingAnswer), (status = 202, description = "Not blocking, or the wait ran out: the activation id.", body = clemmys_whisk::ApiActivationStarted), (status = 502, description = "Blocking, and the action failed: the activation record, or its result with `result=true`.", body = crate::api_docs::BlockingAnswer))
)]
pub async fn invoke(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    QueryParams(params): QueryParams,
    body: Body,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = EntityName::new(name).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let mode = invoke_mode(&controller, &params)?;
    let bytes = read_limited(body, MAX_PAYLOAD_BYTES).await?;
    let params = parse_params(&bytes)?;
    let action = controller
        .action(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let bound = action.parameters.clone();
    start(&controller, &caller, action, &bound, params, mode).await
}

/// The answer mode of an invoke's query (`blocking`, `result`, `timeout`).
pub(crate) fn invoke_mode(
    controller: &Controller,
    params: &Params,
) -> Result<InvokeMode, ApiError> {
    let max_wait = controller.config.max_blocking_wait;
    let wait_ms = query::wait_timeout(params, max_wait.as_millis() as u64)?;
    Ok(InvokeMode {
        blocking: query::flag(params, "blocking", false)?,
        result_only: query::flag(params, "result", false)?,
        wait: wait_ms.map_or(max_wait, Duration::from_millis),
    })
}

/// Starts `action` for `caller` (whose namespace keeps the record) with
/// `params` merged over `bound` (its own parameters, under its package's
/// for an action in a package), and answers as `mode` asks.
pub(crate) async fn start(
    controller: &Arc<Controller>,
    caller: &Caller,
    action: Arc<clemmys_whisk::Action>,
    bound: &KeyValues,
    params: Map<String, Value>,
    mode: InvokeMode,
) -> Result<Response, ApiError> {
    let payload = if action.is_confidential() {
        if !bound.is_empty() {
            // Never merged by the provider: refused at create, and here too.
            return Err(ApiError::bad_request(
                "A confidential action cannot have bound parameters: the provider would merge \
                 them in the clear.",
            ));
        }
        if !params.get(SEALED_FIELD).is_some_and(Value::is_string) {
            return Err(ApiError::bad_request(
                "This action is confidential: its parameters must be sealed by a Clemmys client \
                 (clemmys action invoke).",
            ));
        }
        Value::Object(params)
    } else {
        let merged = merge_parameters(bound, &action.annotations, params)
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        checked_payload(merged)?
    };
    let (id, outcome) = activate(controller, &caller.0, action, payload, mode).await?;
    Ok(with_activation_header(
        outcome.into_response(mode.result_only),
        id,
    ))
}

/// `params` as an activation payload, if it is within the payload limit.
pub(crate) fn checked_payload(params: Map<String, Value>) -> Result<Value, ApiError> {
    let payload = Value::Object(params);
    let size = encoded_len(&payload);
    if size > MAX_PAYLOAD_BYTES {
        return Err(ApiError::too_large("Request", size, MAX_PAYLOAD_BYTES));
    }
    Ok(payload)
}

/// How far an activation got while its caller waited.
pub(crate) enum Outcome {
    /// It finished: its record.
    Finished(Arc<Activation>),
    /// The answer is already settled: 202 once the wait ran out (or for a
    /// non-blocking invoke), or an error.
    Answered(Response),
}

impl Outcome {
    /// The answer of the REST API: the record (or its result) of a
    /// finished activation, else the settled answer.
    pub(crate) fn into_response(self, result_only: bool) -> Response {
        match self {
            Outcome::Finished(activation) => activation_answer(&activation, result_only),
            Outcome::Answered(response) => response,
        }
    }
}

/// Admits and starts `action` with `payload` (final, already merged) on
/// behalf of namespace `owner`, which keeps the record and is charged for
/// it; runs it as `mode` asks. Every way in (invoke, package invoke, web
/// action) goes through here, so all are throttled and recorded alike.
pub(crate) async fn activate(
    controller: &Arc<Controller>,
    owner: &NamespaceRecord,
    action: Arc<clemmys_whisk::Action>,
    payload: Value,
    mode: InvokeMode,
) -> Result<(ActivationId, Outcome), ApiError> {
    let namespace = owner.name.clone();
    let activation_id = crate::ids::activation_id();
    controller.throttle.admit(
        namespace.as_str(),
        activation_id,
        &owner.limits,
        clemmys_whisk::now_ms(),
    )?;
    if let Exec::Sequence { .. } = action.exec {
        let run = SequenceRun {
            sequence: action,
            namespace: namespace.to_string(),
            subject: namespace.to_string(),
            payload,
            activation_id,
            accepted_at: clemmys_whisk::now_ms(),
            cause: None,
        };
        return Ok((activation_id, controller.run_sequence(run, mode).await));
    }
    let message = ActivationMessage {
        activation_id,
        namespace: namespace.to_string(),
        subject: namespace.to_string(),
        action,
        payload,
        blocking: mode.blocking,
        cause: None,
        accepted_at: clemmys_whisk::now_ms(),
    };
    Ok((activation_id, controller.run(message, mode).await))
}

/// Parameters of an invoke body: empty means `{}`; anything but an object is
/// malformed.
pub(crate) fn parse_params(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes).map_err(ApiError::malformed)? {
        Value::Object(params) => Ok(params),
        _ => Err(ApiError::malformed("the parameters must be a JSON object")),
    }
}

/// The length of `value` as JSON, without keeping the bytes.
fn encoded_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // A `Value` always encodes; were it not to, nothing is sent.
        Err(_) => 0,
    }
}

/// The record kept for `message` if the node stops before the
/// activation's own record is stored.
fn stand_in(message: &ActivationMessage) -> Activation {
    let action = &message.action;
    let mut annotations = KeyValues::default();
    annotations.set("path", Value::String(action.path()));
    annotations.set("kind", Value::String(action.exec.kind().to_owned()));
    annotations.set("limits", json!(action.limits));
    message.record(
        message.accepted_at,
        0,
        ActivationResponse::error(ActivationStatus::InternalError, INTERRUPTED),
        Vec::new(),
        annotations,
    )
}

/// What a stand-in record is built from, kept while a blocking invoke
/// waits: the record itself is built only if the wait runs out.
struct StandInSource(ActivationMessage);

impl StandInSource {
    /// Everything of `message` but its payload.
    fn of(message: &ActivationMessage) -> Self {
        Self(ActivationMessage {
            activation_id: message.activation_id,
            namespace: message.namespace.clone(),
            subject: message.subject.clone(),
            action: message.action.clone(),
            payload: Value::Null,
            blocking: message.blocking,
            cause: message.cause,
            accepted_at: message.accepted_at,
        })
    }

    fn record(&self) -> Activation {
        stand_in(&self.0)
    }
}

impl Controller {
    /// Answers 202 for an activation that goes on without the caller, once
    /// a stand-in record is durable: if the node stops before the
    /// activation's own record is stored, the caller still finds a record
    /// saying so under this id. If the stand-in cannot be stored the answer
    /// is 503, never a 202 that a crash could leave without a record; this
    /// holds for a blocking invoke whose wait ran out too.
    pub(crate) async fn acknowledge(&self, stand_in: Activation) -> Response {
        let id = stand_in.activation_id;
        match self.store.put_stand_in(stand_in).await {
            Ok(()) => accepted(id),
            Err(error) => {
                tracing::error!(%error, %id, "storing the stand-in of an accepted activation failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "The activation {id} was started but could not be recorded as accepted: \
                         the store is failing. It may still run; if the node stops before it \
                         finishes, no record of it will be kept."
                    ),
                )
                .into_response()
            }
        }
    }

    /// Runs one blocking activation with the local invoker, on this task,
    /// and answers as `mode` asks. If the wait runs out the activation goes
    /// on without the caller (see [`ActivationRunner::run`]).
    async fn run_direct(
        &self,
        invoker: Arc<dyn ActivationRunner>,
        message: ActivationMessage,
        mode: InvokeMode,
    ) -> Outcome {
        let id = message.activation_id;
        let stand_in = StandInSource::of(&message);
        match tokio::time::timeout(mode.wait, invoker.run(message)).await {
            Ok(Ok(activation)) => Outcome::Finished(activation),
            Ok(Err(error)) => {
                // It was never admitted, so never completed.
                self.throttle.release(&id);
                Outcome::Answered(bus_error(error).into_response())
            }
            Err(_) => Outcome::Answered(self.acknowledge(stand_in.record()).await),
        }
    }

    /// Publishes one activation and answers as `mode` asks.
    pub(crate) async fn run(&self, message: ActivationMessage, mode: InvokeMode) -> Outcome {
        if mode.blocking
            && let Some(invoker) = &self.local_invoker
        {
            return self.run_direct(invoker.clone(), message, mode).await;
        }
        let id = message.activation_id;
        // Published from here on: should its completion be lost, the slot
        // is released once its record is found.
        self.throttle
            .expect_completion(&id, message.accepted_at, message.action.limits.timeout);
        if !mode.blocking {
            // The stand-in first: a 503 then means the activation never
            // started, so a caller may retry it without running it twice.
            let acknowledged = self.acknowledge(stand_in(&message)).await;
            if acknowledged.status() != StatusCode::ACCEPTED {
                self.throttle.release(&id);
                return Outcome::Answered(acknowledged);
            }
            return match self
                .queue
                .send(InvokerMessage::Activate(Box::new(message)))
                .await
            {
                Ok(()) => Outcome::Answered(acknowledged),
                Err(error) => {
                    // Its stand-in stays: the next start records it as
                    // interrupted, which it was.
                    self.throttle.release(&id);
                    Outcome::Answered(bus_error(error).into_response())
                }
            };
        }
        let completion = self.completions.wait_for(id);
        let stand_in = StandInSource::of(&message);
        if let Err(error) = self
            .queue
            .send(InvokerMessage::Activate(Box::new(message)))
            .await
        {
            self.completions.forget(&id);
            self.throttle.release(&id);
            return Outcome::Answered(bus_error(error).into_response());
        }
        let finished = async {
            tokio::select! {
                done = completion => done.map(|done| done.activation),
                record = self.stored_record(&stand_in.0.namespace, id) => Ok(record),
            }
        };
        match tokio::time::timeout(mode.wait, finished).await {
            Ok(Ok(record)) => {
                self.completions.forget(&id);
                Outcome::Finished(record)
            }
            Ok(Err(_)) => Outcome::Answered(
                ApiError::internal("invoker dropped a blocking activation").into_response(),
            ),
            Err(_) => {
                self.completions.forget(&id);
                Outcome::Answered(self.acknowledge(stand_in.record()).await)
            }
        }
    }

    /// Activation `id`'s record once the store has it, looked for every
    /// [`RECORD_POLL`]: the bus may lose an invoker's completion (a
    /// reconnect drops what was published meanwhile), while its record is
    /// stored within a group commit, and a lost completion must not cost a
    /// blocking caller the whole wait. OpenWhisk's controller polls its
    /// activation store the same way.
    async fn stored_record(&self, namespace: &str, id: ActivationId) -> Arc<Activation> {
        let mut poll =
            tokio::time::interval_at(tokio::time::Instant::now() + RECORD_POLL, RECORD_POLL);
        loop {
            poll.tick().await;
            if let Ok(Some(record)) = self.store.get_activation(namespace, &id).await {
                return Arc::new(record);
            }
        }
    }
}

/// How often a blocking invoke through the bus looks for its record in the
/// store, in case its completion was lost.
const RECORD_POLL: Duration = Duration::from_secs(1);

fn bus_error(error: BusError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

/// 202 `{activationId}`.
pub(crate) fn accepted(id: ActivationId) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(ApiActivationStarted { activation_id: id }),
    )
        .into_response()
}

/// 200 for success, 502 for application and developer errors, 500 for
/// internal ones; the body is the activation or only its result.
pub fn activation_answer(activation: &Activation, result_only: bool) -> Response {
    let status = match activation.response.status {
        ActivationStatus::Success => StatusCode::OK,
        ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => {
            StatusCode::BAD_GATEWAY
        }
        ActivationStatus::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    // Serialised straight from the record, without a `Value` in between.
    if !result_only {
        return (status, Json(activation)).into_response();
    }
    match &activation.response.result {
        Some(result) => (status, Json(result)).into_response(),
        None => (status, Json(json!({}))).into_response(),
    }
}

/// `response` with OpenWhisk's activation id header.
pub(crate) fn with_activation_header(mut response: Response, id: ActivationId) -> Response {
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(ACTIVATION_ID_HEADER, value);
    }
    response
}
