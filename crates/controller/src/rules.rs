//! `…/namespaces/{ns}/rules[/{name}]`: list, get, create/update, delete,
//! and enable/disable (`POST {"status"}`), as OpenWhisk's `Rules.scala`
//! answers them.
//!
//! A rule's status lives in its trigger's link to it: a new rule is
//! active, an update keeps the status, and a rule whose trigger is gone is
//! inactive. Rules fire plain actions only: a confidential action's
//! parameters must be sealed by its owner's client, and a fire starts the
//! action from the controller, which holds no key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clemmys_store::PutMode;
use clemmys_whisk::trigger::RuleStatusPut;
use clemmys_whisk::{
    Action, EntityRef, FullyQualifiedName, KeyValues, ReducedRule, Rule, RulePut, RuleStatus,
    Trigger,
};
use serde_json::Value;

use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::error::entity_name;
use crate::query::{self, QueryParams};
use crate::{ApiError, Controller, package_actions};

/// Largest `PUT` body: two names and annotations.
const MAX_PUT_BODY: usize = clemmys_whisk::limits::MAX_PAYLOAD_BYTES;

/// Why a rule cannot fire a confidential action.
pub(crate) const CONFIDENTIAL_REFUSAL: &str = "Rules can fire plain actions only: a \
confidential action's parameters must be sealed by its owner's client, and a trigger fires \
it from the controller, which holds no key to seal them.";

/// Why a rule request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// A new rule without a trigger or an action.
    #[error("rule requires a valid trigger and a valid action")]
    Incomplete,
    /// The trigger or action name cannot be read.
    #[error("The name '{0}' is not a valid {1} name.")]
    MalformedName(String, &'static str),
    /// The trigger does not exist (OpenWhisk answers 400, not 404: the
    /// request is what is wrong).
    #[error("trigger /{0} does not exist")]
    TriggerMissing(EntityRef),
    /// The action does not exist (400, as for the trigger).
    #[error("action /{0} does not exist")]
    ActionMissing(EntityRef),
    /// The action is confidential.
    #[error("{CONFIDENTIAL_REFUSAL}")]
    ConfidentialAction,
    /// Enabling or disabling a rule whose trigger is gone.
    #[error("Only rules with existing triggers can be activated")]
    TriggerGone,
}

impl From<RuleError> for ApiError {
    fn from(error: RuleError) -> Self {
        let status = match error {
            RuleError::TriggerGone => StatusCode::NOT_FOUND,
            RuleError::Incomplete
            | RuleError::MalformedName(..)
            | RuleError::TriggerMissing(_)
            | RuleError::ActionMissing(_)
            | RuleError::ConfidentialAction => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The entity `text` names (`/ns/name`, `/_/name`, `name`, and with
/// `packaged` `pkg/name` and `/ns/pkg/name`), relative to the caller.
fn parse_ref(caller: &Caller, text: &str, what: &'static str) -> Result<EntityRef, ApiError> {
    let malformed = || RuleError::MalformedName(text.to_owned(), what);
    let name =
        FullyQualifiedName::parse(text, Some(caller.0.name.as_str())).map_err(|_| malformed())?;
    let namespace = if name.namespace.as_str() == "_" {
        caller.0.name.clone()
    } else {
        name.namespace
    };
    let path = match name.package {
        None => namespace.to_string(),
        Some(package) if what == "action" => format!("{namespace}/{package}"),
        Some(_) => return Err(malformed().into()),
    };
    Ok(EntityRef {
        path,
        name: name.name,
    })
}

/// The action `action` names and the parameters it runs with: an action
/// of the caller's namespace, or of a package (the caller's, a binding, or
/// a shared one) as an invoke would reach it.
pub(crate) async fn resolve_rule_action(
    controller: &Controller,
    caller: &Caller,
    action: &EntityRef,
) -> Result<(Arc<Action>, KeyValues), ApiError> {
    let namespace = entity_name(action.namespace())?;
    match action.package() {
        Some(package) => {
            let package = entity_name(package)?;
            let (found, bound) = package_actions::resolve(
                controller,
                &caller.0.name,
                (&namespace, &package, &action.name),
            )
            .await?;
            Ok((Arc::new(found), bound))
        }
        None => {
            if namespace != caller.0.name {
                return Err(ApiError::forbidden());
            }
            let found = controller
                .action(&namespace, &action.name)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let bound = found.parameters.clone();
            Ok((found, bound))
        }
    }
}

/// The trigger `trigger` names, if it exists.
async fn trigger_of(
    controller: &Controller,
    trigger: &EntityRef,
) -> Result<Option<Trigger>, ApiError> {
    let namespace = entity_name(&trigger.path)?;
    Ok(controller
        .store
        .get_trigger(&namespace, &trigger.name)
        .await?)
}

/// The status `rule`'s trigger gives it.
async fn status_of(controller: &Controller, rule: &Rule) -> Result<RuleStatus, ApiError> {
    Ok(trigger_of(controller, &rule.trigger)
        .await?
        .map_or(RuleStatus::Inactive, |trigger| {
            trigger.rule_status(&rule.qualified_name())
        }))
}

/// `GET …/rules`: every rule with its status.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/rules",
    operation_id = "rules_list",
    tag = "Rules",
    summary = "List rules",
    params(crate::api_docs::NamespacePath, crate::api_docs::Paging),
    responses((status = 200, description = "The namespace's rules with their status. With `count=true`, `{\"rules\": N}` instead.", body = crate::api_docs::RuleList))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let (skip, limit) = query::paging(&params, "rules")?;
    if query::flag(&params, "count", false)? {
        let count = controller
            .store
            .list_rules(&namespace, skip, usize::MAX)
            .await?
            .len();
        return Ok(Json(clemmys_whisk::ApiRuleCount { rules: count }).into_response());
    }
    let rules = controller.store.list_rules(&namespace, skip, limit).await?;
    // OpenWhisk lists rules without a status; showing it saves a client a
    // GET per rule. Each trigger is read once.
    let mut triggers: HashMap<EntityRef, Option<Trigger>> = HashMap::new();
    let mut listed = Vec::with_capacity(rules.len());
    for rule in &rules {
        let trigger = match triggers.get(&rule.trigger) {
            Some(trigger) => trigger,
            None => {
                let found = trigger_of(&controller, &rule.trigger).await?;
                triggers.entry(rule.trigger.clone()).or_insert(found)
            }
        };
        let status = trigger.as_ref().map_or(RuleStatus::Inactive, |trigger| {
            trigger.rule_status(&rule.qualified_name())
        });
        listed.push(rule.to_api_json(status));
    }
    Ok(Json(Value::Array(listed)).into_response())
}

/// `GET …/rules/{name}`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/rules/{name}",
    operation_id = "rules_get",
    tag = "Rules",
    summary = "Get a rule",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The rule.", body = clemmys_whisk::ApiRule))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let rule = controller
        .store
        .get_rule(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let status = status_of(&controller, &rule).await?;
    Ok(Json(rule.to_api_json(status)).into_response())
}

/// `DELETE …/rules/{name}`: active or not (OpenWhisk no longer asks for a
/// disable first); unlinks it from its trigger and answers it inactive.
#[utoipa::path(
    delete,
    path = "/namespaces/{ns}/rules/{name}",
    operation_id = "rules_delete",
    tag = "Rules",
    summary = "Delete a rule",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The deleted rule.", body = clemmys_whisk::ApiRule))
)]
pub async fn delete(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let _links = controller.links.lock().await;
    let rule = controller
        .store
        .delete_rule(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if let Some(mut trigger) = trigger_of(&controller, &rule.trigger).await?
        && trigger.rules.remove(&rule.qualified_name()).is_some()
    {
        controller
            .store
            .put_trigger(trigger, PutMode::Overwrite)
            .await?;
    }
    Ok(Json(rule.to_api_json(RuleStatus::Inactive)).into_response())
}

/// `POST …/rules/{name}` with `{"status": "active" | "inactive"}`: 200
/// with the rule, also when it already had that status.
#[utoipa::path(
    post,
    path = "/namespaces/{ns}/rules/{name}",
    operation_id = "rules_set_status",
    tag = "Rules",
    summary = "Enable or disable a rule",
    params(crate::api_docs::EntityPath),
    request_body = clemmys_whisk::RuleStatusPut,
    responses((status = 200, description = "The rule with its new status.", body = clemmys_whisk::ApiRule))
)]
pub async fn set_status(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let bytes = read_limited(body, MAX_PUT_BODY).await?;
    let RuleStatusPut { status } = parse_json(&bytes)?;
    let _links = controller.links.lock().await;
    let rule = controller
        .store
        .get_rule(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut trigger = trigger_of(&controller, &rule.trigger)
        .await?
        .ok_or(RuleError::TriggerGone)?;
    let qualified = rule.qualified_name();
    if trigger.rule_status(&qualified) != status || !trigger.rules.contains_key(&qualified) {
        trigger.rules.insert(
            qualified,
            ReducedRule {
                action: rule.action.clone(),
                status,
            },
        );
        controller
            .store
            .put_trigger(trigger, PutMode::Overwrite)
            .await?;
    }
    Ok(Json(rule.to_api_json(status)).into_response())
}

/// `PUT …/rules/{name}[?overwrite=true]`: the trigger and action must
/// exist (else 400, as OpenWhisk answers); a new rule is active, an
/// updated one keeps its status.
#[utoipa::path(
    put,
    path = "/namespaces/{ns}/rules/{name}",
    operation_id = "rules_put",
    tag = "Rules",
    summary = "Create or update a rule",
    params(crate::api_docs::EntityPath, crate::api_docs::Overwrite),
    request_body = clemmys_whisk::RulePut,
    responses((status = 200, description = "The stored rule.", body = clemmys_whisk::ApiRule))
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
    let put: RulePut = parse_json(&bytes)?;

    let _links = controller.links.lock().await;
    let existing = controller.store.get_rule(&namespace, &name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::conflict());
    }
    let old = existing.as_ref();
    let named = |given: Option<&String>, kept: Option<&EntityRef>, what| match given {
        Some(text) => parse_ref(&caller, text, what).map(Some),
        None => Ok(kept.cloned()),
    };
    let trigger_ref = named(
        put.trigger.as_ref(),
        old.map(|rule| &rule.trigger),
        "trigger",
    )?
    .ok_or(RuleError::Incomplete)?;
    let action_ref = named(put.action.as_ref(), old.map(|rule| &rule.action), "action")?
        .ok_or(RuleError::Incomplete)?;

    // The trigger's links are written here: only the caller's own.
    caller.namespace(&trigger_ref.path)?;
    let mut trigger = trigger_of(&controller, &trigger_ref)
        .await?
        .ok_or_else(|| RuleError::TriggerMissing(trigger_ref.clone()))?;
    let (action, _) = match resolve_rule_action(&controller, &caller, &action_ref).await {
        Ok(found) => found,
        Err(error) if error.status == StatusCode::NOT_FOUND => {
            return Err(RuleError::ActionMissing(action_ref).into());
        }
        Err(error) => return Err(error),
    };
    if action.is_confidential() {
        return Err(RuleError::ConfidentialAction.into());
    }

    let (version, status) = match old {
        Some(rule) => {
            let mut version = rule.version.clone();
            version.patch = version.patch.saturating_add(1);
            (version, status_of(&controller, rule).await?)
        }
        None => (semver::Version::new(0, 0, 1), RuleStatus::Active),
    };
    let rule = Rule {
        namespace,
        name,
        version,
        publish: put
            .publish
            .or(old.map(|rule| rule.publish))
            .unwrap_or(false),
        trigger: trigger_ref,
        action: action_ref,
        annotations: put
            .annotations
            .or_else(|| old.map(|rule| rule.annotations.clone()))
            .unwrap_or_default(),
        updated: clemmys_whisk::now_ms(),
    };
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::CreateOnly
    };
    controller.store.put_rule(rule.clone(), mode).await?;

    let qualified = rule.qualified_name();
    if let Some(old) = old.filter(|old| old.trigger != rule.trigger)
        && let Some(mut previous) = trigger_of(&controller, &old.trigger).await?
        && previous.rules.remove(&qualified).is_some()
    {
        controller
            .store
            .put_trigger(previous, PutMode::Overwrite)
            .await?;
    }
    trigger.rules.insert(
        qualified,
        ReducedRule {
            action: rule.action.clone(),
            status,
        },
    );
    controller
        .store
        .put_trigger(trigger, PutMode::Overwrite)
        .await?;
    Ok(Json(rule.to_api_json(status)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::EntityName;

    #[test]
    fn rule_refusals_carry_openwhisk_statuses() {
        let trigger = EntityRef {
            path: "guest".into(),
            name: EntityName::new("t").expect("name"),
        };
        let missing = ApiError::from(RuleError::TriggerMissing(trigger));
        assert_eq!(missing.status, StatusCode::BAD_REQUEST);
        assert_eq!(missing.message, "trigger /guest/t does not exist");
        let gone = ApiError::from(RuleError::TriggerGone);
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let confidential = ApiError::from(RuleError::ConfidentialAction);
        assert_eq!(confidential.status, StatusCode::BAD_REQUEST);
        assert!(confidential.message.contains("plain actions only"));
    }
}
