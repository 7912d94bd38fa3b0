//! `…/namespaces/{ns}/packages[/{name}]`: the owner's confidential
//! packages, as OpenWhisk clients create, read and delete packages.
//!
//! A package created through the gateway is a *confidential package*
//! (annotated `confidential: true`): the node stores it without
//! parameters, and the gateway keeps them, in its sealed client state
//! (`Confidential::keep_package_defaults`, as the owner's `clemmys
//! package create --confidential` keeps them), and seals them, under each
//! action's own, into every confidential action it deploys in the package
//! ([`crate::api`]). So they never reach the provider; a `GET` through
//! the gateway shows them to its authenticated caller where OpenWhisk
//! shows a package's parameters. A confidential package cannot be bound
//! (its actions run only under their own names, with the parameters
//! sealed into them), and a binding's parameters would be stored by the
//! provider in the clear: bindings are refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use clemmys_client::confidential::{Confidential, ConfidentialError};
use clemmys_whisk::{CONFIDENTIAL_ANNOTATION, EntityName, KeyValues, PackagePut};
use serde_json::{Map, Value};

use crate::Gateway;
use crate::api::{ApiError, check_namespace, connect, flag, relay};

/// A package name of a request path, checked.
pub(crate) fn package_name(text: &str) -> Result<EntityName, ApiError> {
    EntityName::new(text).map_err(|error| ApiError::BadRequest(format!("package {text}: {error}")))
}

/// Whether the node's package `doc` is marked confidential.
fn marked_confidential(doc: &Value) -> bool {
    doc["annotations"].as_array().is_some_and(|annotations| {
        annotations.iter().any(|annotation| {
            annotation["key"] == CONFIDENTIAL_ANNOTATION && annotation["value"] == true
        })
    })
}

/// `doc` with `parameters` as OpenWhisk shows a package's.
fn with_parameters(mut doc: Value, parameters: &Map<String, Value>) -> Result<Value, ApiError> {
    if let Some(fields) = doc.as_object_mut() {
        let shown = serde_json::to_value(KeyValues::from_object(parameters))
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        fields.insert("parameters".into(), shown);
    }
    Ok(doc)
}

/// `PUT …/packages/{name}`: creates or updates confidential package
/// `name`. The node gets the package without its parameters; the gateway
/// keeps them once the node took it (a refused create leaves the kept
/// copy of an existing package as it was). An update that names no
/// parameters keeps the kept ones, as OpenWhisk keeps a package's.
pub(crate) async fn put(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &namespace)?;
    let name = package_name(&name)?;
    // Authenticated first: nothing about the body to a stranger.
    let connection = connect(&gateway, &headers).await?;
    // An empty body (`curl -X PUT`) is a package with nothing given.
    let put: PackagePut = if body.iter().all(u8::is_ascii_whitespace) {
        PackagePut::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::BadRequest(format!("the package is not valid JSON: {error}"))
        })?
    };
    if put
        .binding
        .as_ref()
        .is_some_and(|binding| !binding.is_empty())
    {
        return Err(ApiError::BindingRefused);
    }
    let overwrite = flag(&query, "overwrite");
    let parameters = put.parameters.as_ref().map(KeyValues::to_object);
    // Annotations are replaced when given, as OpenWhisk does; an update
    // that gives none keeps the stored ones (which the node holds in the
    // clear anyway). Marked confidential either way.
    // On an update, whether the node has the package: the kept
    // parameters are carried over only to a package that still exists. A
    // package that is gone (the provider may delete it on the node) is
    // made anew, without the old one's parameters, as OpenWhisk makes it;
    // otherwise the owner's new package of that name would get the old
    // secrets sealed into its actions. (A node that lies that it still has
    // it keeps them, and the answer shows them to the owner.)
    let stored = if overwrite {
        stored_annotations(&connection, name.as_str()).await?
    } else {
        None
    };
    let existed = stored.is_some();
    let mut annotations = match put.annotations {
        Some(annotations) => annotations,
        None => stored.unwrap_or_default(),
    };
    annotations.set(CONFIDENTIAL_ANNOTATION, Value::Bool(true));
    // No parameters: the node holds none of a confidential package's.
    let stored = PackagePut {
        publish: put.publish,
        annotations: Some(annotations),
        ..PackagePut::default()
    };
    let body =
        serde_json::to_value(&stored).map_err(|e| ConfidentialError::State(e.to_string()))?;
    let answer = connection
        .client()
        .put_package(name.as_str(), &body, overwrite)
        .await?;
    let kept = keep(&connection, name.as_str(), parameters, existed)?;
    tracing::info!(package = %name, "stored a confidential package, its parameters kept sealed");
    Ok(axum::Json(with_parameters(answer, &kept)?).into_response())
}

/// The annotations the node stores for package `name`; `None` when it
/// has no such package.
async fn stored_annotations(
    connection: &Confidential,
    name: &str,
) -> Result<Option<KeyValues>, ApiError> {
    match connection.client().get_package(name).await {
        Ok(doc) => Ok(Some(
            serde_json::from_value(doc["annotations"].clone()).unwrap_or_default(),
        )),
        Err(clemmys_client::ClientError::Api { status: 404, .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Keeps `given` as package `name`'s parameters (none given: on an
/// update of a package the node still had, the ones kept; otherwise
/// none), and answers what is kept. Kept even when empty: that the
/// gateway holds an entry is how it knows that it made the package,
/// whatever the node shows later.
fn keep(
    connection: &Confidential,
    name: &str,
    given: Option<Map<String, Value>>,
    existed: bool,
) -> Result<Map<String, Value>, ApiError> {
    let kept = match given {
        Some(given) => given,
        None if existed => connection.package_defaults(name)?.unwrap_or_default(),
        None => Map::new(),
    };
    connection.keep_package_defaults(name, Some(&kept))?;
    Ok(kept)
}

/// `GET …/packages/{name}`: the node's record, with the parameters the
/// gateway keeps for it when it made it (the node holds none).
pub(crate) async fn get(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &namespace)?;
    let name = package_name(&name)?;
    let connection = connect(&gateway, &headers).await?;
    let doc = connection.client().get_package(name.as_str()).await?;
    let shown = match connection.package_defaults(name.as_str())? {
        // Decided from what the gateway keeps, not from the node's
        // annotations: what it seals into the package's actions, even if
        // the provider stripped the mark and stored parameters of its own.
        Some(kept) => with_parameters(doc, &kept)?,
        // Another client's confidential package: its parameters are with
        // that client, and any the node shows are the provider's.
        None if marked_confidential(&doc) => with_parameters(doc, &Map::new())?,
        // A plain package, as the node has it.
        None => doc,
    };
    Ok(axum::Json(shown).into_response())
}

/// `DELETE …/packages/{name}`: forwarded; once the node deleted it, or
/// answers that it has no such package (the provider may have deleted it
/// on the node), the gateway forgets its parameters: the owner, told that
/// it is gone, would otherwise get them back in a package they make
/// anew under that name. A refusal (a package not empty) keeps them.
pub(crate) async fn delete(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &namespace)?;
    let name = package_name(&name)?;
    let connection = connect(&gateway, &headers).await?;
    let response = connection
        .client()
        .request(Method::DELETE, &crate::api::below_api(&uri), None)
        .await?;
    if response.status.is_success() || response.status.as_u16() == 404 {
        connection.keep_package_defaults(name.as_str(), None)?;
    }
    Ok(relay(response))
}

/// The parameters the gateway keeps for package `package`, where an
/// action of it is to be deployed: the package must be on the node, and
/// made through this gateway (another client's confidential package has
/// parameters the gateway cannot seal, and a plain one's are the
/// provider's, in the clear).
pub(crate) async fn check_kept(connection: &Confidential, package: &str) -> Result<(), ApiError> {
    connection.client().get_package(package).await?;
    if connection.package_defaults(package)?.is_none() {
        return Err(ApiError::PackageNotKept(package.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kept_parameters_are_shown_as_openwhisk_shows_a_packages() {
        let kept = json!({"a": 1}).as_object().cloned().expect("object");
        let shown = with_parameters(json!({"name": "p", "parameters": []}), &kept).expect("shown");
        assert_eq!(shown["parameters"], json!([{"key": "a", "value": 1}]));
    }
}
