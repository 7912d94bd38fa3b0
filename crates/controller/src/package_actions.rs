//! `…/namespaces/{ns}/actions/{pkg}/[{name}]`: the actions of a package:
//! create/update, get, list, invoke, delete.
//!
//! Reading and invoking go through a binding to the package it refers to,
//! and reach another namespace's package when it is published; writing
//! only ever touches the caller's own packages (not bindings). An action
//! of a package runs with the package's parameters, overridden by the
//! binding's, then its own, then the invoke's (`final` holds them all).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use clemmys_whisk::action::ActionPut;
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::package::package_parameters;
use clemmys_whisk::{Action, ApiActionSummary, EntityName, KeyValues, Package};
use serde_json::Value;

use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::error::entity_name;
use crate::packages::{namespace_of, readable_package};
use crate::query::{self, QueryParams};
use crate::{ApiError, Controller, actions, feeds, invoke};

/// The package whose actions `namespace/package` shows to namespace
/// `reader`: the package itself, or the one its binding refers to (with
/// the binding).
async fn home_package(
    controller: &Controller,
    reader: &EntityName,
    namespace: &EntityName,
    package: &EntityName,
) -> Result<(Package, Option<Package>), ApiError> {
    let package = readable_package(controller, reader, namespace, package).await?;
    match &package.binding {
        Some(binding) => {
            let home =
                readable_package(controller, reader, &binding.namespace, &binding.name).await?;
            Ok((home, Some(package)))
        }
        None => Ok((package, None)),
    }
}

/// The action `name` of `namespace/package` as namespace `reader` may
/// run it (its own package, a published one, or through a binding to
/// either), and the parameters it runs with (package's, binding's, its
/// own).
pub(crate) async fn resolve(
    controller: &Controller,
    reader: &EntityName,
    (namespace, package, name): (&EntityName, &EntityName, &EntityName),
) -> Result<(Action, KeyValues), ApiError> {
    let (home, binding) = home_package(controller, reader, namespace, package).await?;
    let action = controller
        .store
        .get_package_action(&home.namespace, &home.name, name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut bound = package_parameters(&home, binding.as_ref());
    bound.extend(action.parameters.to_object());
    Ok((action, KeyValues::from_object(&bound)))
}

/// The summaries of the actions of `package` (a package, not a binding).
pub(crate) async fn action_summaries(
    controller: &Controller,
    package: &Package,
) -> Result<Vec<ApiActionSummary>, ApiError> {
    Ok(controller
        .store
        .list_package_actions(&package.namespace, &package.name, 0, usize::MAX)
        .await?
        .iter()
        .map(Action::to_summary)
        .collect())
}

/// `GET …/actions/{pkg}/`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/actions/{pkg}/",
    operation_id = "package_actions_list",
    tag = "Packages",
    summary = "List a package's actions",
    params(("ns" = String, Path, description = "The namespace, or `_` for the caller's own."), ("pkg" = String, Path, description = "The package or binding.")),
    responses((status = 200, description = "The package's actions.", body = [clemmys_whisk::ApiActionSummary]))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, package)): Path<(String, String)>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let (namespace, _) = namespace_of(&caller, &ns)?;
    let package = entity_name(&package)?;
    let (home, _) = home_package(&controller, &caller.0.name, &namespace, &package).await?;
    let (skip, limit) = query::paging(&params, "actions")?;
    let actions = controller
        .store
        .list_package_actions(&home.namespace, &home.name, skip, limit)
        .await?;
    let summaries: Vec<Value> = actions.iter().map(Action::to_summary_json).collect();
    Ok(Json(summaries).into_response())
}

/// `GET …/actions/{pkg}/{name}`: the action, with the parameters it runs
/// with.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/actions/{pkg}/{name}",
    operation_id = "package_actions_get",
    tag = "Packages",
    summary = "Get an action in a package",
    params(crate::api_docs::PackageActionPath),
    responses((status = 200, description = "The action, with the parameters it runs with.", body = clemmys_whisk::ApiAction))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, package, name)): Path<(String, String, String)>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let (namespace, _) = namespace_of(&caller, &ns)?;
    let (package, name) = (entity_name(&package)?, entity_name(&name)?);
    let (mut action, bound) =
        resolve(&controller, &caller.0.name, (&namespace, &package, &name)).await?;
    let code = if query::flag(&params, "code", true)? {
        controller.code_text(&action).await?
    } else {
        None
    };
    action.parameters = bound;
    Ok(Json(action.to_api_json(code)).into_response())
}

/// `PUT …/actions/{pkg}/{name}[?overwrite=true]`: into an own package.
#[utoipa::path(
    put,
    path = "/namespaces/{ns}/actions/{pkg}/{name}",
    operation_id = "package_actions_put",
    tag = "Packages",
    summary = "Create or update an action in a package",
    params(crate::api_docs::PackageActionPath, crate::api_docs::Overwrite),
    request_body = clemmys_whisk::ActionPut,
    responses((status = 200, description = "The stored action.", body = clemmys_whisk::ApiAction))
)]
pub async fn put(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, package, name)): Path<(String, String, String)>,
    QueryParams(params): QueryParams,
    body: Body,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let (package, name) = (entity_name(&package)?, entity_name(&name)?);
    let overwrite = query::flag(&params, "overwrite", false)?;
    let found = controller
        .store
        .get_package(&namespace, &package)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if found.binding.is_some() {
        return Err(ApiError::bad_request(
            "A package binding cannot hold actions: put them in the package it refers to.",
        ));
    }
    let bytes = read_limited(body, actions::MAX_PUT_BODY).await?;
    let put: ActionPut = parse_json(&bytes)?;
    actions::put_action(
        &controller,
        &caller,
        (namespace, Some(&found), name),
        overwrite,
        put,
    )
    .await
}

/// `DELETE …/actions/{pkg}/{name}`: from an own package.
#[utoipa::path(
    delete,
    path = "/namespaces/{ns}/actions/{pkg}/{name}",
    operation_id = "package_actions_delete",
    tag = "Packages",
    summary = "Delete an action from a package",
    params(crate::api_docs::PackageActionPath),
    responses((status = 200, description = "The deleted action.", body = clemmys_whisk::ApiAction))
)]
pub async fn delete(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, package, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let (package, name) = (entity_name(&package)?, entity_name(&name)?);
    let code = match controller
        .store
        .get_package_action(&namespace, &package, &name)
        .await?
    {
        Some(action) => controller.code_text(&action).await?,
        None => None,
    };
    let removed = controller
        .store
        .delete_package_action(&namespace, &package, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(removed.to_api_json(code)).into_response())
}

/// `POST …/actions/{pkg}/{name}`: invoke, the record kept in the caller's
/// namespace.
#[utoipa::path(
    post,
    path = "/namespaces/{ns}/actions/{pkg}/{name}",
    operation_id = "package_actions_invoke",
    tag = "Packages",
    summary = "Invoke an action in a package",
    params(crate::api_docs::PackageActionPath, crate::api_docs::InvokeOptions),
    request_body(content = crate::api_docs::Parameters, description = "The invoke's parameters: any JSON object (may be empty), merged over the bound ones; for a confidential action, the sealed envelope a Clemmys client makes."),
    responses((status = 200, description = "Blocking: the activation record, or its result with `result=true`.", body = crate::api_docs::BlockingAnswer), (status = 202, description = "Not blocking, or the wait ran out: the activation id.", body = clemmys_whisk::ApiActivationStarted), (status = 502, description = "Blocking, and the action failed: the activation record, or its result with `result=true`.", body = crate::api_docs::BlockingAnswer))
)]
pub async fn invoke(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, package, name)): Path<(String, String, String)>,
    QueryParams(params): QueryParams,
    body: Body,
) -> Result<Response, ApiError> {
    let (namespace, _) = namespace_of(&caller, &ns)?;
    let (package, name) = (entity_name(&package)?, entity_name(&name)?);
    let mode = invoke::invoke_mode(&controller, &params)?;
    let bytes = read_limited(body, MAX_PAYLOAD_BYTES).await?;
    let params = invoke::parse_params(&bytes)?;
    if let Some(feed) = feeds::builtin_feed(&namespace, &package, &name) {
        return feeds::run_feed(&controller, &caller, feed, params, mode).await;
    }
    let (action, bound) =
        resolve(&controller, &caller.0.name, (&namespace, &package, &name)).await?;
    invoke::start(&controller, &caller, Arc::new(action), &bound, params, mode).await
}
