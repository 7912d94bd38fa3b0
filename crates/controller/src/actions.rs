//! `…/namespaces/{ns}/actions[/{name}]`: list, get, create/update, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use clemmys_bus::InvokerMessage;
use clemmys_proto::chain_plan::{CHAIN_PLAN_ANNOTATION, SignedChainPlan};
use clemmys_store::PutMode;
use clemmys_whisk::action::{ActionPut, ExecPut, is_js_identifier};
use clemmys_whisk::limits::{MAX_CODE_BYTES, MAX_PAYLOAD_BYTES};
use clemmys_whisk::{
    Action, ActionLimits, CONFIDENTIAL_ANNOTATION, EntityName, Exec, FullyQualifiedName,
    JAVASCRIPT_KINDS, JsKind, KeyValues, Package, SEQUENCE_KIND, WASM_KIND,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::error::entity_name;
use crate::query::{self, QueryParams};
use crate::{ApiError, Controller};

/// Most components a sequence may have.
pub const MAX_SEQUENCE_LENGTH: usize = 50;
/// Largest `PUT` body: 48 MB of code, base64-encoded, plus the JSON around it.
pub(crate) const MAX_PUT_BODY: usize = MAX_CODE_BYTES / 3 * 4 + MAX_PAYLOAD_BYTES + 64 * 1024;

/// `GET …/actions`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/actions",
    operation_id = "actions_list",
    tag = "Actions",
    summary = "List actions",
    params(crate::api_docs::NamespacePath, crate::api_docs::Paging),
    responses((status = 200, description = "The namespace's actions and its packages' actions. With `count=true`, `{\"actions\": N}` instead.", body = crate::api_docs::ActionList))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?;
    let counting = query::flag(&params, "count", false)?;
    let (skip, limit) = query::paging(&params, "actions")?;
    // As in OpenWhisk, a namespace's actions include those of its packages
    // (named `ns/pkg` in their `namespace` field): the namespace's own
    // first, then each package's, by package name.
    let packages = controller
        .store
        .list_packages(namespace, 0, usize::MAX)
        .await?;
    if counting {
        let mut count = controller.store.count_actions(namespace).await?;
        for package in &packages {
            count = count.saturating_add(
                controller
                    .store
                    .list_package_actions(namespace, &package.name, 0, usize::MAX)
                    .await?
                    .len(),
            );
        }
        return Ok(Json(clemmys_whisk::ApiActionCount { actions: count }).into_response());
    }
    let mut actions = controller
        .store
        .list_actions(namespace, 0, skip.saturating_add(limit))
        .await?;
    for package in &packages {
        if actions.len() >= skip.saturating_add(limit) {
            break;
        }
        let wanted = skip.saturating_add(limit).saturating_sub(actions.len());
        actions.extend(
            controller
                .store
                .list_package_actions(namespace, &package.name, 0, wanted)
                .await?,
        );
    }
    let summaries: Vec<Value> = actions
        .iter()
        .skip(skip)
        .take(limit)
        .map(Action::to_summary_json)
        .collect();
    Ok(Json(summaries).into_response())
}

/// `GET …/actions/{name}`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/actions/{name}",
    operation_id = "actions_get",
    tag = "Actions",
    summary = "Get an action",
    params(crate::api_docs::EntityPath, crate::api_docs::CodeOption),
    responses((status = 200, description = "The action.", body = clemmys_whisk::ApiAction))
)]
pub async fn get(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?;
    let name = entity_name(&name)?;
    let action = controller
        .action(namespace, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let code = if query::flag(&params, "code", true)? {
        controller.code_text(&action).await?
    } else {
        None
    };
    Ok(Json(action.to_api_json(code)).into_response())
}

/// `DELETE …/actions/{name}`: answers the deleted action.
#[utoipa::path(
    delete,
    path = "/namespaces/{ns}/actions/{name}",
    operation_id = "actions_delete",
    tag = "Actions",
    summary = "Delete an action",
    params(crate::api_docs::EntityPath),
    responses((status = 200, description = "The deleted action.", body = clemmys_whisk::ApiAction))
)]
pub async fn delete(
    State(controller): State<Arc<Controller>>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let namespace = caller.namespace(&ns)?;
    let name = entity_name(&name)?;
    let code = match controller.action(namespace, &name).await? {
        Some(action) => controller.code_text(&action).await?,
        None => None,
    };
    let removed = controller.store.delete_action(namespace, &name).await?;
    controller.forget_action(namespace, &name);
    let removed = removed.ok_or_else(ApiError::not_found)?;
    Ok(Json(removed.to_api_json(code)).into_response())
}

/// `PUT …/actions/{name}[?overwrite=true]`.
#[utoipa::path(
    put,
    path = "/namespaces/{ns}/actions/{name}",
    operation_id = "actions_put",
    tag = "Actions",
    summary = "Create or update an action",
    params(crate::api_docs::EntityPath, crate::api_docs::Overwrite),
    request_body = clemmys_whisk::ActionPut,
    responses((status = 200, description = "The stored action.", body = clemmys_whisk::ApiAction))
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
    let put: ActionPut = parse_json(&bytes)?;
    put_action(
        &controller,
        &caller,
        (namespace, None, name),
        overwrite,
        put,
    )
    .await
}

/// Creates or updates action `name` of `namespace`, in `package` if given
/// (the caller read it, and checked that it is not a binding), and has the
/// invokers compile it ahead of its first invoke.
pub(crate) async fn put_action(
    controller: &Controller,
    caller: &Caller,
    address: (EntityName, Option<&Package>, EntityName),
    overwrite: bool,
    put: ActionPut,
) -> Result<Response, ApiError> {
    let (action, code_text) = store_action(controller, caller, address, overwrite, put).await?;
    if action.exec.has_code() {
        // Compiling ahead of the first invoke is an optimisation: if the
        // queue is full, the first invoke compiles instead.
        let _ = controller
            .queue
            .send(InvokerMessage::Prewarm(Box::new((*action).clone())))
            .await;
    }
    Ok(Json(action.to_api_json(code_text)).into_response())
}

/// [`put_action`] without the prewarm: the stored action and its code as
/// the API shows it.
pub(crate) async fn store_action(
    controller: &Controller,
    caller: &Caller,
    (namespace, home, name): (EntityName, Option<&Package>, EntityName),
    overwrite: bool,
    put: ActionPut,
) -> Result<(Arc<Action>, Option<String>), ApiError> {
    let package = home.map(|home| home.name.clone());
    let existing = match &package {
        Some(package) => controller
            .store
            .get_package_action(&namespace, package, &name)
            .await?
            .map(Arc::new),
        None => controller.action(&namespace, &name).await?,
    };
    if existing.is_some() && !overwrite {
        return Err(ApiError::conflict());
    }
    let old = existing.as_deref();

    let mut annotations = put
        .annotations
        .clone()
        .or_else(|| old.map(|action| action.annotations.clone()))
        .unwrap_or_default();
    let limits = old
        .map_or_else(ActionLimits::default, |action| action.limits)
        .updated_with(&put.limits.unwrap_or_default())
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    if let Some(home) = home
        && annotations.is_true(CONFIDENTIAL_ANNOTATION)
    {
        // Before the code is checked, whose refusal would say less.
        check_packaged(home)?;
    }
    let (exec, code) = match &put.exec {
        Some(exec) => {
            let confidential = annotations.is_true(CONFIDENTIAL_ANNOTATION);
            let address = FullyQualifiedName {
                namespace: namespace.clone(),
                package: package.clone(),
                name: name.clone(),
            };
            controller.new_exec(exec, &address, confidential).await?
        }
        None => match old {
            Some(action) => (action.exec.clone(), controller.stored_code(action).await?),
            None => return Err(ApiError::bad_request("exec undefined")),
        },
    };
    if let Exec::Sequence { components } = &exec {
        // A sequence is confidential exactly when its components are.
        let confidential = controller.components_confidential(components).await?;
        annotations.set(CONFIDENTIAL_ANNOTATION, Value::Bool(confidential));
    }
    check_chain_plan(&annotations)?;
    let confidential = annotations.is_true(CONFIDENTIAL_ANNOTATION);
    if let Some(home) = home
        && confidential
        && matches!(exec, Exec::Sequence { .. })
    {
        // A sequence of confidential actions became confidential above.
        check_packaged(home)?;
    }
    if confidential && put.exec.is_none() && matches!(exec, Exec::JavaScript { .. }) {
        // An update that only adds the annotation must not mark stored
        // plaintext source as confidential.
        return Err(ApiError::bad_request(
            "Making a JavaScript action confidential needs its source sealed by a Clemmys \
             client: send the sealed code with the annotation.",
        ));
    }

    if caller.0.limits.confidential_only && !confidential {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Namespace '{namespace}' accepts only confidential actions."),
        ));
    }
    let parameters = put
        .parameters
        .clone()
        .or_else(|| old.map(|action| action.parameters.clone()))
        .unwrap_or_default();
    check_parameters(&parameters, confidential)?;

    annotations.set("exec", Value::String(exec.kind().to_owned()));
    let version = match old {
        Some(action) => {
            let mut version = action.version.clone();
            version.patch += 1;
            version
        }
        None => semver::Version::new(0, 0, 1),
    };
    let action = Action {
        namespace: namespace.clone(),
        name: name.clone(),
        version,
        publish: put
            .publish
            .or(old.map(|action| action.publish))
            .unwrap_or(false),
        exec,
        limits,
        annotations,
        parameters,
        package,
        updated: clemmys_whisk::now_ms(),
    };
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::CreateOnly
    };
    let code_text = code.as_ref().map(|code| shown_code(&action, code));
    controller
        .store
        .put_action(action.clone(), code, mode)
        .await?;
    let action = Arc::new(action);
    if action.package.is_none() {
        controller.cache_action(action.clone());
    }
    Ok((action, code_text))
}

/// A confidential sequence's signed plan is kept for its owner's clients,
/// which verify it; the controller holds no key and checks only that the
/// annotation is a well-framed plan (base64 of its wire form).
fn check_chain_plan(annotations: &KeyValues) -> Result<(), ApiError> {
    let Some(value) = annotations.get(CHAIN_PLAN_ANNOTATION) else {
        return Ok(());
    };
    let framed = value
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .is_some_and(|bytes| SignedChainPlan::from_bytes(&bytes).is_ok());
    if framed {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "The '{CHAIN_PLAN_ANNOTATION}' annotation is not a signed chain plan."
        )))
    }
}

/// Whether a confidential action may join `package`: only a confidential
/// package, which has no parameters on the node. Any other package's
/// parameters are stored and merged by the provider in the clear; its
/// owner's client seals a confidential package's parameters into each of
/// its confidential actions instead.
fn check_packaged(package: &Package) -> Result<(), ApiError> {
    if package.is_confidential() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "A confidential action can only join a confidential package: the parameters of \
         package {} are stored and merged by the provider in the clear. Create one with \
         `clemmys package create NAME --confidential` (its parameters are then sealed into \
         its actions), or create the action as a plain one (--plain).",
        package.name
    )))
}

/// Whether `error` says an entity is missing or not readable (as opposed
/// to the store failing).
pub(crate) fn is_absent(error: &ApiError) -> bool {
    matches!(error.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN)
}

/// Stored code as the API shows it: base64 for wasm and for sealed
/// JavaScript, text for plain JavaScript.
fn shown_code(action: &Action, code: &[u8]) -> String {
    match action.exec {
        Exec::JavaScript { .. } if !action.is_confidential() => {
            String::from_utf8_lossy(code).into_owned()
        }
        _ => base64::engine::general_purpose::STANDARD.encode(code),
    }
}

fn check_parameters(parameters: &KeyValues, confidential: bool) -> Result<(), ApiError> {
    if confidential && !parameters.is_empty() {
        return Err(ApiError::bad_request(
            "A confidential action cannot have bound parameters in the clear: the provider \
             would store them. Its owner's client seals them with the code (give the code \
             again with them), or pass them at invoke time, where they are sealed.",
        ));
    }
    let size = serde_json::to_vec(parameters).map_or(0, |bytes| bytes.len());
    if size > MAX_PAYLOAD_BYTES {
        return Err(ApiError::too_large("Parameters", size, MAX_PAYLOAD_BYTES));
    }
    Ok(())
}

impl Controller {
    /// The code of `action` to show in its JSON, if it has code.
    pub(crate) async fn code_text(&self, action: &Action) -> Result<Option<String>, ApiError> {
        Ok(self
            .stored_code(action)
            .await?
            .map(|code| shown_code(action, &code)))
    }

    async fn stored_code(&self, action: &Action) -> Result<Option<Vec<u8>>, ApiError> {
        if !action.exec.has_code() {
            return Ok(None);
        }
        match &action.package {
            Some(package) => Ok(self
                .store
                .get_package_code(&action.namespace, package, &action.name)
                .await?),
            None => Ok(self.store.get_code(&action.namespace, &action.name).await?),
        }
    }

    /// Validates the `exec` of a `PUT` and returns it with its code bytes.
    async fn new_exec(
        &self,
        exec: &ExecPut,
        address: &FullyQualifiedName,
        confidential: bool,
    ) -> Result<(Exec, Option<Vec<u8>>), ApiError> {
        match exec.kind.as_str() {
            WASM_KIND => {
                let code = self.binary_code(
                    exec,
                    "exec.code must be the base64 encoding of a WebAssembly module",
                    confidential,
                )?;
                let exec = Exec::Wasm {
                    code_digest: hex::encode(Sha256::digest(&code)),
                    code_size: code.len() as u64,
                    main: exec.main.clone(),
                };
                Ok((exec, Some(code)))
            }
            SEQUENCE_KIND => {
                let components = self.sequence_components(exec, address).await?;
                Ok((Exec::Sequence { components }, None))
            }
            kind => match JsKind::parse(kind) {
                Some(runtime) => {
                    let code = self.javascript_code(exec, confidential)?;
                    let exec = Exec::JavaScript {
                        runtime,
                        code_digest: hex::encode(Sha256::digest(&code)),
                        code_size: code.len() as u64,
                        main: exec.main.clone(),
                    };
                    Ok((exec, Some(code)))
                }
                None => Err(ApiError::bad_request(format!(
                    "The specified runtime '{kind}' is not supported by this platform. Valid values are: '{WASM_KIND}', {}, '{SEQUENCE_KIND}'.",
                    JAVASCRIPT_KINDS.map(|kind| format!("'{kind}'")).join(", ")
                ))),
            },
        }
    }

    /// Checks the `exec` of a JavaScript action and returns the code to
    /// store: its source, or for a confidential action the source sealed
    /// by the owner's client (base64, `binary: true`). OpenWhisk accepts any
    /// text and reports a syntax error when the action runs; so does this.
    fn javascript_code(&self, exec: &ExecPut, confidential: bool) -> Result<Vec<u8>, ApiError> {
        if !self.code_check.runs_javascript() {
            return Err(ApiError::bad_request(format!(
                "The runtime '{}' is not available on this node: it was started without the \
                 JavaScript engine (scripts/build-runtimes.sh builds it; `clemmys serve \
                 --js-engine PATH` loads it).",
                exec.kind
            )));
        }
        if let Some(main) = &exec.main
            && !is_js_identifier(main)
        {
            return Err(ApiError::bad_request(format!(
                "exec.main '{main}' must name a JavaScript function (a plain identifier)."
            )));
        }
        if confidential {
            return self.sealed_javascript(exec);
        }
        if exec.binary == Some(true) {
            return Err(ApiError::bad_request(
                "Zipped JavaScript actions are not supported: send the source as text \
                 (binary false).",
            ));
        }
        let source = exec.code.clone().ok_or_else(|| {
            ApiError::bad_request(format!("exec.code is required for kind '{}'", exec.kind))
        })?;
        if source.len() > MAX_CODE_BYTES {
            return Err(ApiError::too_large("Code", source.len(), MAX_CODE_BYTES));
        }
        Ok(source.into_bytes())
    }

    /// The sealed source of a confidential JavaScript action: only its
    /// framing is checked, the rest is the enclave's.
    fn sealed_javascript(&self, exec: &ExecPut) -> Result<Vec<u8>, ApiError> {
        self.binary_code(
            exec,
            "exec.code of a confidential JavaScript action must be the base64 of its sealed \
             source",
            true,
        )
    }

    /// The base64 `exec.code` of `exec`, decoded, within the size limit and
    /// passing the code check (a module, or sealed code when
    /// `confidential`); `not_base64` opens the message when it does not
    /// decode.
    fn binary_code(
        &self,
        exec: &ExecPut,
        not_base64: &str,
        confidential: bool,
    ) -> Result<Vec<u8>, ApiError> {
        let text = exec.code.as_deref().ok_or_else(|| {
            ApiError::bad_request(format!("exec.code is required for kind '{}'", exec.kind))
        })?;
        let code = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| ApiError::bad_request(format!("{not_base64}: {error}")))?;
        if code.len() > MAX_CODE_BYTES {
            return Err(ApiError::too_large("Code", code.len(), MAX_CODE_BYTES));
        }
        self.code_check
            .check(&code, confidential)
            .map_err(ApiError::bad_request)?;
        Ok(code)
    }

    /// Whether all components are confidential; mixing is refused, since a
    /// plain step would see the values a confidential one hides.
    async fn components_confidential(&self, components: &[String]) -> Result<bool, ApiError> {
        let mut kinds = Vec::with_capacity(components.len());
        for text in components {
            let name = FullyQualifiedName::parse(text, None)
                .map_err(|error| ApiError::bad_request(error.to_string()))?;
            if let Some(package) = &name.package {
                // Only a package's own actions can be confidential: one
                // reached through a binding or the built-in catalog is
                // plain (and checked to exist with the others).
                let packaged = self
                    .store
                    .get_package_action(&name.namespace, package, &name.name)
                    .await?;
                kinds.push(packaged.is_some_and(|action| action.is_confidential()));
                continue;
            }
            let action = self
                .action(&name.namespace, &name.name)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Sequence component does not exist: '{text}'."))
                })?;
            kinds.push(action.is_confidential());
        }
        match (kinds.iter().all(|k| *k), kinds.iter().any(|k| *k)) {
            (true, _) => Ok(true),
            (false, false) => Ok(false),
            (false, true) => Err(ApiError::bad_request(
                "A sequence cannot mix confidential and plain actions: a plain step would see the \
                 values the confidential ones protect.",
            )),
        }
    }

    /// Resolves and checks the components of sequence `address`: each
    /// exists and may be read by its namespace, none is the sequence itself
    /// (also through sequences it nests), and they hold at most
    /// [`MAX_SEQUENCE_LENGTH`] actions in all, nested ones counted, as
    /// OpenWhisk counts them.
    async fn sequence_components(
        &self,
        exec: &ExecPut,
        address: &FullyQualifiedName,
    ) -> Result<Vec<String>, ApiError> {
        let components = exec.components.as_deref().unwrap_or_default();
        if components.is_empty() {
            return Err(ApiError::bad_request(
                "No component specified for the sequence.",
            ));
        }
        let mut resolved = Vec::with_capacity(components.len());
        let mut actions = 0usize;
        for text in components {
            let (component, action) = self.sequence_component(text, address).await?;
            actions = actions.saturating_add(self.atomic_actions(&action, address, 0).await?);
            if actions > MAX_SEQUENCE_LENGTH {
                return Err(too_many_actions());
            }
            resolved.push(component);
        }
        Ok(resolved)
    }

    /// Resolves and checks component `text` of sequence `address`: its
    /// fully qualified name and the action it names.
    async fn sequence_component(
        &self,
        text: &str,
        address: &FullyQualifiedName,
    ) -> Result<(String, Arc<Action>), ApiError> {
        let namespace = &address.namespace;
        let mut component = FullyQualifiedName::parse(text, None)
            .map_err(|error| ApiError::bad_request(error.to_string()))?;
        if component.namespace.as_str() == "_" {
            component.namespace = namespace.clone();
        }
        if &component == address {
            return Err(ApiError::bad_request("Sequence may not refer to itself."));
        }
        let missing =
            || ApiError::bad_request(format!("Sequence component does not exist: '{text}'."));
        let action = match &component.package {
            // An action of a package this namespace may read: its own, a
            // published one (such as /whisk.system/utils), or one through
            // a binding.
            Some(package) => {
                let found = (&component.namespace, package, &component.name);
                match crate::package_actions::resolve(self, namespace, found).await {
                    Ok((action, _)) => Arc::new(action),
                    Err(error) if is_absent(&error) => return Err(missing()),
                    Err(error) => return Err(error),
                }
            }
            None if &component.namespace != namespace => {
                return Err(ApiError::bad_request(format!(
                    "Sequence component '{text}' must be an action of namespace '{namespace}' \
                     or of a package it may read."
                )));
            }
            None => self
                .action(namespace, &component.name)
                .await?
                .ok_or_else(missing)?,
        };
        if matches!(action.exec, Exec::Sequence { .. }) && action.is_confidential() {
            return Err(ApiError::bad_request(format!(
                "Sequence component '{text}' is a confidential sequence; confidential sequences \
                 cannot be nested (each runs under a chain plan its owner signed for it alone)."
            )));
        }
        Ok((component.to_string(), action))
    }

    /// How many actions `action` runs: one, or for a sequence those of
    /// its components, nested ones counted. Refuses a sequence that leads
    /// back to `address` or nests deeper than the length limit allows.
    fn atomic_actions<'a>(
        &'a self,
        action: &'a Action,
        address: &'a FullyQualifiedName,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let Exec::Sequence { components } = &action.exec else {
                return Ok(1);
            };
            if depth >= MAX_SEQUENCE_LENGTH {
                return Err(too_many_actions());
            }
            let mut count = 0usize;
            for text in components {
                let name = FullyQualifiedName::parse(text, None)
                    .map_err(|error| ApiError::bad_request(error.to_string()))?;
                if &name == address {
                    return Err(ApiError::bad_request("Sequence may not refer to itself."));
                }
                let nested = match &name.package {
                    Some(package) => {
                        let found = (&name.namespace, package, &name.name);
                        match crate::package_actions::resolve(self, &address.namespace, found).await
                        {
                            Ok((action, _)) => Some(Arc::new(action)),
                            Err(error) if is_absent(&error) => None,
                            Err(error) => return Err(error),
                        }
                    }
                    None => self.action(&name.namespace, &name.name).await?,
                };
                // A component deleted since counts as the one action it was.
                let actions = match nested {
                    Some(nested) => self.atomic_actions(&nested, address, depth + 1).await?,
                    None => 1,
                };
                count = count.saturating_add(actions);
                if count > MAX_SEQUENCE_LENGTH {
                    return Err(too_many_actions());
                }
            }
            Ok(count)
        })
    }
}

fn too_many_actions() -> ApiError {
    ApiError::bad_request("Too many actions in the sequence.")
}
