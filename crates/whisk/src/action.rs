//! Actions: the stored document, the `PUT` body, and their OpenWhisk JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::limits::{ActionLimits, ActionLimitsPut};
use crate::name::EntityName;

/// One `{key, value}` pair of OpenWhisk's parameter and annotation arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// Any JSON value.
    pub value: Value,
}

/// An ordered list of `{key, value}` pairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct KeyValues(pub Vec<KeyValue>);

impl KeyValues {
    /// The value stored under `key`, if any (the last one wins, as in OpenWhisk).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    /// Whether `key` is present with the JSON value `true`.
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key) == Some(&Value::Bool(true))
    }

    /// Sets `key` to `value`, replacing any earlier entry.
    pub fn set(&mut self, key: &str, value: Value) {
        self.0.retain(|kv| kv.key != key);
        self.0.push(KeyValue {
            key: key.to_owned(),
            value,
        });
    }

    /// The pairs as a JSON object (later keys override earlier ones).
    pub fn to_object(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect()
    }

    /// The pairs from a JSON object, in key order.
    pub fn from_object(object: &Map<String, Value>) -> Self {
        Self(
            object
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        )
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A parameter was bound with annotation `final: true` and an invoke tried
/// to override it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Request defines parameters that are not allowed (e.g., reserved properties).")]
pub struct FinalParameterOverridden;

/// Merges bound parameters under invoke parameters: the invoke wins, unless
/// the action carries annotation `final: true`, in which case overriding a
/// bound parameter is an error (OpenWhisk answers 400).
pub fn merge_parameters(
    bound: &KeyValues,
    annotations: &KeyValues,
    invoke: Map<String, Value>,
) -> Result<Map<String, Value>, FinalParameterOverridden> {
    if bound.is_empty() {
        return Ok(invoke);
    }
    let mut merged = bound.to_object();
    if annotations.is_true("final") && invoke.keys().any(|key| merged.contains_key(key)) {
        return Err(FinalParameterOverridden);
    }
    merged.extend(invoke);
    Ok(merged)
}

/// How an action runs, as stored. Code is kept outside the document, under
/// its digest, so that listing actions never loads code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Exec {
    /// A WASI preview-1 command module (or, for a confidential action, the
    /// sealed envelope of one).
    Wasm {
        /// SHA-256 of the stored code bytes, lowercase hex.
        code_digest: String,
        /// Size of the stored code in bytes.
        code_size: u64,
        /// Optional export to run instead of `_start`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        main: Option<String>,
    },
    /// JavaScript source text, run by the node's JavaScript engine with
    /// the source as data (plain actions only, for now).
    #[serde(rename = "javascript")]
    JavaScript {
        /// The OpenWhisk kind it was created with.
        runtime: JsKind,
        /// SHA-256 of the stored source (UTF-8), lowercase hex.
        code_digest: String,
        /// Size of the stored source in bytes.
        code_size: u64,
        /// The function to call, when not `main`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        main: Option<String>,
    },
    /// An OpenWhisk sequence of fully qualified action names.
    Sequence {
        /// `/ns/[pkg/]name` of each step, in order.
        components: Vec<String>,
    },
}

impl Exec {
    /// The OpenWhisk kind string.
    pub fn kind(&self) -> &'static str {
        match self {
            Exec::Wasm { .. } => crate::WASM_KIND,
            Exec::JavaScript { runtime, .. } => runtime.as_str(),
            Exec::Sequence { .. } => crate::SEQUENCE_KIND,
        }
    }

    /// Whether the action has stored code (wasm or JavaScript).
    pub fn has_code(&self) -> bool {
        !matches!(self, Exec::Sequence { .. })
    }
}

/// A JavaScript kind of OpenWhisk's, as accepted by `PUT` (see
/// [`JAVASCRIPT_KINDS`](crate::JAVASCRIPT_KINDS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JsKind {
    /// `nodejs:20`.
    #[serde(rename = "nodejs:20")]
    Nodejs20,
    /// `nodejs:18`.
    #[serde(rename = "nodejs:18")]
    Nodejs18,
    /// `nodejs:default`.
    #[serde(rename = "nodejs:default")]
    NodejsDefault,
}

impl JsKind {
    /// The kind from its OpenWhisk name, if it is a JavaScript kind.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "nodejs:20" => Some(Self::Nodejs20),
            "nodejs:18" => Some(Self::Nodejs18),
            "nodejs:default" => Some(Self::NodejsDefault),
            _ => None,
        }
    }

    /// The OpenWhisk name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nodejs20 => "nodejs:20",
            Self::Nodejs18 => "nodejs:18",
            Self::NodejsDefault => "nodejs:default",
        }
    }
}

/// The function a JavaScript action's engine calls when `exec.main` names
/// none, as in OpenWhisk.
pub const DEFAULT_JAVASCRIPT_MAIN: &str = "main";

/// Whether `name` can name a JavaScript action's entry function: a plain
/// identifier (the engine splices it into the source to find a
/// `function main` declaration).
pub fn is_js_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A stored action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// The namespace the action lives in.
    pub namespace: EntityName,
    /// The action's name.
    pub name: EntityName,
    /// The package it belongs to, if any (in the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<EntityName>,
    /// Semantic version, bumped (patch) on every update.
    pub version: semver::Version,
    /// Whether the action is shared with other namespaces.
    pub publish: bool,
    /// How it runs.
    pub exec: Exec,
    /// Its limits.
    pub limits: ActionLimits,
    /// Annotations, as given by the owner plus the ones the platform adds.
    pub annotations: KeyValues,
    /// Bound parameters.
    pub parameters: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

impl Action {
    /// Whether the action's code and data are sealed end to end.
    pub fn is_confidential(&self) -> bool {
        self.annotations.is_true(crate::CONFIDENTIAL_ANNOTATION)
    }

    /// The name a confidential action is registered, sealed and run under
    /// in its namespace: `name`, or `package/name` inside a package (the
    /// key broker, the sealed code and the receipts all carry it, so the
    /// host cannot move sealed code between packages).
    pub fn sealed_name(&self) -> String {
        match &self.package {
            Some(package) => format!("{package}/{}", self.name),
            None => self.name.to_string(),
        }
    }

    /// `namespace/name` or `namespace/package/name`, the `path` OpenWhisk
    /// puts in activation annotations.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace_path(), self.name)
    }

    /// `namespace` or `namespace/package`: the `namespace` OpenWhisk shows
    /// for an action.
    pub fn namespace_path(&self) -> String {
        match &self.package {
            Some(package) => format!("{}/{package}", self.namespace),
            None => self.namespace.to_string(),
        }
    }

    /// The `exec` object of the OpenWhisk JSON. `code` is the text to show
    /// (base64 for wasm, the source for JavaScript), or `None` when the
    /// caller asked for `code=false`.
    fn api_exec(&self, code: Option<String>) -> ApiExec {
        match &self.exec {
            Exec::Wasm { main, .. } => ApiExec {
                kind: crate::WASM_KIND.to_owned(),
                binary: Some(true),
                code,
                main: main.clone(),
                components: None,
            },
            Exec::JavaScript { runtime, main, .. } => ApiExec {
                kind: runtime.as_str().to_owned(),
                // Sealed source is bytes, shown in base64.
                binary: Some(self.is_confidential()),
                code,
                main: main.clone(),
                components: None,
            },
            Exec::Sequence { components } => ApiExec {
                kind: crate::SEQUENCE_KIND.to_owned(),
                binary: None,
                code: None,
                main: None,
                components: Some(components.clone()),
            },
        }
    }

    /// The full OpenWhisk shape of `GET …/actions/{name}`.
    pub fn to_api(&self, code: Option<String>) -> ApiAction {
        ApiAction {
            namespace: self.namespace_path(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            exec: self.api_exec(code),
            limits: self.limits,
            annotations: self.annotations.clone(),
            parameters: self.parameters.clone(),
            updated: self.updated,
        }
    }

    /// The full OpenWhisk JSON of `GET …/actions/{name}`.
    pub fn to_api_json(&self, code: Option<String>) -> Value {
        crate::api_json(&self.to_api(code))
    }

    /// The summary of one entry in `GET …/actions`.
    pub fn to_summary(&self) -> ApiActionSummary {
        ApiActionSummary {
            namespace: self.namespace_path(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            annotations: self.annotations.clone(),
            limits: self.limits,
            exec: ApiExecSummary {
                binary: matches!(self.exec, Exec::Wasm { .. }),
            },
            updated: self.updated,
        }
    }

    /// The summary JSON of one entry in `GET …/actions`.
    pub fn to_summary_json(&self) -> Value {
        crate::api_json(&self.to_summary())
    }
}

/// The `exec` of an action as the API shows it: `kind` with `code`
/// (unless `code=false`), `binary` and `main` for code actions, `kind`
/// and `components` for a sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Exec))]
pub struct ApiExec {
    /// `wasm`, a JavaScript kind (`nodejs:20`, ...) or `sequence`.
    pub kind: String,
    /// Whether `code` is base64 (wasm, and confidential JavaScript);
    /// absent for a sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub binary: Option<bool>,
    /// The code: base64 for wasm (or a sealed envelope), source text for
    /// JavaScript; absent with `code=false` and for a sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub code: Option<String>,
    /// The entry point, when not the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub main: Option<String>,
    /// A sequence's steps, `/ns/[pkg/]name` each, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub components: Option<Vec<String>>,
}

/// The `exec` of an action in a list: whether its code is binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ExecSummary))]
pub struct ApiExecSummary {
    /// Whether the action's code is base64 (wasm).
    pub binary: bool,
}

/// An action as `GET`, `PUT` and `DELETE …/actions/{name}` answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Action))]
pub struct ApiAction {
    /// `namespace`, or `namespace/package` for an action in a package.
    pub namespace: String,
    /// The action's name.
    pub name: String,
    /// Semantic version, bumped (patch) on every update.
    pub version: String,
    /// Whether the action is shared with other namespaces.
    pub publish: bool,
    /// How it runs.
    pub exec: ApiExec,
    /// Its limits.
    pub limits: ActionLimits,
    /// Annotations, as given by the owner plus the ones the platform adds.
    pub annotations: KeyValues,
    /// Bound parameters.
    pub parameters: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The answer of `GET …/actions?count=true`, as OpenWhisk's
/// (`{"actions": N}`): the namespace's actions and its packages'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActionCount))]
pub struct ApiActionCount {
    /// The number of actions.
    pub actions: usize,
}

/// One entry of `GET …/actions`: an action without its code and
/// parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActionSummary))]
pub struct ApiActionSummary {
    /// `namespace`, or `namespace/package` for an action in a package.
    pub namespace: String,
    /// The action's name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Whether the action is shared with other namespaces.
    pub publish: bool,
    /// Annotations.
    pub annotations: KeyValues,
    /// Its limits.
    pub limits: ActionLimits,
    /// Whether its code is binary.
    pub exec: ApiExecSummary,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The `exec` of a `PUT` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecPut {
    /// `wasm`, a JavaScript kind (`nodejs:20`, ...) or `sequence` (other
    /// OpenWhisk kinds are refused with a message listing the supported
    /// ones).
    pub kind: String,
    /// Base64 code for `wasm`, source text for JavaScript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether `code` is base64; wasm code always is, so this may be omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
    /// Optional entry point export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// Components of a sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

impl ExecPut {
    /// The `exec` of a wasm action: `code` base64-encoded, `binary: true`,
    /// and the entry export `main` if one is named.
    pub fn wasm(code: &[u8], main: Option<String>) -> Self {
        use base64::Engine as _;
        Self {
            kind: crate::WASM_KIND.into(),
            code: Some(base64::engine::general_purpose::STANDARD.encode(code)),
            binary: Some(true),
            main,
            components: None,
        }
    }

    /// The `exec` of a sequence of `components` (qualified names).
    pub fn sequence(components: Vec<String>) -> Self {
        Self {
            kind: crate::SEQUENCE_KIND.into(),
            components: Some(components),
            ..Self::default()
        }
    }
}

/// The body of `PUT …/actions/{name}`: every field optional, as in OpenWhisk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionPut {
    /// Ignored if present (the path decides), accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Ignored if present (the path decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ignored: the platform assigns versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    /// The code or sequence; required on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecPut>,
    /// Limits to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ActionLimitsPut>,
    /// Annotations (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<KeyValues>,
    /// Bound parameters (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<KeyValues>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kv(pairs: &[(&str, Value)]) -> KeyValues {
        KeyValues(
            pairs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: (*k).into(),
                    value: v.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn invoke_parameters_override_bound_ones() {
        let bound = kv(&[("a", json!(1)), ("b", json!(2))]);
        let invoke = json!({"b": 3, "c": 4})
            .as_object()
            .cloned()
            .expect("object");
        let merged = merge_parameters(&bound, &KeyValues::default(), invoke).expect("merge");
        assert_eq!(Value::Object(merged), json!({"a": 1, "b": 3, "c": 4}));
    }

    #[test]
    fn final_parameters_cannot_be_overridden() {
        let bound = kv(&[("a", json!(1))]);
        let annotations = kv(&[("final", json!(true))]);
        let invoke = json!({"a": 2}).as_object().cloned().expect("object");
        assert_eq!(
            merge_parameters(&bound, &annotations, invoke),
            Err(FinalParameterOverridden)
        );
    }

    #[test]
    fn action_json_has_openwhisk_shape() {
        let action = Action {
            namespace: EntityName::new("guest").expect("name"),
            name: EntityName::new("hello").expect("name"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            exec: Exec::Wasm {
                code_digest: "00".into(),
                code_size: 1,
                main: None,
            },
            limits: ActionLimits::default(),
            annotations: kv(&[("exec", json!("wasm"))]),
            parameters: KeyValues::default(),
            package: None,
            updated: 5,
        };
        let full = action.to_api_json(Some("AGFzbQ==".into()));
        assert_eq!(
            full["exec"],
            json!({"kind": "wasm", "binary": true, "code": "AGFzbQ=="})
        );
        assert_eq!(full["version"], "0.0.1");
        assert_eq!(
            full["limits"],
            json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
        );
        assert_eq!(
            full["annotations"],
            json!([{"key": "exec", "value": "wasm"}])
        );
        let summary = action.to_summary_json();
        assert_eq!(summary["exec"], json!({"binary": true}));
        assert!(summary.get("parameters").is_none());
    }

    #[test]
    fn javascript_action_json_shows_the_source_as_text() {
        let exec = Exec::JavaScript {
            runtime: JsKind::Nodejs20,
            code_digest: "00".into(),
            code_size: 3,
            main: Some("handler".into()),
        };
        let stored = serde_json::to_value(&exec).expect("serialises");
        assert_eq!(stored["kind"], "javascript");
        assert_eq!(stored["runtime"], "nodejs:20");
        assert_eq!(
            serde_json::from_value::<Exec>(stored).expect("reads back"),
            exec
        );
        let action = Action {
            namespace: EntityName::new("guest").expect("name"),
            name: EntityName::new("hello").expect("name"),
            package: None,
            version: semver::Version::new(0, 0, 1),
            publish: false,
            exec,
            limits: ActionLimits::default(),
            annotations: KeyValues::default(),
            parameters: KeyValues::default(),
            updated: 5,
        };
        assert_eq!(action.exec.kind(), "nodejs:20");
        assert_eq!(
            action.to_api_json(Some("x=1".into()))["exec"],
            json!({"kind": "nodejs:20", "binary": false, "code": "x=1", "main": "handler"})
        );
        assert_eq!(action.to_summary_json()["exec"], json!({"binary": false}));
    }

    #[test]
    fn javascript_kinds_parse_and_print_alike() {
        for name in crate::JAVASCRIPT_KINDS {
            assert_eq!(JsKind::parse(name).map(JsKind::as_str), Some(name));
        }
        assert_eq!(JsKind::parse("nodejs:14"), None);
        assert_eq!(JsKind::parse("wasm"), None);
    }

    #[test]
    fn only_plain_identifiers_name_a_javascript_main() {
        assert!(is_js_identifier("main"));
        assert!(is_js_identifier("$handler_2"));
        assert!(!is_js_identifier(""));
        assert!(!is_js_identifier("2main"));
        assert!(!is_js_identifier("main; evil()"));
        assert!(!is_js_identifier("a.b"));
    }
}
