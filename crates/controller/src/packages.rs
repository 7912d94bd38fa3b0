//! `…/namespaces/{ns}/packages[/{name}]`: list, get, create/update (with
//! bindings), delete, as OpenWhisk answers them.
//!
//! A package of another namespace is readable when it is published
//! (`publish: true`), and never writable; a binding may refer to a
//! package of the caller's own namespace or to a published one.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clemmys_store::PutMode;
use clemmys_whisk::package::BindingPut;
use clemmys_whisk::{Binding, EntityName, KeyValues, Package, PackagePut};
use serde_json::Value;

use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::error::entity_name;
use crate::package_actions::action_summaries;
use crate::query::{self, QueryParams};
use crate::{ApiError, Controller};

/// Largest `PUT` body: parameters and annotations only.
const MAX_PUT_BODY: usize = clemmys_whisk::limits::MAX_PAYLOAD_BYTES;

/// Why a package request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The binding names a package that does not exist.
    #[error("Binding references a package that does not exist.")]
    BindingTargetMissing,
    /// The binding names another binding.
    #[error("Cannot bind to another package binding.")]
    BindingToBinding,
    /// The binding names a package of another namespace that is not shared.
    #[error("The supplied authentication is not authorized to access this resource.")]
    BindingTargetNotShared,
    /// The binding's namespace or name is missing or invalid.
    #[error("The binding must name a package: {0}")]
    MalformedBinding(String),
    /// An update would turn a package into a binding.
    #[error("Resource is a package and cannot be converted into a binding.")]
    PackageCannotBecomeBinding,
    /// The package still holds actions.
    #[error("Package not empty (contains {0} entities)")]
    NotEmpty(usize),
    /// An update would turn a binding into a package.
    #[error("Resource is a binding and cannot be converted into a package.")]
    BindingCannotBecomePackage,
    /// A confidential package given parameters in the clear.
    #[error(
        "A confidential package has no parameters on the node: its owner's Clemmys client \
         keeps them and seals them into each of its confidential actions \
         (`clemmys package update NAME --confidential -p KEY VALUE`)."
    )]
    ClearParametersOnConfidential,
    /// A binding to a confidential package.
    #[error(
        "A confidential package cannot be bound: its actions run only under their own names, \
         with the parameters their owner sealed."
    )]
    BindingToConfidential,
}

impl From<PackageError> for ApiError {
    fn from(error: PackageError) -> Self {
        let status = match error {
            PackageError::BindingTargetNotShared => StatusCode::FORBIDDEN,
            PackageError::PackageCannotBecomeBinding
            | PackageError::BindingCannotBecomePackage
            | PackageError::NotEmpty(_) => StatusCode::CONFLICT,
            PackageError::BindingTargetMissing
            | PackageError::BindingToBinding
            | PackageError::MalformedBinding(_)
            | PackageError::ClearParametersOnConfidential
            | PackageError::BindingToConfidential => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The namespace a path segment names and whether it is the caller's own.
pub(crate) fn namespace_of(caller: &Caller, segment: &str) -> Result<(EntityName, bool), ApiError> {
    match caller.namespace(segment) {
        Ok(own) => Ok((own.clone(), true)),
        Err(_) => Ok((entity_name(segment)?, false)),
    }
}

/// The package `namespace/name` as namespace `reader` may read it: its
/// own, or a published one of another namespace (anything else is 403
/// there, so that private names do not leak).
pub(crate) async fn readable_package(
    controller: &Controller,
    reader: &EntityName,
    namespace: &EntityName,
    name: &EntityName,
) -> Result<Package, ApiError> {
    let own = namespace == reader;
    match controller.store.get_package(namespace, name).await? {
        Some(package) if own || package.publish => Ok(package),
        Some(_) => Err(ApiError::forbidden()),
        None if own => Err(ApiError::not_found()),
        None => Err(ApiError::forbidden()),
    }
}

/// The package a binding `PUT` names, as (namespace, name).
fn binding_target(
    put: &BindingPut,
    caller: &EntityName,
) -> Result<(EntityName, EntityName), PackageError> {
    let malformed = |why: &str| PackageError::MalformedBinding(why.to_owned());
    let namespace = match put.namespace.as_deref() {
        None | Some("_") => caller.clone(),
        Some(text) => EntityName::new(text).map_err(|error| malformed(&error.to_string()))?,
    };
    let name = put
        .name
        .as_deref()
        .ok_or_else(|| malformed("no name"))
        .and_then(|text| EntityName::new(text).map_err(|error| malformed(&error.to_string())))?;
    Ok((namespace, name))
}

/// The binding a `PUT` asks for, checked against what it refers to.
/// `lookup` reads a package; `caller` owns the binding.
fn check_binding(
    put: &BindingPut,
    caller: &EntityName,
    lookup: impl Fn(&EntityName, &EntityName) -> Result<Option<Package>, ApiError>,
) -> Result<Binding, ApiError> {
    let (namespace, name) = binding_target(put, caller)?;
    let target = lookup(&namespace, &name)?.ok_or(PackageError::BindingTargetMissing)?;
    if namespace != *caller && !target.publish {
        return Err(PackageError::BindingTargetNotShared.into());
    }
    if target.binding.is_some() {
        return Err(PackageError::BindingToBinding.into());
    }
    if target.is_confidential() {
        return Err(PackageError::BindingToConfidential.into());
    }
    Ok(Binding { namespace, name })
}

/// `GET …/packages`: the caller's packages, or another namespace's
/// published ones.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/packages",
    operation_id = "packages_list",
    tag = "Packages",
    summary = "List packages",
    params(crate::api_docs::NamespacePath, crate::api_docs::Paging),
    responses((status = 200, description = "The caller's packages, or another namespace's published ones. With `count=true`, `{\"packages\": N}` instead.", body = crate::api_docs::PackageList))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let (namespace, own) = namespace_of(&caller, &ns)?;
    let (skip, limit) = query::paging(&params, "packages")?;
    let summaries: Vec<Value> = if own {
        controller
            .store
            .list_packages(&namespace, skip, limit)
            .await?
            .iter()
            .map(Package::to_summary_json)
            .collect()
    } else {
        // Paging counts the shared ones only.
        controller
            .store
            .list_packages(&namespace, 0, usize::MAX)
            .await?
            .iter()
            .filter(|package| package.publish)
            .skip(skip)
            .take(limit)
            .map(Package::to_summary_json)
            .collect()
    };
    if query::flag(&params, "count", false)? {
        return Ok(Json(clemmys_whisk::ApiPackageCount {
            packages: summaries.len(),
        })
        .into_response());
    }
    Ok(Json(summaries).into_response())
}

/// `GET …/packages/{name}`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/packages/{name}",
    operation_id = "packages_get",
    tag = "Packages",
    summary = "Get a package",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The package with its actions.", body = clemmys_whisk::ApiPackage))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (namespace, _) = namespace_of(&caller, &ns)?;
    let name = entity_name(&name)?;
    if let Some(feeds) = crate::feeds::builtin_feed_package(&namespace, &name) {
        return Ok(Json(feeds).into_response());
    }
    let package = readable_package(&controller, &caller.0.name, &namespace, &name).await?;
    let actions = match &package.binding {
        Some(binding) => {
            match readable_package(
                &controller,
                &caller.0.name,
                &binding.namespace,
                &binding.name,
            )
            .await
            {
                Ok(home) => action_summaries(&controller, &home).await?,
                // A binding whose package is gone or no longer shared
                // shows no actions; invoking through it answers why.
                Err(_) => Vec::new(),
            }
        }
        None => action_summaries(&controller, &package).await?,
    };
    Ok(Json(package.to_api_json(actions)).into_response())
}

/// `DELETE …/packages/{name}`: answers the deleted package.
#[utoipa::path(
    delete,
    path = "/namespaces/{ns}/packages/{name}",
    operation_id = "packages_delete",
    tag = "Packages",
    summary = "Delete a package",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The deleted package.", body = clemmys_whisk::ApiPackage))
)]
pub async fn delete(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?.clone();
    let name = entity_name(&name)?;
    let held = controller
        .store
        .list_package_actions(&namespace, &name, 0, usize::MAX)
        .await?
        .len();
    if held > 0 {
        return Err(PackageError::NotEmpty(held).into());
    }
    let removed = controller
        .store
        .delete_package(&namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(removed.to_api_json(Vec::new())).into_response())
}

/// `PUT …/packages/{name}[?overwrite=true]`.
#[utoipa::path(
    put,
    path = "/namespaces/{ns}/packages/{name}",
    operation_id = "packages_put",
    tag = "Packages",
    summary = "Create or update a package or binding",
    params(crate::api_docs::EntityPath, crate::api_docs::Overwrite),
    request_body = clemmys_whisk::PackagePut,
    responses((status = 200, description = "The stored package.", body = clemmys_whisk::ApiPackage))
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
    let put: PackagePut = parse_json(&bytes)?;

    let existing = controller.store.get_package(&namespace, &name).await?;
    if existing.is_some() && !overwrite {
        return Err(ApiError::conflict());
    }
    let old = existing.as_ref();
    let requested = match put.binding.as_ref().filter(|binding| !binding.is_empty()) {
        Some(binding) => {
            // The target is read first: the check itself does not wait.
            let target = match binding_target(binding, &namespace) {
                Ok((ns, name)) => controller.store.get_package(&ns, &name).await?,
                Err(_) => None,
            };
            Some(check_binding(binding, &namespace, |_, _| {
                Ok(target.clone())
            })?)
        }
        None => None,
    };
    let binding = match (old, requested) {
        (None, requested) => requested,
        (Some(old), Some(_)) if old.binding.is_none() => {
            return Err(PackageError::PackageCannotBecomeBinding.into());
        }
        (Some(old), None) if old.binding.is_some() && put.binding.is_some() => {
            return Err(PackageError::BindingCannotBecomePackage.into());
        }
        (Some(_), Some(requested)) => Some(requested),
        (Some(old), None) => old.binding.clone(),
    };
    let version = match old {
        Some(package) => {
            let mut version = package.version.clone();
            version.patch += 1;
            version
        }
        None => semver::Version::new(0, 0, 1),
    };
    let keep = |new: Option<KeyValues>, old: Option<&KeyValues>| {
        new.or_else(|| old.cloned()).unwrap_or_default()
    };
    let package = Package {
        namespace,
        name,
        version,
        publish: put
            .publish
            .or(old.map(|package| package.publish))
            .unwrap_or(false),
        binding,
        parameters: keep(put.parameters, old.map(|package| &package.parameters)),
        annotations: keep(put.annotations, old.map(|package| &package.annotations)),
        updated: clemmys_whisk::now_ms(),
    };
    if package.is_confidential() && !package.parameters.is_empty() {
        return Err(PackageError::ClearParametersOnConfidential.into());
    }
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::CreateOnly
    };
    controller.store.put_package(package.clone(), mode).await?;
    Ok(Json(package.to_api_json(Vec::new())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> EntityName {
        EntityName::new(text).expect("name")
    }

    fn package(namespace: &str, publish: bool, binding: Option<Binding>) -> Package {
        Package {
            namespace: name(namespace),
            name: name("tools"),
            version: semver::Version::new(0, 0, 1),
            publish,
            binding,
            parameters: KeyValues::default(),
            annotations: KeyValues::default(),
            updated: 0,
        }
    }

    fn put(namespace: Option<&str>, name: Option<&str>) -> BindingPut {
        BindingPut {
            namespace: namespace.map(Into::into),
            name: name.map(Into::into),
        }
    }

    fn refusal(result: Result<Binding, ApiError>) -> (StatusCode, String) {
        let error = result.expect_err("refused");
        (error.status, error.message)
    }

    #[test]
    fn a_binding_may_name_an_own_or_a_shared_package() {
        let caller = name("guest");
        let own = check_binding(&put(Some("_"), Some("tools")), &caller, |ns, _| {
            Ok(Some(package(ns.as_str(), false, None)))
        })
        .expect("own package");
        assert_eq!(own.namespace, caller);
        let shared = check_binding(&put(Some("other"), Some("tools")), &caller, |ns, _| {
            Ok(Some(package(ns.as_str(), true, None)))
        })
        .expect("shared package");
        assert_eq!(shared.namespace, name("other"));
    }

    #[test]
    fn a_binding_to_an_unshared_missing_bound_or_confidential_package_is_refused() {
        let caller = name("guest");
        let unshared = refusal(check_binding(
            &put(Some("other"), Some("tools")),
            &caller,
            |ns, _| Ok(Some(package(ns.as_str(), false, None))),
        ));
        assert_eq!(unshared.0, StatusCode::FORBIDDEN);
        let missing = refusal(check_binding(&put(None, Some("tools")), &caller, |_, _| {
            Ok(None)
        }));
        assert_eq!(
            missing,
            (
                StatusCode::BAD_REQUEST,
                PackageError::BindingTargetMissing.to_string()
            )
        );
        let to_binding = refusal(check_binding(
            &put(None, Some("tools")),
            &caller,
            |ns, name| {
                Ok(Some(package(
                    ns.as_str(),
                    true,
                    Some(Binding {
                        namespace: ns.clone(),
                        name: name.clone(),
                    }),
                )))
            },
        ));
        assert_eq!(to_binding.1, PackageError::BindingToBinding.to_string());
        let to_confidential = refusal(check_binding(
            &put(None, Some("tools")),
            &caller,
            |ns, _| {
                let mut confidential = package(ns.as_str(), false, None);
                confidential
                    .annotations
                    .set(clemmys_whisk::CONFIDENTIAL_ANNOTATION, Value::Bool(true));
                Ok(Some(confidential))
            },
        ));
        assert_eq!(
            to_confidential,
            (
                StatusCode::BAD_REQUEST,
                PackageError::BindingToConfidential.to_string()
            )
        );
        let nameless = refusal(check_binding(&put(Some("_"), None), &caller, |_, _| {
            Ok(None)
        }));
        assert_eq!(nameless.0, StatusCode::BAD_REQUEST);
    }
}
