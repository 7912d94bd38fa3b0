//! `…/namespaces/{ns}/activations[/{id}[/result|/logs]]`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use clemmys_store::ActivationFilter;
use clemmys_whisk::{Activation, ActivationId, ApiActivationLogs, FullyQualifiedName};
use serde_json::Value;

use crate::auth::Caller;
use crate::query::{self, QueryParams};
use crate::{ApiError, Controller};

/// `GET …/activations?name=&skip=&limit=&since=&upto=&docs=&count=`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/activations",
    operation_id = "activations_list",
    tag = "Activations",
    summary = "List activations",
    params(crate::api_docs::NamespacePath, crate::api_docs::ActivationFilter),
    responses((status = 200, description = "Activation summaries, newest first (whole records with `docs=true`; `{\"activations\": N}` with `count=true`).", body = crate::api_docs::ActivationList))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.to_string();
    let (skip, limit) = query::paging(&params, "activations")?;
    let count = query::flag(&params, "count", false)?;
    let docs = query::flag(&params, "docs", false)?;
    if count && docs {
        return Err(ApiError::bad_request(
            "The parameter 'docs' is not permitted with 'count'.",
        ));
    }
    let name = params
        .get("name")
        .map(|text| name_filter(text))
        .transpose()?;
    let filter = ActivationFilter {
        name,
        since: query::instant(&params, "since")?,
        upto: query::instant(&params, "upto")?,
        skip,
        limit,
    };
    if count {
        let count = controller
            .store
            .count_activations(&namespace, &filter)
            .await?;
        return Ok(Json(clemmys_whisk::ApiActivationCount { activations: count }).into_response());
    }
    let activations = controller
        .store
        .list_activations(&namespace, &filter)
        .await?;
    let listed: Vec<Value> = if docs {
        activations
            .iter()
            .map(|activation| serde_json::to_value(activation).unwrap_or_default())
            .collect()
    } else {
        activations
            .iter()
            .map(Activation::to_summary_json)
            .collect()
    };
    Ok(Json(listed).into_response())
}

/// The `name` filter: a simple name or `package/name`.
fn name_filter(text: &str) -> Result<String, ApiError> {
    FullyQualifiedName::parse(text, Some("_"))
        .map(|name| name.path_in_namespace())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "Parameter may be a 'simple' name or 'package-name/simple' name: {text}"
            ))
        })
}

async fn find(
    controller: &Controller,
    caller: &Caller,
    ns: &str,
    id: &str,
) -> Result<Activation, ApiError> {
    let namespace = caller.namespace(ns)?;
    let id: ActivationId = id
        .parse()
        .map_err(|_| ApiError::bad_request("The activation id is not valid."))?;
    controller
        .store
        .get_activation(namespace.as_str(), &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// `GET …/activations/{id}`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/activations/{id}",
    operation_id = "activations_get",
    tag = "Activations",
    summary = "Get an activation record",
    params(crate::api_docs::ActivationPath),
    responses((status = 200, description = "The activation record.", body = clemmys_whisk::Activation))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Activation>, ApiError> {
    find(&controller, &caller, &ns, &id).await.map(Json)
}

/// `GET …/activations/{id}/result`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/activations/{id}/result",
    operation_id = "activations_result",
    tag = "Activations",
    summary = "Get an activation's result",
    params(crate::api_docs::ActivationPath),
    responses((status = 200, description = "The activation's response.", body = clemmys_whisk::ApiActivationResult))
)]
pub async fn result(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    find(&controller, &caller, &ns, &id)
        .await
        .map(|activation| Json(activation.to_result_json()))
}

/// `GET …/activations/{id}/logs`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/activations/{id}/logs",
    operation_id = "activations_logs",
    tag = "Activations",
    summary = "Get an activation's logs",
    params(crate::api_docs::ActivationPath),
    responses((status = 200, description = "The activation's log lines.", body = clemmys_whisk::ApiActivationLogs))
)]
pub async fn logs(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<ApiActivationLogs>, ApiError> {
    find(&controller, &caller, &ns, &id)
        .await
        .map(|activation| {
            Json(ApiActivationLogs {
                logs: activation.logs,
            })
        })
}
