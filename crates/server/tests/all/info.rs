//! The API's own description: `GET /`, `GET /api/v1`, a namespace's
//! limits, in OpenWhisk's shapes, and the OpenAPI document.

use std::collections::BTreeSet;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;

#[tokio::test]
async fn the_root_and_the_api_describe_themselves_without_credentials() {
    let server = TestServer::start().await;
    let root = server.raw(Method::GET, "/", Bytes::new(), None).await;
    assert_eq!(root.status, StatusCode::OK, "{:?}", root.json);
    assert_eq!(root.json["api_paths"], json!(["/api/v1"]));
    let limits = &root.json["limits"];
    assert_eq!(limits["max_action_duration"], 300_000);
    assert_eq!(limits["min_action_memory"], 128 * 1024 * 1024);
    assert_eq!(limits["max_action_memory"], 512 * 1024 * 1024);
    assert_eq!(limits["max_action_logs"], 10 * 1024 * 1024);
    assert_eq!(limits["sequence_length"], 50);
    assert_eq!(root.json["runtimes"]["wasm"][0]["kind"], "wasm");
    // This node has no JavaScript engine.
    assert!(
        root.json["runtimes"].get("nodejs").is_none(),
        "{:?}",
        root.json
    );

    let api = server.raw(Method::GET, "/api/v1", Bytes::new(), None).await;
    assert_eq!(api.status, StatusCode::OK, "{:?}", api.json);
    assert_eq!(api.json["api_version"], "1.0.0");
    assert_eq!(api.json["api_version_path"], "v1");
    assert!(api.json["build"].is_string());
    assert_eq!(api.json["swagger_paths"], json!({"api-docs": "/api-docs"}));
}

#[tokio::test]
async fn namespace_limits_report_memory_and_logs_in_mb() {
    let server = TestServer::start().await;
    let limits = server
        .call(Method::GET, "/api/v1/namespaces/_/limits", None)
        .await;
    assert_eq!(limits.status, StatusCode::OK, "{:?}", limits.json);
    assert_eq!(limits.json["minActionMemory"], 128);
    assert_eq!(limits.json["maxActionMemory"], 512);
    assert_eq!(limits.json["minActionLogs"], 0);
    assert_eq!(limits.json["maxActionLogs"], 10);
    assert_eq!(limits.json["maxActionTimeout"], 300_000);
    assert_eq!(limits.json["concurrentInvocations"], 100);
}

#[tokio::test]
async fn a_node_with_the_javascript_engine_lists_the_nodejs_kinds() {
    let server =
        TestServer::start_with(|config| config.js_engine = Some(crate::common::js_engine())).await;
    for path in ["/", "/api/v1"] {
        let info = server.raw(Method::GET, path, Bytes::new(), None).await;
        assert_eq!(info.status, StatusCode::OK, "{:?}", info.json);
        let kinds: Vec<&str> = info.json["runtimes"]["nodejs"]
            .as_array()
            .map(|kinds| kinds.iter().filter_map(|k| k["kind"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            kinds,
            ["nodejs:20", "nodejs:18", "nodejs:default"],
            "{path}"
        );
        assert_eq!(info.json["runtimes"]["wasm"][0]["kind"], "wasm");
    }
}

/// The path parameters a path template names (`{ns}` → `ns`).
fn template_parameters(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_api_docs_are_an_openapi_3_document_with_basic_auth() {
    let server = TestServer::start().await;
    // Read without credentials, as OpenWhisk serves its own.
    let docs = server
        .raw(Method::GET, "/api/v1/api-docs", Bytes::new(), None)
        .await;
    assert_eq!(docs.status, StatusCode::OK, "{:?}", docs.json);
    // An independent OpenAPI parser reads it.
    let spec = oas3::from_json(docs.json.to_string())
        .unwrap_or_else(|error| panic!("not an OpenAPI 3 document: {error}"));
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);

    // HTTP Basic is declared and required by default.
    let schemes = &spec
        .components
        .as_ref()
        .expect("components")
        .security_schemes;
    match schemes.get("basic") {
        Some(oas3::spec::ObjectOrReference::Object(oas3::spec::SecurityScheme::Http {
            scheme,
            ..
        })) => assert_eq!(scheme.to_ascii_lowercase(), "basic"),
        other => panic!("no HTTP Basic scheme named basic: {other:?}"),
    }
    let required: Vec<_> = spec.security.iter().flat_map(|r| r.0.keys()).collect();
    assert_eq!(required, ["basic"]);

    let paths = spec.paths.as_ref().expect("paths");
    // What a user looks for is there, with its methods.
    let action = &paths["/api/v1/namespaces/{ns}/actions/{name}"];
    for (method, operation) in [
        ("get", &action.get),
        ("put", &action.put),
        ("delete", &action.delete),
        ("post", &action.post),
    ] {
        let operation = operation.as_ref().unwrap_or_else(|| panic!("{method}"));
        // Authenticated: no requirement of its own overrides the default.
        assert!(operation.security.is_empty(), "{method}");
    }
    // Web actions and the description itself are open: one empty
    // requirement.
    for open in [
        "/api/v1/web/{ns}/{pkg}/{rest}",
        "/api/v1/api-docs",
        "/api/v1",
    ] {
        let get = paths[open].get.as_ref().unwrap_or_else(|| panic!("{open}"));
        assert_eq!(get.security.len(), 1, "{open}");
        assert!(get.security[0].0.is_empty(), "{open}");
    }
    // Every path parameter of every operation is declared, and every
    // operation id is unique, as OpenAPI requires.
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        let operations = [
            &item.get,
            &item.put,
            &item.post,
            &item.delete,
            &item.patch,
            &item.head,
            &item.options,
        ];
        for operation in operations.into_iter().flatten() {
            let declared: BTreeSet<String> = operation
                .parameters
                .iter()
                .filter_map(|parameter| match parameter {
                    oas3::spec::ObjectOrReference::Object(parameter)
                        if parameter.location == oas3::spec::ParameterIn::Path =>
                    {
                        Some(parameter.name.clone())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(declared, template_parameters(path), "{path}");
            let id = operation.operation_id.clone().expect("operation id");
            assert!(operation_ids.insert(id.clone()), "{id} twice");
        }
    }
}

/// Every `$ref` in `document`, wherever it sits.
fn schema_refs(document: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![document];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(target)) = object.get("$ref") {
                    found.insert(target.clone());
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The `$ref`s of `document` that name no schema of its components.
fn dangling_refs(document: &Value) -> Vec<String> {
    let schemas = &document["components"]["schemas"];
    schema_refs(document)
        .into_iter()
        .filter(|target| {
            target
                .strip_prefix("#/components/schemas/")
                .is_none_or(|name| schemas.get(name).is_none())
        })
        .collect()
}

/// `schema`, or the component schema it refers to.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|target| target.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &document["components"]["schemas"][name],
        None => schema,
    }
}

/// The schema of `operation`'s JSON request body, or of its `status`
/// response.
fn json_schema<'a>(operation: &'a Value, status: Option<&str>) -> &'a Value {
    let body = match status {
        Some(status) => &operation["responses"][status],
        None => &operation["requestBody"],
    };
    &body["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn the_api_docs_type_the_entity_bodies() {
    let server = TestServer::start().await;
    let docs = server
        .raw(Method::GET, "/api/v1/api-docs", Bytes::new(), None)
        .await;
    assert_eq!(docs.status, StatusCode::OK, "{:?}", docs.json);
    let document = &docs.json;
    oas3::from_json(document.to_string())
        .unwrap_or_else(|error| panic!("not an OpenAPI 3 document: {error}"));

    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for name in [
        "Action",
        "ActionPut",
        "Activation",
        "Package",
        "Trigger",
        "Rule",
        "KeyValue",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "no {name} schema");
    }
    // The Action schema is the JSON served, not the stored document.
    let action_schema = &schemas["Action"]["properties"];
    assert_eq!(action_schema["exec"]["$ref"], "#/components/schemas/Exec");
    assert!(action_schema.get("package").is_none(), "{action_schema}");

    let action = &document["paths"]["/api/v1/namespaces/{ns}/actions/{name}"];
    assert_eq!(
        json_schema(&action["put"], None)["$ref"],
        "#/components/schemas/ActionPut"
    );
    for (method, status) in [("put", "200"), ("get", "200"), ("delete", "200")] {
        assert_eq!(
            json_schema(&action[method], Some(status))["$ref"],
            "#/components/schemas/Action",
            "{method}"
        );
    }
    let listed = resolved(
        document,
        json_schema(
            &document["paths"]["/api/v1/namespaces/{ns}/actions"]["get"],
            Some("200"),
        ),
    );
    // Summaries, or their number with `count=true` (checked below).
    let summaries = listed["oneOf"]
        .as_array()
        .and_then(|shapes| shapes.iter().find(|shape| shape["type"] == "array"))
        .unwrap_or_else(|| panic!("no list of summaries in {listed}"));
    assert_eq!(
        summaries["items"]["$ref"],
        "#/components/schemas/ActionSummary"
    );
    // An invoke's parameters are any JSON object, and may be left out.
    let parameters = json_schema(&action["post"], None);
    let parameters = &schemas[parameters["$ref"]
        .as_str()
        .and_then(|target| target.strip_prefix("#/components/schemas/"))
        .expect("a named parameters schema")];
    assert_eq!(parameters["type"], "object");
    assert_eq!(parameters["additionalProperties"], json!({}));
    assert_ne!(action["post"]["requestBody"]["required"], true);

    // No entity route answers or takes an untyped (`{}`) body.
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths
        .iter()
        .filter(|(path, _)| path.contains("/namespaces"))
    {
        let operations = item.as_object().expect("path item");
        for (method, operation) in operations {
            let responses = operation["responses"].as_object().expect("responses");
            let bodies = responses
                .values()
                .chain([&operation["requestBody"]])
                .filter_map(|body| body["content"]["application/json"]["schema"].as_object());
            for schema in bodies {
                assert!(!schema.is_empty(), "{method} {path}: untyped body");
            }
        }
    }

    // A list's `count=true` answer is one of its 200 shapes, a schema
    // naming exactly the key the server answers, as OpenWhisk does.
    for collection in ["actions", "packages", "triggers", "rules", "activations"] {
        let path = format!("/api/v1/namespaces/{{ns}}/{collection}");
        let listed = resolved(
            document,
            json_schema(&document["paths"][&path]["get"], Some("200")),
        );
        let shapes = listed["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: one shape only: {listed}"));
        let count = shapes
            .iter()
            .map(|shape| resolved(document, shape))
            .find(|shape| shape["type"] == "object")
            .unwrap_or_else(|| panic!("{path}: no count shape in {listed}"));
        let answer = server
            .call(
                Method::GET,
                &format!("/api/v1/namespaces/_/{collection}?count=true"),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        let answered: Vec<&String> = answer.json.as_object().expect("an object").keys().collect();
        let described: Vec<&String> = count["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        assert_eq!(answered, described, "{path}");
        assert_eq!(answered, [collection], "{path}");
        assert_eq!(count["properties"][collection]["type"], "integer", "{path}");
        assert_eq!(count["required"], json!([collection]), "{path}");
    }

    // Every operation of the API names the error body of its 500, as
    // OpenWhisk's document does; a web action's 500 may be its own.
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let server_error = &operation["responses"]["500"];
            if path.starts_with("/api/v1/web/") {
                assert!(server_error.is_null(), "{method} {path}: {server_error}");
            } else {
                assert_eq!(
                    json_schema(operation, Some("500"))["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }

    // Every reference resolves to a defined schema.
    let refs = schema_refs(document);
    assert!(refs.len() > 20, "{refs:?}");
    assert_eq!(dangling_refs(document), Vec::<String>::new());

    // The check can fail: a reference to a schema nobody defined.
    let mut broken = document.clone();
    broken["paths"]["/api/v1/namespaces/{ns}/actions/{name}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"] = json!({"$ref": "#/components/schemas/Gone"});
    assert_eq!(dangling_refs(&broken), ["#/components/schemas/Gone"]);
}
