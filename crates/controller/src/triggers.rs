//! `…/namespaces/{ns}/triggers[/{name}]`: list, get, create/update,
//! delete, and fire, as OpenWhisk's `Triggers.scala` answers them.
//!
//! A fire with no active rule answers 204 and keeps no record. Otherwise
//! every rule of the trigger is tried in turn: an active one starts its
//! action non-blocking with the trigger's parameters overridden by the
//! event's, and the fire answers 202 with the id of a trigger activation
//! record whose `logs` hold one JSON line per rule (started, or why not).
//! The record is stored before the answer, so the id always leads to it.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clemmys_store::PutMode;
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::trigger::RuleOutcome;
use clemmys_whisk::{
    Activation, ActivationId, ActivationResponse, EntityName, KeyValues, ReducedRule, RuleStatus,
    Trigger, TriggerPut,
};
use serde_json::{Map, Value};

use crate::alarms::{self, AlarmSpec};
use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::error::entity_name;
use crate::invoke::{self, ACTIVATION_ID_HEADER, InvokeMode};
use crate::query::{self, QueryParams};
use crate::rules::{CONFIDENTIAL_REFUSAL, resolve_rule_action};
use crate::{ApiError, Controller};

/// Largest `PUT` body: parameters and annotations only.
const MAX_PUT_BODY: usize = MAX_PAYLOAD_BYTES;

/// The largest error body of a refused rule invoke that is read for its
/// message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// OpenWhisk's rule-log status codes (`ActivationResponse`'s).
const SUCCESS: u8 = 0;
const APPLICATION_ERROR: u8 = 1;
const WHISK_ERROR: u8 = 3;

/// `GET …/triggers`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/triggers",
    operation_id = "triggers_list",
    tag = "Triggers",
    summary = "List triggers",
    params(crate::api_docs::NamespacePath, crate::api_docs::Paging),
    responses((status = 200, description = "The namespace's triggers. With `count=true`, `{\"triggers\": N}` instead.", body = crate::api_docs::TriggerList))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let (skip, limit) = query::paging(&params, "triggers")?;
    if query::flag(&params, "count", false)? {
        let count = controller
            .store
            .list_triggers(&namespace, skip, usize::MAX)
            .await?
            .len();
        return Ok(Json(clemmys_whisk::ApiTriggerCount { triggers: count }).into_response());
    }
    let summaries: Vec<Value> = controller
        .store
        .list_triggers(&namespace, skip, limit)
        .await?
        .iter()
        .map(Trigger::to_summary_json)
        .collect();
    Ok(Json(summaries).into_response())
}

/// `GET …/triggers/{name}`: with its rules' links.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/triggers/{name}",
    operation_id = "triggers_get",
    tag = "Triggers",
    summary = "Get a trigger",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The trigger with its rules.", body = clemmys_whisk::ApiTrigger))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let trigger = controller
        .store
        .get_trigger(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(trigger.to_api_json()).into_response())
}

/// `DELETE …/triggers/{name}`: answers the deleted trigger and stops its
/// alarm. Its rules stay (inactive, as OpenWhisk shows them) and fire
/// nothing.
#[utoipa::path(
    delete,
    path = "/namespaces/{ns}/triggers/{name}",
    operation_id = "triggers_delete",
    tag = "Triggers",
    summary = "Delete a trigger",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The deleted trigger.", body = clemmys_whisk::ApiTrigger))
)]
pub async fn delete(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let _links = controller.links.lock().await;
    let removed = controller
        .store
        .delete_trigger(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    controller.disarm(&namespace, &name);
    Ok(Json(removed.to_api_json()).into_response())
}

/// `PUT …/triggers/{name}[?overwrite=true]`: an update keeps the rules'
/// links; an alarms feed is checked, then (re)scheduled.
#[utoipa::path(
    put,
    path = "/namespaces/{ns}/triggers/{name}",
    operation_id = "triggers_put",
    tag = "Triggers",
    summary = "Create or update a trigger",
    params(crate::api_docs::EntityPath, crate::api_docs::Overwrite),
    request_body = clemmys_whisk::TriggerPut,
    responses((status = 200, description = "The stored trigger.", body = clemmys_whisk::ApiTrigger))
)]
pub async fn put(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    QueryParams(params): QueryParams,
    body: Body,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let overwrite = query::flag(&params, "overwrite", false)?;
    let bytes = read_limited(body, MAX_PUT_BODY).await?;
    let put: TriggerPut = parse_json(&bytes)?;
    if let Some(annotations) = &put.annotations {
        check_feed(annotations)?;
    }
    let now = clemmys_whisk::now_ms();

    let _links = controller.links.lock().await;
    let existing = controller.store.get_trigger(&namespace, &name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::conflict());
    }
    let old = existing.as_ref();
    let version = match old {
        Some(trigger) => {
            let mut version = trigger.version.clone();
            version.patch = version.patch.saturating_add(1);
            version
        }
        None => semver::Version::new(0, 0, 1),
    };
    let keep = |new: Option<KeyValues>, old: Option<&KeyValues>| {
        new.or_else(|| old.cloned()).unwrap_or_default()
    };
    let trigger = Trigger {
        namespace,
        name,
        version,
        publish: put
            .publish
            .or(old.map(|trigger| trigger.publish))
            .unwrap_or(false),
        parameters: keep(put.parameters, old.map(|trigger| &trigger.parameters)),
        annotations: keep(put.annotations, old.map(|trigger| &trigger.annotations)),
        rules: old.map(|trigger| trigger.rules.clone()).unwrap_or_default(),
        updated: now,
    };
    AlarmSpec::of(&trigger, now).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::CreateOnly
    };
    controller.store.put_trigger(trigger.clone(), mode).await?;
    controller.arm(&trigger);
    Ok(Json(trigger.to_api_json()).into_response())
}

/// OpenWhisk checks only that a `feed` annotation is a name (the CLI runs
/// the feed action itself).
fn check_feed(annotations: &KeyValues) -> Result<(), ApiError> {
    match annotations.get("feed") {
        None => Ok(()),
        Some(Value::String(feed))
            if clemmys_whisk::FullyQualifiedName::parse(feed, Some("_")).is_ok() =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::bad_request("Feed name is not valid")),
    }
}

/// `POST …/triggers/{name}`: fires the trigger with the body as the event.
#[utoipa::path(
    post,
    path = "/namespaces/{ns}/triggers/{name}",
    operation_id = "triggers_fire",
    tag = "Triggers",
    summary = "Fire a trigger",
    params(crate::api_docs::EntityPath),
    request_body(content = crate::api_docs::Parameters, description = "The event: any JSON object (may be empty), merged over the trigger's parameters and passed to its rules' actions."),
    responses((status = 202, description = "Some active rule matched: the trigger's activation id.", body = clemmys_whisk::ApiActivationStarted), (status = 204, description = "No active rule matched."))
)]
pub async fn fire(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.namespace(&ns)?;
    let name = entity_name(&name)?;
    let bytes = read_limited(body, MAX_PAYLOAD_BYTES).await?;
    let event = invoke::parse_params(&bytes)?;
    Ok(
        match fire_trigger(&controller, &caller, &name, event).await? {
            Some(id) => invoke::with_activation_header(invoke::accepted(id), id),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

/// Fires the caller's trigger `name` with `event`: the trigger record's id,
/// or `None` when no rule is active. An API fire and an alarm's go here.
pub(crate) async fn fire_trigger(
    controller: &Arc<Controller>,
    caller: &Caller,
    name: &EntityName,
    event: Map<String, Value>,
) -> Result<Option<ActivationId>, ApiError> {
    let namespace = caller.0.name.clone();
    // Counted before the trigger is read, as OpenWhisk's entitlement check
    // counts every fire request.
    controller.throttle.admit_fire(
        namespace.as_str(),
        &caller.0.limits,
        clemmys_whisk::now_ms(),
    )?;
    let trigger = controller
        .store
        .get_trigger(&namespace, name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !trigger
        .rules
        .values()
        .any(|link| link.status == RuleStatus::Active)
    {
        return Ok(None);
    }

    let activation_id = crate::ids::activation_id();
    let start = clemmys_whisk::now_ms();
    let arguments = alarms::event_arguments(&trigger, &event);
    let mut logs = Vec::with_capacity(trigger.rules.len());
    for (rule, link) in &trigger.rules {
        let outcome = fire_rule(controller, caller, rule, link, &arguments).await;
        logs.push(outcome.to_log_line());
    }
    let end = clemmys_whisk::now_ms();
    // As OpenWhisk's, the record's result is the event as it came.
    let record = Activation {
        namespace: namespace.to_string(),
        name: trigger.name.to_string(),
        subject: caller.0.name.to_string(),
        activation_id,
        version: trigger.version.to_string(),
        publish: false,
        start,
        end,
        duration: end.saturating_sub(start),
        cause: None,
        response: ActivationResponse::success(Value::Object(event)),
        logs,
        annotations: KeyValues::default(),
    };
    if let Err(error) = controller.store.put_activation(record).await {
        // The rules' actions were started already: answer their fire, as
        // OpenWhisk does when the trigger's record cannot be written.
        tracing::error!(%error, %activation_id, "storing a trigger activation failed");
    }
    Ok(Some(activation_id))
}

/// Starts the action of rule `rule` (a link of the fired trigger) with
/// `arguments`, non-blocking; says how that went.
async fn fire_rule(
    controller: &Arc<Controller>,
    caller: &Caller,
    rule: &str,
    link: &ReducedRule,
    arguments: &Map<String, Value>,
) -> RuleOutcome {
    let outcome = |status_code: u8, outcome: Result<ActivationId, String>| RuleOutcome {
        rule: rule.to_owned(),
        action: link.action.to_string(),
        status_code,
        outcome,
    };
    if link.status != RuleStatus::Active {
        return outcome(
            APPLICATION_ERROR,
            Err(format!(
                "Rule '{rule}' is inactive, action '{}' was not activated.",
                link.action
            )),
        );
    }
    let (action, bound) = match resolve_rule_action(controller, caller, &link.action).await {
        Ok(resolved) => resolved,
        Err(error) => return outcome(status_code(error.status), Err(error.message)),
    };
    if action.is_confidential() {
        // Replaced by a confidential action after the rule was made.
        return outcome(APPLICATION_ERROR, Err(CONFIDENTIAL_REFUSAL.to_owned()));
    }
    let mode = InvokeMode {
        blocking: false,
        result_only: false,
        wait: Duration::ZERO,
    };
    match invoke::start(controller, caller, action, &bound, arguments.clone(), mode).await {
        Err(error) => outcome(status_code(error.status), Err(error.message)),
        Ok(response) if response.status() == StatusCode::ACCEPTED => match started_id(&response) {
            Some(id) => outcome(SUCCESS, Ok(id)),
            None => outcome(
                WHISK_ERROR,
                Err("There was an error processing your request.".to_owned()),
            ),
        },
        Ok(response) => {
            let status = response.status();
            let message = error_message(response).await;
            outcome(status_code(status), Err(message))
        }
    }
}

/// OpenWhisk's rule-log code of a refused invoke: server errors are the
/// platform's, anything else the application's.
fn status_code(status: StatusCode) -> u8 {
    if status.is_server_error() {
        WHISK_ERROR
    } else {
        APPLICATION_ERROR
    }
}

/// The activation id a 202 carries in its header.
fn started_id(response: &Response) -> Option<ActivationId> {
    response
        .headers()
        .get(ACTIVATION_ID_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The `error` of an error answer, or OpenWhisk's generic message.
async fn error_message(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|body| body.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "There was an error processing your request.".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::KeyValue;
    use serde_json::json;

    fn annotations(value: Value) -> KeyValues {
        KeyValues(vec![KeyValue {
            key: "feed".into(),
            value,
        }])
    }

    #[test]
    fn feeds_must_be_names() {
        assert!(check_feed(&KeyValues::default()).is_ok());
        assert!(check_feed(&annotations(json!("/whisk.system/alarms/alarm"))).is_ok());
        assert!(check_feed(&annotations(json!("alarms/alarm"))).is_ok());
        let refused = check_feed(&annotations(json!(7))).expect_err("not a name");
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.message, "Feed name is not valid");
        assert!(check_feed(&annotations(json!("/a/b/c/d"))).is_err());
    }

    #[test]
    fn refused_invokes_log_as_openwhisk_codes_them() {
        assert_eq!(status_code(StatusCode::NOT_FOUND), APPLICATION_ERROR);
        assert_eq!(
            status_code(StatusCode::TOO_MANY_REQUESTS),
            APPLICATION_ERROR
        );
        assert_eq!(status_code(StatusCode::SERVICE_UNAVAILABLE), WHISK_ERROR);
    }
}
