//! Packages: named groups of actions with default parameters, and bindings
//! (a package of one namespace that refers to a package, possibly shared,
//! of another, with parameters of its own), as OpenWhisk has them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::action::ApiActionSummary;
use crate::{EntityName, KeyValues};

/// The package a binding refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Binding {
    /// Its namespace.
    pub namespace: EntityName,
    /// Its name.
    pub name: EntityName,
}

/// A stored package or binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// The namespace the package lives in.
    pub namespace: EntityName,
    /// Its name.
    pub name: EntityName,
    /// Semantic version, bumped (patch) on every update.
    pub version: semver::Version,
    /// Whether other namespaces may read it, bind to it and invoke its
    /// actions (never write).
    pub publish: bool,
    /// For a binding, the package it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// Default parameters of its actions.
    pub parameters: KeyValues,
    /// Annotations.
    pub annotations: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

impl Package {
    /// Whether the package holds confidential actions: its parameters are
    /// then kept by the owner's client and sealed into each of them, never
    /// stored by the node.
    pub fn is_confidential(&self) -> bool {
        self.annotations.is_true(crate::CONFIDENTIAL_ANNOTATION)
    }

    /// The full OpenWhisk shape of `GET …/packages/{name}`; `actions` are
    /// the summaries of the actions it holds (a binding's are its
    /// package's). Stored packages offer no feeds.
    pub fn to_api(&self, actions: Vec<ApiActionSummary>) -> ApiPackage {
        ApiPackage {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            binding: ApiBinding {
                namespace: self.binding.as_ref().map(|b| b.namespace.to_string()),
                name: self.binding.as_ref().map(|b| b.name.to_string()),
            },
            parameters: self.parameters.clone(),
            annotations: self.annotations.clone(),
            actions,
            feeds: Vec::new(),
            updated: self.updated,
        }
    }

    /// The full OpenWhisk JSON of `GET …/packages/{name}`.
    pub fn to_api_json(&self, actions: Vec<ApiActionSummary>) -> Value {
        crate::api_json(&self.to_api(actions))
    }

    /// The summary of one entry in `GET …/packages`: `binding` is `false`
    /// for a package, as OpenWhisk lists it.
    pub fn to_summary(&self) -> ApiPackageSummary {
        ApiPackageSummary {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            binding: match &self.binding {
                Some(binding) => ApiListedBinding::Binding(binding.clone()),
                None => ApiListedBinding::Package(false),
            },
            annotations: self.annotations.clone(),
            updated: self.updated,
        }
    }

    /// The summary JSON of one entry in `GET …/packages`.
    pub fn to_summary_json(&self) -> Value {
        crate::api_json(&self.to_summary())
    }
}

/// A package's `binding` as `GET` shows it: `{}` for a package, the
/// referred package for a binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PackageBinding))]
pub struct ApiBinding {
    /// The referred package's namespace; absent for a package.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub namespace: Option<String>,
    /// The referred package's name; absent for a package.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub name: Option<String>,
}

/// A package's `binding` in a list: `false` for a package, the referred
/// package for a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ListedBinding))]
#[serde(untagged)]
pub enum ApiListedBinding {
    /// A package: always `false`.
    Package(bool),
    /// A binding: the package it refers to.
    Binding(Binding),
}

/// A package or binding as `GET`, `PUT` and `DELETE …/packages/{name}`
/// answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Package))]
pub struct ApiPackage {
    /// The namespace the package lives in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Semantic version, bumped (patch) on every update.
    pub version: String,
    /// Whether other namespaces may read it, bind to it and invoke its
    /// actions.
    pub publish: bool,
    /// `{}`, or for a binding the package it refers to.
    pub binding: ApiBinding,
    /// Default parameters of its actions.
    pub parameters: KeyValues,
    /// Annotations.
    pub annotations: KeyValues,
    /// The actions it holds (a binding's are its package's); empty in the
    /// answers of `PUT` and `DELETE`.
    pub actions: Vec<ApiActionSummary>,
    /// The feed actions it offers, each `{namespace, name, version,
    /// publish, annotations}`: empty for every package but the node's
    /// `/whisk.system/alarms`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub feeds: Vec<Value>,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The answer of `GET …/packages?count=true`, as OpenWhisk's
/// (`{"packages": N}`): the packages the list would show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PackageCount))]
pub struct ApiPackageCount {
    /// The number of packages.
    pub packages: usize,
}

/// One entry of `GET …/packages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PackageSummary))]
pub struct ApiPackageSummary {
    /// The namespace the package lives in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Whether it is shared.
    pub publish: bool,
    /// `false`, or for a binding the package it refers to.
    pub binding: ApiListedBinding,
    /// Annotations.
    pub annotations: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The `binding` of a `PUT` body: `{}` (or absent) for a package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindingPut {
    /// The referred package's namespace (`_` is the caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The referred package's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl BindingPut {
    /// Whether this is `{}`: no binding.
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none() && self.name.is_none()
    }
}

/// The body of `PUT …/packages/{name}`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackagePut {
    /// Ignored if present (the path decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Ignored if present (the path decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ignored: the platform assigns versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether to share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    /// For a binding, the package it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingPut>,
    /// Default parameters (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<KeyValues>,
    /// Annotations (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<KeyValues>,
}

/// The default parameters an action of `package` (reached through
/// `binding`, if any) starts from: the package's, overridden by the
/// binding's. The action's own and the invoke's come on top.
pub fn package_parameters(package: &Package, binding: Option<&Package>) -> Map<String, Value> {
    let mut merged = package.parameters.to_object();
    if let Some(binding) = binding {
        merged.extend(binding.parameters.to_object());
    }
    merged
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::KeyValue;
    use crate::action::ApiExecSummary;

    fn name(text: &str) -> EntityName {
        EntityName::new(text).expect("name")
    }

    fn kv(pairs: &[(&str, Value)]) -> KeyValues {
        KeyValues(
            pairs
                .iter()
                .map(|(key, value)| KeyValue {
                    key: (*key).into(),
                    value: value.clone(),
                })
                .collect(),
        )
    }

    fn package(binding: Option<Binding>, parameters: KeyValues) -> Package {
        Package {
            namespace: name("guest"),
            name: name("tools"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            binding,
            parameters,
            annotations: KeyValues::default(),
            updated: 7,
        }
    }

    #[test]
    fn package_json_has_openwhisk_shape() {
        let plain = package(None, kv(&[("a", json!(1))]));
        let hello = ApiActionSummary {
            namespace: "guest/tools".into(),
            name: "hello".into(),
            version: "0.0.1".into(),
            publish: false,
            annotations: KeyValues::default(),
            limits: crate::ActionLimits::default(),
            exec: ApiExecSummary { binary: true },
            updated: 7,
        };
        let full = plain.to_api_json(vec![hello]);
        assert_eq!(full["binding"], json!({}));
        assert_eq!(full["version"], "0.0.1");
        assert_eq!(full["parameters"], json!([{"key": "a", "value": 1}]));
        assert_eq!(full["actions"][0]["name"], "hello");
        assert_eq!(full["actions"][0]["exec"], json!({"binary": true}));
        assert_eq!(full["feeds"], json!([]));
        assert_eq!(plain.to_summary_json()["binding"], json!(false));
        assert!(plain.to_summary_json().get("parameters").is_none());

        let bound = package(
            Some(Binding {
                namespace: name("other"),
                name: name("shared"),
            }),
            KeyValues::default(),
        );
        let expected = json!({"namespace": "other", "name": "shared"});
        assert_eq!(bound.to_api_json(Vec::new())["binding"], expected);
        assert_eq!(bound.to_summary_json()["binding"], expected);
    }

    #[test]
    fn binding_parameters_override_the_packages() {
        let shared = package(None, kv(&[("a", json!(1)), ("b", json!(2))]));
        let binding = package(None, kv(&[("b", json!(3))]));
        assert_eq!(
            Value::Object(package_parameters(&shared, Some(&binding))),
            json!({"a": 1, "b": 3})
        );
        assert_eq!(
            Value::Object(package_parameters(&shared, None)),
            json!({"a": 1, "b": 2})
        );
    }
}
