//! Triggers and rules: a trigger is a named channel of events; a rule
//! links one trigger to one action, so that firing the trigger invokes the
//! action with the event. As in OpenWhisk, a trigger keeps the links of
//! its rules (with each rule's status), so firing reads one document and a
//! deleted trigger takes its links with it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{EntityName, KeyValues};

/// A reference to an entity as OpenWhisk writes it: `{path, name}`, with
/// `path` the namespace, or `namespace/package` for an action in a package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityRef {
    /// `namespace` or `namespace/package`.
    pub path: String,
    /// The entity's own name.
    pub name: EntityName,
}

impl EntityRef {
    /// The namespace, the first segment of `path`.
    pub fn namespace(&self) -> &str {
        self.path.split('/').next().unwrap_or_default()
    }

    /// The package, if `path` names one.
    pub fn package(&self) -> Option<&str> {
        self.path.split_once('/').map(|(_, package)| package)
    }
}

/// `path/name`, as OpenWhisk names rules and actions in trigger records
/// and in a trigger's `rules` map.
impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.path, self.name)
    }
}

/// Whether a rule fires its action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RuleStatus {
    /// Firing the trigger invokes the action.
    Active,
    /// Firing the trigger skips the action.
    Inactive,
}

/// What a trigger keeps of each of its rules: the action and the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReducedRule {
    /// The action the rule invokes.
    pub action: EntityRef,
    /// Whether it does.
    pub status: RuleStatus,
}

/// A stored trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// The namespace the trigger lives in.
    pub namespace: EntityName,
    /// Its name.
    pub name: EntityName,
    /// Semantic version, bumped (patch) on every update.
    pub version: semver::Version,
    /// Whether it is shared (kept for OpenWhisk's shape; firing is the
    /// owner's only).
    pub publish: bool,
    /// Default parameters of every event; an event's own override them.
    pub parameters: KeyValues,
    /// Annotations (`feed`, …).
    pub annotations: KeyValues,
    /// `namespace/rule` → the rule's action and status.
    #[serde(default)]
    pub rules: BTreeMap<String, ReducedRule>,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

impl Trigger {
    /// The full OpenWhisk shape of `GET …/triggers/{name}`; `rules` only
    /// once the trigger has some, as OpenWhisk shows it.
    pub fn to_api(&self) -> ApiTrigger {
        ApiTrigger {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            parameters: self.parameters.clone(),
            annotations: self.annotations.clone(),
            limits: ApiTriggerLimits {},
            rules: (!self.rules.is_empty()).then(|| self.rules.clone()),
            updated: self.updated,
        }
    }

    /// The full OpenWhisk JSON of `GET …/triggers/{name}`.
    pub fn to_api_json(&self) -> Value {
        crate::api_json(&self.to_api())
    }

    /// The summary of one entry in `GET …/triggers`.
    pub fn to_summary(&self) -> ApiTriggerSummary {
        ApiTriggerSummary {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            annotations: self.annotations.clone(),
            updated: self.updated,
        }
    }

    /// The summary JSON of one entry in `GET …/triggers`.
    pub fn to_summary_json(&self) -> Value {
        crate::api_json(&self.to_summary())
    }

    /// The arguments a fire passes to its rules' actions: the trigger's
    /// parameters, overridden by the event's.
    pub fn event_arguments(&self, event: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = self.parameters.to_object();
        merged.extend(
            event
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        merged
    }

    /// The rule `name`'s status: inactive when the trigger holds no link
    /// to it, as OpenWhisk reports it.
    pub fn rule_status(&self, rule: &str) -> RuleStatus {
        self.rules
            .get(rule)
            .map_or(RuleStatus::Inactive, |link| link.status)
    }
}

/// A trigger's `limits`: always `{}`, as in OpenWhisk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TriggerLimits))]
pub struct ApiTriggerLimits {}

/// A trigger as `GET`, `PUT` and `DELETE …/triggers/{name}` answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Trigger))]
pub struct ApiTrigger {
    /// The namespace the trigger lives in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Semantic version, bumped (patch) on every update.
    pub version: String,
    /// Whether it is shared.
    pub publish: bool,
    /// Default parameters of every event.
    pub parameters: KeyValues,
    /// Annotations (`feed`, …).
    pub annotations: KeyValues,
    /// Always `{}`.
    pub limits: ApiTriggerLimits,
    /// `namespace/rule` → the rule's action and status; absent until the
    /// trigger has a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub rules: Option<BTreeMap<String, ReducedRule>>,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The answer of `GET …/triggers?count=true`, as OpenWhisk's
/// (`{"triggers": N}`): the namespace's triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TriggerCount))]
pub struct ApiTriggerCount {
    /// The number of triggers.
    pub triggers: usize,
}

/// One entry of `GET …/triggers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TriggerSummary))]
pub struct ApiTriggerSummary {
    /// The namespace the trigger lives in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Whether it is shared.
    pub publish: bool,
    /// Annotations.
    pub annotations: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The body of `PUT …/triggers/{name}`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerPut {
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
    /// Default parameters (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<KeyValues>,
    /// Annotations (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<KeyValues>,
    /// Ignored: OpenWhisk's trigger limits are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
}

/// A stored rule. Its status lives in its trigger's link, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The namespace the rule lives in.
    pub namespace: EntityName,
    /// Its name.
    pub name: EntityName,
    /// Semantic version, bumped (patch) on every update.
    pub version: semver::Version,
    /// Whether it is shared.
    pub publish: bool,
    /// The trigger it listens to.
    pub trigger: EntityRef,
    /// The action it invokes.
    pub action: EntityRef,
    /// Annotations.
    pub annotations: KeyValues,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

impl Rule {
    /// `namespace/name`: the rule's key in its trigger's `rules`.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The OpenWhisk shape of a rule, with the `status` its trigger gives
    /// it.
    pub fn to_api(&self, status: RuleStatus) -> ApiRule {
        ApiRule {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            version: self.version.to_string(),
            publish: self.publish,
            annotations: self.annotations.clone(),
            trigger: self.trigger.clone(),
            action: self.action.clone(),
            status,
            updated: self.updated,
        }
    }

    /// The OpenWhisk JSON of a rule, with the `status` its trigger gives it.
    pub fn to_api_json(&self, status: RuleStatus) -> Value {
        crate::api_json(&self.to_api(status))
    }
}

/// The answer of `GET …/rules?count=true`, as OpenWhisk's
/// (`{"rules": N}`): the namespace's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RuleCount))]
pub struct ApiRuleCount {
    /// The number of rules.
    pub rules: usize,
}

/// A rule as the `…/rules` routes answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Rule))]
pub struct ApiRule {
    /// The namespace the rule lives in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Semantic version, bumped (patch) on every update.
    pub version: String,
    /// Whether it is shared.
    pub publish: bool,
    /// Annotations.
    pub annotations: KeyValues,
    /// The trigger it listens to.
    pub trigger: EntityRef,
    /// The action it invokes.
    pub action: EntityRef,
    /// Whether firing the trigger invokes the action.
    pub status: RuleStatus,
    /// Last update, epoch milliseconds.
    pub updated: u64,
}

/// The body of `PUT …/rules/{name}`: `trigger` and `action` are names,
/// `/ns/name`, `name` or (for an action) `pkg/name` and `/ns/pkg/name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulePut {
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
    /// The trigger's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The action's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Annotations (replace the old ones when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<KeyValues>,
    /// Ignored, as OpenWhisk ignores it: `POST …/rules/{name}` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// The body of `POST …/rules/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleStatusPut {
    /// The status to set.
    pub status: RuleStatus,
}

/// The outcome of one rule of a fire, one line of the trigger activation's
/// `logs` in OpenWhisk's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// `namespace/rule`.
    pub rule: String,
    /// `path/action`.
    pub action: String,
    /// The activation's status code: 0 success, 1 application error (the
    /// action is missing, the rule inactive, the invoke refused), 3
    /// internal error.
    pub status_code: u8,
    /// The started activation, or why none started.
    pub outcome: Result<crate::ActivationId, String>,
}

impl RuleOutcome {
    /// The log line: `{"statusCode", "success", "activationId" | "error",
    /// "rule", "action"}`, compact.
    pub fn to_log_line(&self) -> String {
        let mut line = json!({
            "statusCode": self.status_code,
            "success": self.status_code == 0,
            "rule": self.rule,
            "action": self.action,
        });
        match &self.outcome {
            Ok(id) => line["activationId"] = json!(id),
            Err(error) => line["error"] = json!(error),
        }
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyValue;

    fn name(text: &str) -> EntityName {
        EntityName::new(text).expect("name")
    }

    fn trigger() -> Trigger {
        Trigger {
            namespace: name("guest"),
            name: name("t"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            parameters: KeyValues(vec![
                KeyValue {
                    key: "a".into(),
                    value: json!(1),
                },
                KeyValue {
                    key: "b".into(),
                    value: json!(2),
                },
            ]),
            annotations: KeyValues::default(),
            rules: BTreeMap::new(),
            updated: 5,
        }
    }

    #[test]
    fn trigger_json_has_openwhisk_shape() {
        let mut trigger = trigger();
        let plain = trigger.to_api_json();
        assert_eq!(plain["limits"], json!({}));
        assert!(plain.get("rules").is_none());
        trigger.rules.insert(
            "guest/r".into(),
            ReducedRule {
                action: EntityRef {
                    path: "guest/tools".into(),
                    name: name("echo"),
                },
                status: RuleStatus::Active,
            },
        );
        assert_eq!(
            trigger.to_api_json()["rules"],
            json!({"guest/r": {"action": {"path": "guest/tools", "name": "echo"}, "status": "active"}})
        );
        assert_eq!(trigger.rule_status("guest/r"), RuleStatus::Active);
        assert_eq!(trigger.rule_status("guest/other"), RuleStatus::Inactive);
    }

    #[test]
    fn the_event_overrides_the_trigger_parameters() {
        let event = json!({"b": 3, "c": 4});
        let merged = trigger().event_arguments(event.as_object().expect("object"));
        assert_eq!(Value::Object(merged), json!({"a": 1, "b": 3, "c": 4}));
    }

    #[test]
    fn entity_refs_split_their_path() {
        let action = EntityRef {
            path: "guest/tools".into(),
            name: name("echo"),
        };
        assert_eq!(action.namespace(), "guest");
        assert_eq!(action.package(), Some("tools"));
        assert_eq!(action.to_string(), "guest/tools/echo");
    }

    #[test]
    fn rule_outcomes_log_as_openwhisk_does() {
        let ok = RuleOutcome {
            rule: "guest/r".into(),
            action: "guest/a".into(),
            status_code: 0,
            outcome: Ok(crate::ActivationId::from_bytes([1; 16])),
        };
        let line: Value = serde_json::from_str(&ok.to_log_line()).expect("json");
        assert_eq!(line["success"], true);
        assert_eq!(line["activationId"], "01010101010101010101010101010101");
        let failed = RuleOutcome {
            outcome: Err("gone".into()),
            status_code: 1,
            ..ok
        };
        let line: Value = serde_json::from_str(&failed.to_log_line()).expect("json");
        assert_eq!(
            line,
            json!({"statusCode": 1, "success": false, "error": "gone", "rule": "guest/r", "action": "guest/a"})
        );
    }
}
