//! `GET /api/v1/api-docs`: the OpenAPI 3 document of this API, built by
//! `utoipa` from the same `#[utoipa::path]` attributes that put each handler
//! in the route table ([`crate::routes::route_table`]), so the document and
//! the router cannot disagree. What the attributes share (the path and query
//! parameters, the free-form and either-or bodies, the error body, HTTP Basic
//! authentication) is declared here once; the entities' bodies are the
//! `Api…` views and `…Put` bodies of `clemmys_whisk`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use clemmys_whisk::{
    Activation, ApiActionCount, ApiActionSummary, ApiActivationCount, ApiActivationSummary,
    ApiPackageCount, ApiPackageSummary, ApiRule, ApiRuleCount, ApiTriggerCount, ApiTriggerSummary,
};
use serde_json::{Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, ResponseBuilder, Tag};
use utoipa::{IntoParams, ToSchema};

/// The name of the HTTP Basic security scheme in the document.
pub(crate) const BASIC_AUTH: &str = "basic";

/// The document's tags, in the order a reader meets them.
const TAGS: [(&str, &str); 10] = [
    ("Info", "What this server is and the API's version."),
    ("Namespaces", "The caller's namespaces and their limits."),
    ("Actions", "Actions: create, get, delete and invoke."),
    (
        "Packages",
        "Packages and bindings, and the actions inside packages.",
    ),
    ("Triggers", "Triggers: create, get, delete and fire."),
    ("Rules", "Rules from triggers to actions, and their status."),
    ("Activations", "Activation records, results and logs."),
    (
        "Web actions",
        "Web-exported actions, served without credentials.",
    ),
    (
        "Key broker",
        "The key broker's identity and sealed requests.",
    ),
    (
        "Admin",
        "Namespaces and keys, for the node's administrator.",
    ),
];

/// `{ns}`: a namespace, `_` for the caller's own.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "only described: handlers take `Path` tuples")]
pub(crate) struct NamespacePath {
    /// The namespace, or `_` for the caller's own.
    ns: String,
}

/// `{ns}/…/{name}`: an entity of a namespace.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "only described: handlers take `Path` tuples")]
pub(crate) struct EntityPath {
    /// The namespace, or `_` for the caller's own.
    ns: String,
    /// The entity's name.
    name: String,
}

/// `{ns}/actions/{pkg}/{name}`: an action inside a package.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "only described: handlers take `Path` tuples")]
pub(crate) struct PackageActionPath {
    /// The namespace, or `_` for the caller's own.
    ns: String,
    /// The package (or binding) holding the action.
    pkg: String,
    /// The action's name inside the package.
    name: String,
}

/// `{ns}/activations/{id}`: an activation record.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "only described: handlers take `Path` tuples")]
pub(crate) struct ActivationPath {
    /// The namespace, or `_` for the caller's own.
    ns: String,
    /// The activation id (32 hexadecimal digits).
    id: String,
}

/// `?limit=&skip=&count=` of the list routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "only described: handlers read the raw query")]
pub(crate) struct Paging {
    /// At most this many entries (default 30, at most 200).
    limit: Option<u32>,
    /// Skip this many entries first.
    skip: Option<u32>,
    /// Answer `{"<collection>": N}`, the number of entries, instead.
    count: Option<bool>,
}

/// `?overwrite=` of the `PUT` routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "only described: handlers read the raw query")]
pub(crate) struct Overwrite {
    /// Replace an existing entity (409 without it).
    overwrite: Option<bool>,
}

/// `?blocking=&result=&timeout=` of an invoke.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "only described: handlers read the raw query")]
pub(crate) struct InvokeOptions {
    /// Wait for the activation (202 with its id when it takes too long).
    blocking: Option<bool>,
    /// With `blocking`, answer the result only, not the whole record.
    result: Option<bool>,
    /// With `blocking`, the longest wait in milliseconds.
    timeout: Option<u64>,
}

/// `?code=` of `GET` on an action.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "only described: handlers read the raw query")]
pub(crate) struct CodeOption {
    /// Include the action's code (default `true`).
    code: Option<bool>,
}

/// The filters of `GET …/activations`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "only described: handlers read the raw query")]
pub(crate) struct ActivationFilter {
    /// Only activations of this action (`name` or `pkg/name`).
    name: Option<String>,
    /// Only activations that started at or after this time (epoch ms).
    since: Option<u64>,
    /// Only activations that started at or before this time (epoch ms).
    upto: Option<u64>,
    /// Whole records instead of summaries.
    docs: Option<bool>,
    /// At most this many records (default 30, at most 200).
    limit: Option<u32>,
    /// Skip this many records first.
    skip: Option<u32>,
    /// Answer `{"activations": N}` instead.
    count: Option<bool>,
}

/// Parameters or an event: any JSON object, the keys being the
/// parameters' names.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described: handlers parse the object")]
pub(crate) struct Parameters(Map<String, Value>);

/// A blocking invoke's answer: the activation record, or with
/// `result=true` only the action's result.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the record")]
pub(crate) enum BlockingAnswer {
    /// The activation record.
    Record(Box<Activation>),
    /// With `result=true`: what the action returned, any JSON object.
    Result(Map<String, Value>),
}

/// `GET …/activations`: summaries, whole records with `docs=true`, or
/// their number with `count=true`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the list")]
pub(crate) enum ActivationList {
    /// Without `docs=true` or `count=true`.
    Summaries(Vec<ApiActivationSummary>),
    /// With `docs=true`.
    Records(Vec<Activation>),
    /// With `count=true`.
    Count(ApiActivationCount),
}

/// `GET …/actions`: summaries, or their number with `count=true`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the list")]
pub(crate) enum ActionList {
    /// Without `count=true`.
    Summaries(Vec<ApiActionSummary>),
    /// With `count=true`.
    Count(ApiActionCount),
}

/// `GET …/packages`: summaries, or their number with `count=true`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the list")]
pub(crate) enum PackageList {
    /// Without `count=true`.
    Summaries(Vec<ApiPackageSummary>),
    /// With `count=true`.
    Count(ApiPackageCount),
}

/// `GET …/triggers`: summaries, or their number with `count=true`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the list")]
pub(crate) enum TriggerList {
    /// Without `count=true`.
    Summaries(Vec<ApiTriggerSummary>),
    /// With `count=true`.
    Count(ApiTriggerCount),
}

/// `GET …/rules`: the rules, or their number with `count=true`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only described: handlers answer the list")]
pub(crate) enum RuleList {
    /// Without `count=true`.
    Rules(Vec<ApiRule>),
    /// With `count=true`.
    Count(ApiRuleCount),
}

/// Every failure's body, as OpenWhisk answers it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only described: `ApiError` writes the body")]
pub(crate) struct ErrorBody {
    /// What went wrong, in OpenWhisk's words where it has them.
    error: String,
    /// The request's id, to find it in the server's log.
    code: String,
}

/// Declares what every operation shares: HTTP Basic authentication
/// (`UUID:KEY`, or `admin:TOKEN` on the admin routes) as the default
/// requirement, the tags, and the error body as each operation's `500`
/// and `default` responses (as OpenWhisk's own document lists a `500`
/// for each operation).
pub(crate) fn complete(document: &mut OpenApi) {
    document.info.title = "Clemmys: the Apache OpenWhisk REST API".to_owned();
    document.info.description = Some(
        "Confidential serverless functions behind Apache OpenWhisk's REST API. Operations \
         that name no security requirement of their own take HTTP Basic authentication with \
         a namespace's `UUID:KEY`."
            .to_owned(),
    );
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = document
        .components
        .get_or_insert_with(utoipa::openapi::Components::new);
    components.add_security_scheme(
        BASIC_AUTH,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
    );
    components.schemas.insert(
        <ErrorBody as ToSchema>::name().into_owned(),
        <ErrorBody as utoipa::PartialSchema>::schema(),
    );
    document.security = Some(vec![SecurityRequirement::new(
        BASIC_AUTH,
        Vec::<String>::new(),
    )]);
    document.tags = Some(
        TAGS.iter()
            .map(|(name, description)| {
                let mut tag = Tag::new(*name);
                tag.description = Some((*description).to_owned());
                tag
            })
            .collect(),
    );
    // OpenAPI has no catch-all segments: `{*rest}` is described as `{rest}`.
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (openapi_path(&path), item))
        .collect();
    let error = error_response("A failure, with OpenWhisk's status and error body.");
    let server_error = error_response(
        "The platform failed: `There was an error processing your request.`, the detail in \
         the server's log only.",
    );
    let parameters = utoipa::openapi::Ref::from_schema_name(<Parameters as ToSchema>::name());
    for (path, item) in &mut document.paths.paths {
        // A web action's 500 may be the action's own answer (`.http`).
        let shared: &[(&str, &utoipa::openapi::Response)] = if path.starts_with("/api/v1/web/") {
            &[("default", &error)]
        } else {
            &[("500", &server_error), ("default", &error)]
        };
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ];
        let ids: Vec<Option<String>> = operations
            .iter()
            .map(|(_, operation)| {
                operation
                    .as_ref()
                    .and_then(|found| found.operation_id.clone())
            })
            .collect();
        for (method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            // One handler on several methods (web actions) has one id;
            // OpenAPI wants one per operation.
            if let Some(id) = &mut operation.operation_id
                && ids.iter().flatten().filter(|other| *other == id).count() > 1
            {
                id.push('_');
                id.push_str(method);
            }
            for (status, response) in shared {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| RefOr::T((*response).clone()));
            }
            // Parameters and events may be left out (an empty body is
            // `{}`); utoipa marks every body it types as required.
            if let Some(RefOr::T(body)) = &mut operation.request_body
                && body.content.values().any(|content| {
                    matches!(content, RefOr::T(content)
                        if matches!(&content.schema, Some(RefOr::Ref(reference))
                            if reference.ref_location == parameters.ref_location))
                })
            {
                body.required = None;
            }
        }
    }
}

/// A response of `description` whose body is the [`ErrorBody`].
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                <ErrorBody as ToSchema>::name(),
            )))),
        )
        .build()
}

/// An axum route path as the document writes it: a catch-all `{*name}`
/// becomes the parameter `{name}`.
pub(crate) fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// The document as JSON, built once.
pub(crate) fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // A document of strings, maps and lists with string keys always
        // serialises.
        crate::routes::route_table()
            .document
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// `GET /api/v1/api-docs`.
#[utoipa::path(
    get,
    path = "/api-docs",
    operation_id = "api_docs",
    tag = "Info",
    security(()),
    responses((status = 200, description = "This OpenAPI 3 document.", body = serde_json::Value))
)]
pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
