//! OpenWhisk sequences: the controller runs the components one after
//! another, each result becoming the next component's parameters, and
//! records the sequence's own activation (component ids as its logs, the
//! last component's response, the summed duration).
//!
//! For a confidential sequence the controller does exactly the same with
//! opaque values: each component's sealed output is the next component's
//! sealed input, bound by the chain ticket the enclaves check. It cannot
//! read, reorder, skip, repeat or splice steps without the enclaves or the
//! client noticing (see docs/PROTOCOL.md, "Chains").

use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use clemmys_bus::{ActivationMessage, InvokerMessage};
use clemmys_whisk::action::merge_parameters;
use clemmys_whisk::{
    Action, Activation, ActivationId, ActivationResponse, ActivationStatus, EntityName, Exec,
    FullyQualifiedName, KeyValues,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::invoke::{INTERRUPTED, InvokeMode, Outcome};
use crate::{ApiError, Controller};

/// How long past its own time limit a component may take before the
/// sequence gives up on it (queueing, compiling, storing).
const COMPONENT_GRACE: Duration = Duration::from_secs(60);

/// Who invoked a sequence and with what.
pub struct SequenceRun {
    /// The sequence action.
    pub sequence: Arc<Action>,
    /// The invoking namespace.
    pub namespace: String,
    /// Who invoked it.
    pub subject: String,
    /// The sequence's parameters (sealed for a confidential sequence).
    pub payload: Value,
    /// The sequence's activation id.
    pub activation_id: ActivationId,
    /// When it was accepted, epoch ms.
    pub accepted_at: u64,
    /// The sequence this one runs as a component of (none when invoked).
    pub cause: Option<ActivationId>,
}

impl Controller {
    /// Starts a sequence and answers as `mode` asks; the sequence runs to
    /// its end even when the caller stops waiting.
    pub(crate) async fn run_sequence(
        self: &Arc<Self>,
        run: SequenceRun,
        mode: InvokeMode,
    ) -> Outcome {
        let id = run.activation_id;
        let stand_in = self.sequence_record(&run, Vec::new(), internal(INTERRUPTED));
        let (done, finished) = oneshot::channel();
        let controller = self.clone();
        tokio::spawn(async move {
            let record = controller.orchestrate(run, 0).await;
            if let Err(error) = controller.store.put_activation(record.clone()).await {
                tracing::error!(%error, %id, "storing a sequence activation failed");
            }
            controller.throttle.release(&id);
            let _ = done.send(record);
        });
        if !mode.blocking {
            return Outcome::Answered(self.acknowledge(stand_in).await);
        }
        match tokio::time::timeout(mode.wait, finished).await {
            Ok(Ok(record)) => Outcome::Finished(Arc::new(record)),
            Ok(Err(_)) => Outcome::Answered(
                ApiError::internal("a sequence task ended without a record").into_response(),
            ),
            Err(_) => Outcome::Answered(self.acknowledge(stand_in).await),
        }
    }

    /// Runs every component in order and builds the sequence's record;
    /// `depth` is how many sequences it is nested in.
    async fn orchestrate(&self, run: SequenceRun, depth: usize) -> Activation {
        let Exec::Sequence { components } = &run.sequence.exec else {
            return self.sequence_record(&run, Vec::new(), internal("not a sequence"));
        };
        let mut payload = run.payload.clone();
        let mut steps: Vec<Activation> = Vec::with_capacity(components.len());
        let mut response = ActivationResponse::success(json!({}));
        for component in components {
            let step = match self.run_component(&run, component, payload, depth).await {
                Ok(step) => step,
                Err(failure) => {
                    response = failure;
                    break;
                }
            };
            response = step.response.clone();
            let result = step.response.result.clone().unwrap_or_else(|| json!({}));
            steps.push(step);
            if response.status != ActivationStatus::Success {
                break;
            }
            if !result.is_object() {
                response = ActivationResponse::error(
                    ActivationStatus::ApplicationError,
                    "a sequence component returned a result that is not a JSON object",
                );
                break;
            }
            payload = result;
        }
        self.sequence_record(&run, steps, response)
    }

    /// Runs one component and waits for its record.
    async fn run_component(
        &self,
        run: &SequenceRun,
        component: &str,
        payload: Value,
        depth: usize,
    ) -> Result<Activation, ActivationResponse> {
        let name = FullyQualifiedName::parse(component, None)
            .map_err(|_| internal("a sequence component name is malformed"))?;
        let missing = || {
            ActivationResponse::error(
                ActivationStatus::ApplicationError,
                format!("Sequence component does not exist: '{component}'."),
            )
        };
        let (action, bound) = match &name.package {
            None => {
                let action = self
                    .action(&name.namespace, &name.name)
                    .await
                    .map_err(|error| internal(&error.to_string()))?
                    .ok_or_else(missing)?;
                let bound = action.parameters.clone();
                (action, bound)
            }
            Some(package) => {
                // Resolved on every run, as the invoking namespace may
                // read it now (a package may stop being shared).
                let reader = EntityName::new(run.namespace.as_str())
                    .map_err(|error| internal(&error.to_string()))?;
                let address = (&name.namespace, package, &name.name);
                match crate::package_actions::resolve(self, &reader, address).await {
                    Ok((action, bound)) => (Arc::new(action), bound),
                    Err(error) if crate::actions::is_absent(&error) => return Err(missing()),
                    Err(error) => return Err(internal(&error.message)),
                }
            }
        };
        let payload = match (&payload, action.is_confidential()) {
            (Value::Object(params), false) => {
                let merged = merge_parameters(&bound, &action.annotations, params.clone())
                    .map_err(|error| {
                        ActivationResponse::error(
                            ActivationStatus::ApplicationError,
                            error.to_string(),
                        )
                    })?;
                Value::Object(merged)
            }
            _ => payload,
        };
        let id = crate::ids::activation_id();
        if matches!(action.exec, Exec::Sequence { .. }) {
            return self.run_nested(run, action, payload, id, depth).await;
        }
        let wait = Duration::from_millis(action.limits.timeout) + COMPONENT_GRACE;
        let message = ActivationMessage {
            activation_id: id,
            namespace: run.namespace.clone(),
            subject: run.subject.clone(),
            action,
            payload,
            blocking: true,
            cause: Some(run.activation_id),
            accepted_at: clemmys_whisk::now_ms(),
        };
        if let Some(invoker) = &self.local_invoker {
            return match tokio::time::timeout(wait, invoker.clone().run(message)).await {
                Ok(Ok(activation)) => Ok(Arc::unwrap_or_clone(activation)),
                Ok(Err(error)) => Err(internal(&error.to_string())),
                Err(_) => Err(internal("a sequence component did not finish in time")),
            };
        }
        let completion = self.completions.wait_for(id);
        if let Err(error) = self
            .queue
            .send(InvokerMessage::Activate(Box::new(message)))
            .await
        {
            self.completions.forget(&id);
            return Err(internal(&error.to_string()));
        }
        match tokio::time::timeout(wait, completion).await {
            Ok(Ok(done)) => Ok(Arc::unwrap_or_clone(done.activation)),
            Ok(Err(_)) => Err(internal("the invoker dropped a sequence component")),
            Err(_) => {
                self.completions.forget(&id);
                Err(internal("a sequence component did not finish in time"))
            }
        }
    }

    /// Runs `sequence`, a component of `run`, as a sequence of its own:
    /// its record (caused by `run`'s) is stored and is the step. Creating
    /// a sequence refuses cycles and more than [`MAX_SEQUENCE_LENGTH`]
    /// actions in all; the depth bound holds against a store changed
    /// behind the API's back.
    ///
    /// [`MAX_SEQUENCE_LENGTH`]: crate::actions::MAX_SEQUENCE_LENGTH
    fn run_nested<'a>(
        &'a self,
        run: &'a SequenceRun,
        sequence: Arc<Action>,
        payload: Value,
        id: ActivationId,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Activation, ActivationResponse>> + Send + 'a>>
    {
        Box::pin(async move {
            let depth = depth.saturating_add(1);
            if depth >= crate::actions::MAX_SEQUENCE_LENGTH {
                return Err(ActivationResponse::error(
                    ActivationStatus::ApplicationError,
                    "Too many actions in the sequence.",
                ));
            }
            let nested = SequenceRun {
                sequence,
                namespace: run.namespace.clone(),
                subject: run.subject.clone(),
                payload,
                activation_id: id,
                accepted_at: clemmys_whisk::now_ms(),
                cause: Some(run.activation_id),
            };
            let record = self.orchestrate(nested, depth).await;
            if let Err(error) = self.store.put_activation(record.clone()).await {
                tracing::error!(%error, %id, "storing a nested sequence activation failed");
            }
            Ok(record)
        })
    }

    /// The sequence's own record, as OpenWhisk shapes it.
    fn sequence_record(
        &self,
        run: &SequenceRun,
        steps: Vec<Activation>,
        response: ActivationResponse,
    ) -> Activation {
        let now = clemmys_whisk::now_ms();
        let start = steps.first().map_or(now, |step| step.start);
        let end = steps.last().map_or(now, |step| step.end);
        let duration = steps.iter().map(|step| step.duration).sum();
        let sequence = &run.sequence;
        let mut annotations = KeyValues::default();
        if run.cause.is_some() {
            annotations.set("causedBy", Value::String("sequence".into()));
        } else {
            annotations.set("topmost", Value::Bool(true));
        }
        annotations.set("path", Value::String(sequence.path()));
        annotations.set("kind", Value::String(clemmys_whisk::SEQUENCE_KIND.into()));
        annotations.set("limits", json!(sequence.limits));
        annotations.set("waitTime", json!(start.saturating_sub(run.accepted_at)));
        Activation {
            namespace: run.namespace.clone(),
            name: sequence.name.to_string(),
            subject: run.subject.clone(),
            activation_id: run.activation_id,
            version: sequence.version.to_string(),
            publish: false,
            start,
            end,
            duration,
            cause: run.cause,
            response,
            logs: steps
                .iter()
                .map(|step| step.activation_id.to_string())
                .collect(),
            annotations,
        }
    }
}

fn internal(message: &str) -> ActivationResponse {
    ActivationResponse::error(ActivationStatus::InternalError, message)
}
