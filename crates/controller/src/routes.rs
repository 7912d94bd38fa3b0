//! The route table of `/api/v1` and its OpenAPI document, CORS, and JSON
//! answers for unknown routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use clemmys_whisk::web_http::{CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::{
    ApiError, Controller, actions, activations, admin, api_docs, broker, invoke, namespaces,
    package_actions, packages, rules, triggers, web,
};

/// A route that only the router's fallbacks answer, marked in the
/// response's extensions so that tests can tell it from a handler's 404.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unrouted;

/// The API's routes and its OpenAPI document, built together from the
/// handlers' `#[utoipa::path]` attributes.
pub(crate) struct RouteTable {
    /// The routes, without fallbacks, CORS or state.
    pub(crate) router: Router<Arc<Controller>>,
    /// The OpenAPI document of exactly those routes.
    pub(crate) document: utoipa::openapi::OpenApi,
    /// Every path handed to axum, as axum nests it, to hold the document
    /// against.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the route tests"))]
    pub(crate) paths: Vec<String>,
}

/// Routes under one prefix, each registered with its description: the only
/// way a route gets into [`route_table`].
struct Described {
    prefix: &'static str,
    router: OpenApiRouter<Arc<Controller>>,
    paths: Vec<String>,
}

impl Described {
    fn under(prefix: &'static str) -> Self {
        Self {
            prefix,
            router: OpenApiRouter::new(),
            paths: Vec::new(),
        }
    }

    /// Adds the handlers of `routes` (from `routes!`) at the paths their
    /// attributes name.
    fn add(mut self, routes: UtoipaMethodRouter<Arc<Controller>>) -> Self {
        for path in routes.1.paths.keys() {
            // As axum nests a router's paths: `/` is the prefix itself.
            let nested = match (self.prefix, path.as_str()) {
                ("", path) => path.to_owned(),
                (prefix, "/") => prefix.to_owned(),
                (prefix, path) => format!("{prefix}{path}"),
            };
            self.paths.push(nested);
        }
        self.router = self.router.routes(routes);
        self
    }
}

/// Every route of the API with its description.
pub(crate) fn route_table() -> RouteTable {
    let api = Described::under("/api/v1")
        .add(routes!(api_info))
        .add(routes!(api_docs::serve))
        .add(routes!(namespaces::list))
        .add(routes!(namespaces::limits))
        .add(routes!(actions::list))
        .add(routes!(
            actions::get,
            actions::put,
            actions::delete,
            invoke::invoke
        ))
        .add(routes!(package_actions::list))
        .add(routes!(
            package_actions::get,
            package_actions::put,
            package_actions::delete,
            package_actions::invoke
        ))
        .add(routes!(packages::list))
        .add(routes!(packages::get, packages::put, packages::delete))
        .add(routes!(triggers::list))
        .add(routes!(
            triggers::get,
            triggers::put,
            triggers::delete,
            triggers::fire
        ))
        .add(routes!(rules::list))
        .add(routes!(
            rules::get,
            rules::put,
            rules::delete,
            rules::set_status
        ))
        .add(routes!(activations::list))
        .add(routes!(activations::get))
        .add(routes!(activations::result))
        .add(routes!(activations::logs))
        .add(routes!(admin::list))
        .add(routes!(admin::put))
        .add(routes!(web::serve))
        .add(routes!(broker::identity))
        .add(routes!(broker::request));
    let top = Described::under("")
        .add(routes!(root_info))
        .add(routes!(ping));
    let mut paths = api.paths;
    paths.extend(top.paths);
    let (router, mut document) = OpenApiRouter::new()
        .nest(api.prefix, api.router)
        .merge(top.router)
        .split_for_parts();
    api_docs::complete(&mut document);
    RouteTable {
        router,
        document,
        paths,
    }
}

/// The OpenWhisk API router over `controller`.
pub fn router(controller: Arc<Controller>) -> Router {
    route_table()
        .router
        .fallback(|| async { (Extension(Unrouted), ApiError::not_found()) })
        .method_not_allowed_fallback(|| async {
            (
                Extension(Unrouted),
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "The method is not allowed on this resource.",
                ),
            )
        })
        .layer(middleware::from_fn(cors))
        .with_state(controller)
}

/// `GET /ping`: the server is up.
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "ping",
    tag = "Info",
    summary = "Check that the server is up",
    security(()),
    responses((status = 200, description = "`pong`.", body = String))
)]
async fn ping() -> &'static str {
    "pong"
}

/// `GET /`: what this server is, its API paths, default limits and
/// runtimes, in OpenWhisk's shape (durations in ms, memory and logs in
/// bytes, as OpenWhisk's root answers them).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "root_info",
    tag = "Info",
    summary = "What this server is",
    security(()),
    responses((status = 200, description = "Its API paths, default limits and runtimes.", body = RootInfo))
)]
async fn root_info(State(controller): State<Arc<Controller>>) -> Json<RootInfo> {
    use clemmys_whisk::limits::{
        MAX_LOGS_MB, MAX_MEMORY_MB, MAX_TIMEOUT_MS, MB, MIN_LOGS_MB, MIN_MEMORY_MB, MIN_TIMEOUT_MS,
    };
    let defaults = clemmys_whisk::NamespaceLimits::default();
    Json(RootInfo {
        description: DESCRIPTION.to_owned(),
        api_paths: vec!["/api/v1".to_owned()],
        limits: RootLimits {
            actions_per_minute: defaults.invocations_per_minute,
            triggers_per_minute: defaults.fires_per_minute,
            concurrent_actions: defaults.concurrent_invocations,
            sequence_length: crate::actions::MAX_SEQUENCE_LENGTH,
            min_action_duration: MIN_TIMEOUT_MS,
            max_action_duration: MAX_TIMEOUT_MS,
            min_action_memory: u64::from(MIN_MEMORY_MB) * MB,
            max_action_memory: u64::from(MAX_MEMORY_MB) * MB,
            min_action_logs: u64::from(MIN_LOGS_MB) * MB,
            max_action_logs: u64::from(MAX_LOGS_MB) * MB,
        },
        runtimes: runtimes(&controller),
    })
}

/// What `GET /` and `GET /api/v1` say this server is.
const DESCRIPTION: &str = "Clemmys: confidential serverless with the Apache OpenWhisk API";

/// `GET /`, in OpenWhisk's shape.
#[derive(Serialize, ToSchema)]
pub(crate) struct RootInfo {
    /// What this server is.
    description: String,
    /// Its API paths: `/api/v1`.
    api_paths: Vec<String>,
    /// The default namespace limits and the action limit ranges.
    limits: RootLimits,
    /// The kinds it runs, by language.
    runtimes: BTreeMap<String, Vec<Runtime>>,
}

/// The `limits` of `GET /` (durations in ms, memory and logs in bytes).
#[derive(Serialize, ToSchema)]
pub(crate) struct RootLimits {
    /// Invocations a namespace may make per minute, by default.
    actions_per_minute: u32,
    /// Trigger fires a namespace may make per minute, by default.
    triggers_per_minute: u32,
    /// Activations of a namespace that may run at once, by default.
    concurrent_actions: u32,
    /// The most steps of a sequence.
    sequence_length: usize,
    /// The shortest action timeout, in milliseconds.
    min_action_duration: u64,
    /// The longest action timeout, in milliseconds.
    max_action_duration: u64,
    /// The least action memory, in bytes.
    min_action_memory: u64,
    /// The most action memory, in bytes.
    max_action_memory: u64,
    /// The least action log size, in bytes.
    min_action_logs: u64,
    /// The most action log size, in bytes.
    max_action_logs: u64,
}

/// One kind of a language in `runtimes`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Runtime {
    /// The OpenWhisk kind (`wasm`, `nodejs:20`, ...).
    kind: String,
    /// Whether it is the language's default kind.
    default: bool,
}

/// `GET /api/v1`, in OpenWhisk's shape.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiInfo {
    /// What this server is.
    description: String,
    /// `1.0.0`.
    api_version: String,
    /// `v1`.
    api_version_path: String,
    /// The server's version.
    build: String,
    /// The server's version.
    buildno: String,
    /// The kinds it runs, by language.
    runtimes: BTreeMap<String, Vec<Runtime>>,
    /// Where the OpenAPI document is, under the API path.
    swagger_paths: SwaggerPaths,
    /// The server's version.
    version: String,
}

/// The `swagger_paths` of `GET /api/v1`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SwaggerPaths {
    /// `/api-docs`.
    #[serde(rename = "api-docs")]
    api_docs: String,
}

/// `GET /api/v1`: the API's version, in OpenWhisk's shape, with the path
/// of the OpenAPI document.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "api_info",
    tag = "Info",
    summary = "The API's version",
    security(()),
    responses((status = 200, description = "The API's version and runtimes.", body = ApiInfo))
)]
async fn api_info(State(controller): State<Arc<Controller>>) -> Json<ApiInfo> {
    let version = env!("CARGO_PKG_VERSION");
    Json(ApiInfo {
        description: DESCRIPTION.to_owned(),
        api_version: "1.0.0".to_owned(),
        api_version_path: "v1".to_owned(),
        build: version.to_owned(),
        buildno: version.to_owned(),
        runtimes: runtimes(&controller),
        swagger_paths: SwaggerPaths {
            api_docs: "/api-docs".to_owned(),
        },
        version: version.to_owned(),
    })
}

/// The kinds this node runs, by language, in OpenWhisk's shape: wasm
/// always, JavaScript when the node has its engine.
fn runtimes(controller: &Controller) -> BTreeMap<String, Vec<Runtime>> {
    let mut runtimes = BTreeMap::from([(
        "wasm".to_owned(),
        vec![Runtime {
            kind: clemmys_whisk::WASM_KIND.to_owned(),
            default: true,
        }],
    )]);
    if controller.code_check.runs_javascript() {
        runtimes.insert(
            "nodejs".to_owned(),
            clemmys_whisk::JAVASCRIPT_KINDS
                .iter()
                .map(|kind| Runtime {
                    kind: (*kind).to_owned(),
                    default: *kind == "nodejs:default",
                })
                .collect(),
        );
    }
    runtimes
}

/// Answers CORS preflights and allows any origin, as OpenWhisk does. Web
/// actions answer CORS themselves (an action may answer `OPTIONS`).
async fn cors(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/v1/web/") {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(CORS_ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use clemmys_store::RedbStore;
    use tower::ServiceExt;

    use super::*;

    /// `path` with every parameter filled in.
    fn sample_uri(path: &str) -> String {
        path.split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_path_the_router_serves_is_in_the_document() {
        let table = route_table();
        let routed: BTreeSet<String> = table
            .paths
            .iter()
            .map(|path| api_docs::openapi_path(path))
            .collect();
        let documented: BTreeSet<String> = table.document.paths.paths.keys().cloned().collect();
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "routed but not documented"
        );
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "documented but not routed"
        );
        assert!(routed.contains("/api/v1/namespaces/{ns}/actions/{name}"));
    }

    /// Each documented path answers exactly its documented methods from a
    /// handler, and every other method from the router's fallback.
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_methods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
        let app = router(Arc::new(crate::acknowledge_tests::controller(Arc::new(
            store,
        ))));
        let table = route_table();
        let mut probed = 0;
        for (path, item) in &table.document.paths.paths {
            let documented = [
                (Method::GET, item.get.is_some()),
                // axum answers HEAD with the GET handler.
                (Method::HEAD, item.head.is_some() || item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
            ];
            // The web route is documented by its parameter name; any
            // action path reaches it.
            let uri = sample_uri(path);
            for (method, expected) in documented {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(&uri)
                    .body(Body::empty())
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                let routed = response.extensions().get::<Unrouted>().is_none();
                assert_eq!(routed, expected, "{method} {uri} ({path})");
                probed += 1;
            }
        }
        assert!(probed > 100, "{probed}");
        // A path nobody documented is the fallback's.
        let request = Request::builder()
            .uri("/api/v1/namespaces/x/nothing")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert!(response.extensions().get::<Unrouted>().is_some());
    }
}
