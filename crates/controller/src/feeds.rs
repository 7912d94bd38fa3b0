//! The alarms feed's actions (`/whisk.system/alarms/alarm`, `once`,
//! `interval`), invoked as OpenWhisk's clients invoke a feed: `wsk`'s
//! `--feed` and the npm client's `feeds.create` post
//! `{"lifecycleEvent": "CREATE" | "READ" | "UPDATE" | "DELETE",
//! "triggerName": "/ns/trigger", "authKey": "UUID:KEY", …settings}` to the
//! feed action. The controller answers them itself, with an activation
//! record in the caller's namespace as any invoke leaves: CREATE and UPDATE
//! keep the settings as the trigger's parameters, with the `feed`
//! annotation, and schedule it ([`crate::alarms`]); DELETE removes them and
//! stops the alarm; READ answers them.
//!
//! A feed acts on a trigger of the caller's own namespace only, and only
//! for the caller's own key: an `authKey` naming another namespace's key
//! is refused rather than used.

use std::sync::Arc;

use axum::response::Response;
use clemmys_store::PutMode;
use clemmys_whisk::{
    Activation, ActivationResponse, ActivationStatus, EntityName, FullyQualifiedName, KeyValues,
    Trigger,
};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::alarms::{ALARM_FEED, AlarmSpec, FEED_KEYS, INTERVAL_FEED, ONCE_FEED};
use crate::auth::Caller;
use crate::invoke::{self, InvokeMode};
use crate::{ApiError, Controller};

/// The namespace and package of the built-in feeds.
const FEED_PACKAGE: (&str, &str) = ("whisk.system", "alarms");

/// The parameters a client adds to every feed invoke (not settings).
const LIFECYCLE_KEYS: [&str; 3] = ["lifecycleEvent", "triggerName", "authKey"];

/// What a feed invoke asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LifecycleEvent {
    Create,
    Read,
    Update,
    Delete,
}

impl LifecycleEvent {
    fn parse(value: Option<&Value>) -> Result<Self, ApiError> {
        match value.and_then(Value::as_str) {
            Some("CREATE") => Ok(Self::Create),
            Some("READ") => Ok(Self::Read),
            Some("UPDATE") => Ok(Self::Update),
            Some("DELETE") => Ok(Self::Delete),
            _ => Err(ApiError::bad_request(
                "A feed action needs the parameter 'lifecycleEvent': CREATE, READ, UPDATE or DELETE.",
            )),
        }
    }
}

/// The feed that `namespace/package/name` names, if it is a built-in one.
pub(crate) fn builtin_feed(
    namespace: &EntityName,
    package: &EntityName,
    name: &EntityName,
) -> Option<&'static str> {
    if (namespace.as_str(), package.as_str()) != FEED_PACKAGE {
        return None;
    }
    [ALARM_FEED, ONCE_FEED, INTERVAL_FEED]
        .into_iter()
        .find(|feed| feed.rsplit('/').next() == Some(name.as_str()))
}

/// What each built-in feed is for, and the settings it takes.
const FEED_DESCRIPTIONS: [(&str, &str, &[&str]); 3] = [
    (
        ALARM_FEED,
        "Fire the trigger on a cron schedule",
        &[
            "cron",
            "timezone",
            "trigger_payload",
            "startDate",
            "stopDate",
            "maxTriggers",
        ],
    ),
    (
        ONCE_FEED,
        "Fire the trigger once, at a date",
        &["date", "trigger_payload", "deleteAfterFire"],
    ),
    (
        INTERVAL_FEED,
        "Fire the trigger every so many minutes",
        &["minutes", "trigger_payload", "startDate", "stopDate"],
    ),
];

/// `GET /namespaces/whisk.system/packages/alarms`: the built-in feeds'
/// package as OpenWhisk's catalog shows it (the controller answers its
/// actions itself, so nothing of it is stored), or `None` for any other
/// package.
pub(crate) fn builtin_feed_package(namespace: &EntityName, name: &EntityName) -> Option<Value> {
    if (namespace.as_str(), name.as_str()) != FEED_PACKAGE {
        return None;
    }
    let actions: Vec<Value> = FEED_DESCRIPTIONS
        .iter()
        .map(|(feed, description, settings)| {
            let parameters: Vec<Value> = settings
                .iter()
                .map(|setting| json!({"name": setting}))
                .collect();
            json!({
                "namespace": "whisk.system/alarms",
                "name": feed.rsplit('/').next().unwrap_or(feed),
                "version": "0.0.1",
                "publish": true,
                "annotations": [
                    {"key": "feed", "value": true},
                    {"key": "description", "value": description},
                    {"key": "parameters", "value": parameters},
                ],
            })
        })
        .collect();
    Some(json!({
        "namespace": FEED_PACKAGE.0,
        "name": FEED_PACKAGE.1,
        "version": "0.0.1",
        "publish": true,
        "binding": {},
        "parameters": [],
        "annotations": [{"key": "description", "value": "Alarms and periodic triggers"}],
        "actions": [],
        "feeds": actions,
        "updated": 0,
    }))
}

/// Runs feed action `feed` for `caller` with `params`; answers as an invoke
/// of an action that finished at once.
pub(crate) async fn run_feed(
    controller: &Arc<Controller>,
    caller: &Caller,
    feed: &'static str,
    params: Map<String, Value>,
    mode: InvokeMode,
) -> Result<Response, ApiError> {
    let start = clemmys_whisk::now_ms();
    let response = match lifecycle(controller, caller, feed, params).await {
        Ok(result) => ActivationResponse::success(result),
        // What the feed refuses is its answer, as a feed action's error is
        // in OpenWhisk: an application error (a blocking invoke's 502),
        // recorded like any other.
        Err(refused) if refused.status.is_client_error() => ActivationResponse::new(
            ActivationStatus::ApplicationError,
            json!({ "error": refused.message }),
        ),
        Err(failed) => return Err(failed),
    };
    let end = clemmys_whisk::now_ms();
    let name = feed.rsplit('/').next().unwrap_or(feed);
    let mut annotations = KeyValues::default();
    annotations.set("path", Value::String(feed.to_owned()));
    let record = Activation {
        namespace: caller.0.name.to_string(),
        name: name.to_owned(),
        subject: caller.0.name.to_string(),
        activation_id: crate::ids::activation_id(),
        version: "0.0.1".to_owned(),
        publish: false,
        start,
        end,
        duration: end.saturating_sub(start),
        cause: None,
        response,
        logs: Vec::new(),
        annotations,
    };
    let id = record.activation_id;
    controller.store.put_activation(record.clone()).await?;
    Ok(if mode.blocking {
        invoke::with_activation_header(invoke::activation_answer(&record, mode.result_only), id)
    } else {
        invoke::with_activation_header(invoke::accepted(id), id)
    })
}

/// Checks a feed invoke's lifecycle parameters and applies its event.
async fn lifecycle(
    controller: &Arc<Controller>,
    caller: &Caller,
    feed: &'static str,
    params: Map<String, Value>,
) -> Result<Value, ApiError> {
    let event = LifecycleEvent::parse(params.get("lifecycleEvent"))?;
    let trigger_name = own_trigger(caller, &params)?;
    check_auth_key(caller, &params)?;
    let settings: Map<String, Value> = params
        .into_iter()
        .filter(|(key, _)| !LIFECYCLE_KEYS.contains(&key.as_str()))
        .collect();
    apply(controller, caller, feed, event, &trigger_name, settings).await
}

/// The trigger `triggerName` names, which must be the caller's own.
fn own_trigger(caller: &Caller, params: &Map<String, Value>) -> Result<EntityName, ApiError> {
    let text = params
        .get("triggerName")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "A feed action needs the parameter 'triggerName': /NAMESPACE/TRIGGER.",
            )
        })?;
    let name = FullyQualifiedName::parse(text, Some("_"))
        .map_err(|error| ApiError::bad_request(format!("triggerName '{text}': {error}")))?;
    if name.package.is_some() {
        return Err(ApiError::bad_request(format!(
            "triggerName '{text}': a trigger is not in a package."
        )));
    }
    caller.namespace(name.namespace.as_str())?;
    Ok(name.name)
}

/// `authKey`, when given, must be the caller's own key: the feed never acts
/// with another namespace's.
fn check_auth_key(caller: &Caller, params: &Map<String, Value>) -> Result<(), ApiError> {
    match params.get("authKey") {
        None => Ok(()),
        Some(Value::String(key))
            if bool::from(key.as_bytes().ct_eq(caller.0.auth.to_string().as_bytes())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::forbidden()),
    }
}

/// Does what `event` asks to `trigger` of the caller; the activation's
/// result.
async fn apply(
    controller: &Arc<Controller>,
    caller: &Caller,
    feed: &'static str,
    event: LifecycleEvent,
    trigger: &EntityName,
    settings: Map<String, Value>,
) -> Result<Value, ApiError> {
    let namespace = &caller.0.name;
    let _links = controller.links.lock().await;
    let Some(mut stored) = controller.store.get_trigger(namespace, trigger).await? else {
        // A trigger deleted first has no alarm left to stop.
        return match event {
            LifecycleEvent::Delete => Ok(json!({})),
            _ => Err(ApiError::not_found()),
        };
    };
    let feed_annotation = format!("/{feed}");
    let is_this_feed =
        stored.annotations.get("feed").and_then(Value::as_str) == Some(feed_annotation.as_str());
    match event {
        LifecycleEvent::Read => {
            if !is_this_feed {
                return Err(ApiError::not_found());
            }
            return Ok(json!({
                "config": feed_settings(&stored),
                "status": { "active": controller.is_armed(namespace, trigger) },
            }));
        }
        LifecycleEvent::Create | LifecycleEvent::Update => {
            let mut parameters = stored.parameters.to_object();
            parameters.extend(settings);
            stored.parameters = KeyValues::from_object(&parameters);
            stored
                .annotations
                .set("feed", Value::String(feed_annotation));
        }
        LifecycleEvent::Delete => {
            if !is_this_feed {
                return Err(ApiError::not_found());
            }
            let mut parameters = stored.parameters.to_object();
            for key in FEED_KEYS {
                parameters.remove(key);
            }
            stored.parameters = KeyValues::from_object(&parameters);
            stored.annotations.0.retain(|pair| pair.key != "feed");
        }
    }
    let now = clemmys_whisk::now_ms();
    stored.version.patch = stored.version.patch.saturating_add(1);
    stored.updated = now;
    AlarmSpec::of(&stored, now).map_err(|error| ApiError::bad_request(error.to_string()))?;
    controller
        .store
        .put_trigger(stored.clone(), PutMode::Overwrite)
        .await?;
    controller.arm(&stored);
    Ok(json!({}))
}

/// The alarm settings among `trigger`'s parameters.
fn feed_settings(trigger: &Trigger) -> Map<String, Value> {
    trigger
        .parameters
        .to_object()
        .into_iter()
        .filter(|(key, _)| FEED_KEYS.contains(&key.as_str()))
        .collect()
}
