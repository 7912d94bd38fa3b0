//! The built-in alarms feed, after OpenWhisk's `/whisk.system/alarms`
//! package: a trigger annotated `feed: /whisk.system/alarms/alarm` fires
//! on a cron pattern (`cron`, five fields or six with seconds, in UTC),
//! `…/alarms/once` once at `date` (epoch ms or RFC 3339), and
//! `…/alarms/interval` every `minutes`. Each fire's event is the
//! trigger's `trigger_payload`; `startDate` and `stopDate` bound the
//! alarm and `maxTriggers` caps its fires (counted since the node last
//! started). These settings are the trigger's parameters, and are kept out
//! of what its rules' actions receive.
//!
//! The node schedules every such trigger when it starts (so alarms survive
//! a restart), re-schedules one when it is updated, and stops it when it is
//! deleted. A fire goes through the same path as `POST …/triggers/{name}`,
//! `firesPerMinute` included. Fires missed while the node was down are not
//! made up, and a `once` alarm whose date passed meanwhile never fires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use clemmys_store::StoreError;
use clemmys_whisk::{EntityName, Trigger};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use crate::Controller;
use crate::auth::Caller;

/// The cron alarm.
pub const ALARM_FEED: &str = "whisk.system/alarms/alarm";
/// The one-shot alarm.
pub const ONCE_FEED: &str = "whisk.system/alarms/once";
/// The periodic alarm.
pub const INTERVAL_FEED: &str = "whisk.system/alarms/interval";

/// The trigger parameters that configure an alarm, not passed on to the
/// rules' actions.
pub(crate) const FEED_KEYS: [&str; 9] = [
    "cron",
    "date",
    "minutes",
    "trigger_payload",
    "startDate",
    "stopDate",
    "maxTriggers",
    "timezone",
    "deleteAfterFire",
];

/// Why an alarm trigger's settings are refused (a 400 at `PUT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlarmError {
    /// A required setting is missing.
    #[error("The alarm feed {feed} needs the trigger parameter '{key}'.")]
    Missing {
        /// The feed.
        feed: &'static str,
        /// The setting.
        key: &'static str,
    },
    /// The cron pattern does not parse.
    #[error("The cron pattern '{pattern}' is not valid: {reason}")]
    BadCron {
        /// The pattern.
        pattern: String,
        /// The parser's reason.
        reason: String,
    },
    /// A setting has the wrong type or range.
    #[error("The alarm parameter '{key}' must be {expected}.")]
    BadValue {
        /// The setting.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A `once` alarm's date is not in the future.
    #[error("The alarm date must be in the future.")]
    DateInThePast,
}

/// When an alarm fires.
#[derive(Debug, Clone)]
enum Schedule {
    /// On every match of a cron pattern (UTC).
    Cron(Box<croner::Cron>),
    /// Once, at this epoch-ms instant.
    Once(u64),
    /// Every this many ms from `anchor` (epoch ms).
    Interval { every_ms: u64, anchor: u64 },
}

/// A parsed alarm: when it fires and with what.
#[derive(Debug, Clone)]
pub(crate) struct AlarmSpec {
    schedule: Schedule,
    /// The event of every fire.
    payload: Map<String, Value>,
    /// No fire before (epoch ms).
    start: Option<u64>,
    /// No fire after (epoch ms).
    stop: Option<u64>,
    /// At most this many fires.
    max_fires: Option<u64>,
}

/// The alarms feed `trigger` names, if any (`/ns/pkg/name` or without the
/// leading slash).
fn alarm_feed(trigger: &Trigger) -> Option<&'static str> {
    let feed = trigger.annotations.get("feed")?.as_str()?;
    let feed = feed.strip_prefix('/').unwrap_or(feed);
    [ALARM_FEED, ONCE_FEED, INTERVAL_FEED]
        .into_iter()
        .find(|known| *known == feed)
}

/// An epoch-ms instant: a number, or an RFC 3339 date string.
fn instant(key: &'static str, value: &Value) -> Result<u64, AlarmError> {
    let bad = AlarmError::BadValue {
        key,
        expected: "a date: epoch milliseconds or RFC 3339 (2030-01-01T00:00:00Z)",
    };
    match value {
        Value::Number(number) => number.as_u64().ok_or(bad),
        Value::String(text) => {
            let time = humantime::parse_rfc3339_weak(text).map_err(|_| bad.clone())?;
            let since = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| bad.clone())?;
            u64::try_from(since.as_millis()).map_err(|_| bad)
        }
        _ => Err(bad),
    }
}

/// A positive count: a number or a numeric string (OpenWhisk's CLI sends
/// `-p minutes 5` as a number, some tools as text).
fn count(key: &'static str, value: &Value) -> Result<u64, AlarmError> {
    let bad = AlarmError::BadValue {
        key,
        expected: "a positive whole number",
    };
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    number.filter(|n| *n > 0).ok_or(bad)
}

impl AlarmSpec {
    /// The alarm `trigger` asks for (`None` when it has no alarms feed),
    /// checked; `now_ms` is when it is being created or loaded.
    pub(crate) fn of(trigger: &Trigger, now_ms: u64) -> Result<Option<Self>, AlarmError> {
        let Some(feed) = alarm_feed(trigger) else {
            return Ok(None);
        };
        let parameters = trigger.parameters.to_object();
        let required =
            |key: &'static str| parameters.get(key).ok_or(AlarmError::Missing { feed, key });
        let optional = |key: &'static str| parameters.get(key).filter(|value| !value.is_null());
        let start = optional("startDate")
            .map(|value| instant("startDate", value))
            .transpose()?;
        let schedule = match feed {
            ALARM_FEED => {
                let pattern = required("cron")?.as_str().ok_or(AlarmError::BadValue {
                    key: "cron",
                    expected: "a cron pattern string",
                })?;
                let cron = croner::parser::CronParser::new()
                    .parse(pattern)
                    .map_err(|error| AlarmError::BadCron {
                        pattern: pattern.to_owned(),
                        reason: error.to_string(),
                    })?;
                Schedule::Cron(Box::new(cron))
            }
            ONCE_FEED => {
                let date = instant("date", required("date")?)?;
                if date <= now_ms {
                    return Err(AlarmError::DateInThePast);
                }
                Schedule::Once(date)
            }
            _ => {
                let minutes = count("minutes", required("minutes")?)?;
                let every_ms = minutes.checked_mul(60_000).ok_or(AlarmError::BadValue {
                    key: "minutes",
                    expected: "a positive whole number",
                })?;
                Schedule::Interval {
                    every_ms,
                    anchor: start.unwrap_or(trigger.updated),
                }
            }
        };
        let payload = match optional("trigger_payload") {
            None => Map::new(),
            Some(Value::Object(payload)) => payload.clone(),
            // OpenWhisk's CLI may send the payload as JSON text.
            Some(Value::String(text)) => match serde_json::from_str(text) {
                Ok(Value::Object(payload)) => payload,
                _ => {
                    return Err(AlarmError::BadValue {
                        key: "trigger_payload",
                        expected: "a JSON object",
                    });
                }
            },
            Some(_) => {
                return Err(AlarmError::BadValue {
                    key: "trigger_payload",
                    expected: "a JSON object",
                });
            }
        };
        let spec = Self {
            schedule,
            payload,
            start,
            stop: optional("stopDate")
                .map(|value| instant("stopDate", value))
                .transpose()?,
            max_fires: optional("maxTriggers")
                .map(|value| count("maxTriggers", value))
                .transpose()?,
        };
        if let Schedule::Cron(cron) = &spec.schedule
            && spec.next_fire(now_ms).is_none()
        {
            // `0 0 30 2 *` parses, and would never fire.
            return Err(AlarmError::BadCron {
                pattern: cron.as_str().to_owned(),
                reason: "it never matches a time to come".to_owned(),
            });
        }
        Ok(Some(spec))
    }

    /// The first fire strictly after `after_ms`, if there is one.
    fn next_fire(&self, after_ms: u64) -> Option<u64> {
        let after = after_ms.max(self.start.map_or(0, |start| start.saturating_sub(1)));
        let next = match &self.schedule {
            Schedule::Cron(cron) => {
                let from = chrono::DateTime::from_timestamp_millis(i64::try_from(after).ok()?)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()?
            }
            Schedule::Once(date) => Some(*date).filter(|date| *date > after)?,
            Schedule::Interval { every_ms, anchor } => {
                if after < *anchor {
                    *anchor
                } else {
                    let periods = (after - anchor) / every_ms;
                    periods
                        .checked_add(1)?
                        .checked_mul(*every_ms)?
                        .checked_add(*anchor)?
                }
            }
        };
        match self.stop {
            Some(stop) if next > stop => None,
            _ => Some(next),
        }
    }
}

/// What the rules of `trigger` receive for `event`: its parameters (less
/// an alarm's settings) overridden by the event's.
pub(crate) fn event_arguments(trigger: &Trigger, event: &Map<String, Value>) -> Map<String, Value> {
    let mut arguments = trigger.event_arguments(event);
    if alarm_feed(trigger).is_some() {
        for key in FEED_KEYS {
            if !event.contains_key(key) {
                arguments.remove(key);
            }
        }
    }
    arguments
}

/// The running alarms, by `namespace/trigger`; dropping it stops them.
#[derive(Debug, Default)]
pub(crate) struct Alarms(Mutex<HashMap<String, JoinHandle<()>>>);

impl Alarms {
    fn replace(&self, key: String, task: Option<JoinHandle<()>>) {
        let mut tasks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let old = match task {
            Some(task) => tasks.insert(key, task),
            None => tasks.remove(&key),
        };
        if let Some(old) = old {
            old.abort();
        }
    }

    /// How many alarms are scheduled.
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for Alarms {
    fn drop(&mut self) {
        let tasks = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, task) in tasks.drain() {
            task.abort();
        }
    }
}

fn alarm_key(namespace: &EntityName, name: &EntityName) -> String {
    format!("{namespace}/{name}")
}

impl Controller {
    /// Schedules the alarm of every stored trigger that has one; a node
    /// calls it once, when it starts. Answers how many were scheduled.
    pub async fn start_alarms(self: &Arc<Self>) -> Result<usize, StoreError> {
        for namespace in self.store.list_namespaces().await? {
            for trigger in self
                .store
                .list_triggers(&namespace.name, 0, usize::MAX)
                .await?
            {
                self.arm(&trigger);
            }
        }
        Ok(self.alarms.len())
    }

    /// (Re)schedules `trigger`'s alarm, or stops it if it has none.
    pub(crate) fn arm(self: &Arc<Self>, trigger: &Trigger) {
        let key = alarm_key(&trigger.namespace, &trigger.name);
        let spec = match AlarmSpec::of(trigger, clemmys_whisk::now_ms()) {
            Ok(Some(spec)) => spec,
            Ok(None) => return self.alarms.replace(key, None),
            Err(error) => {
                // Checked at `PUT`: only a `once` whose date passed while
                // the node was down gets here.
                tracing::info!(trigger = %key, %error, "not scheduling an alarm");
                return self.alarms.replace(key, None);
            }
        };
        let task = tokio::spawn(run_alarm(
            Arc::downgrade(self),
            trigger.namespace.clone(),
            trigger.name.clone(),
            spec,
        ));
        self.alarms.replace(key, Some(task));
    }

    /// Stops the alarm of trigger `namespace/name`, if it has one.
    pub(crate) fn disarm(&self, namespace: &EntityName, name: &EntityName) {
        self.alarms.replace(alarm_key(namespace, name), None);
    }

    /// Whether trigger `namespace/name` has an alarm that may still fire.
    pub(crate) fn is_armed(&self, namespace: &EntityName, name: &EntityName) -> bool {
        let tasks = self.alarms.0.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .get(&alarm_key(namespace, name))
            .is_some_and(|task| !task.is_finished())
    }
}

/// Fires the trigger on `spec`'s schedule until the schedule ends or the
/// controller is gone (it holds the controller weakly, so that a stopping
/// node is not kept alive by its alarms).
async fn run_alarm(
    controller: Weak<Controller>,
    namespace: EntityName,
    name: EntityName,
    spec: AlarmSpec,
) {
    let mut fired = 0u64;
    let mut after = clemmys_whisk::now_ms();
    while let Some(at) = spec.next_fire(after) {
        let wait = at.saturating_sub(clemmys_whisk::now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        after = at;
        let Some(controller) = controller.upgrade() else {
            return;
        };
        let caller = match controller.store.get_namespace(&namespace).await {
            Ok(Some(record)) => Caller(Arc::new(record)),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, trigger = %name, "an alarm could not read its namespace");
                continue;
            }
        };
        match crate::triggers::fire_trigger(&controller, &caller, &name, spec.payload.clone()).await
        {
            Ok(id) => tracing::debug!(trigger = %name, ?id, "alarm fired"),
            Err(error) => {
                tracing::warn!(trigger = %name, error = %error.message, "an alarm fire was refused");
            }
        }
        fired = fired.saturating_add(1);
        if spec.max_fires.is_some_and(|max| fired >= max) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::{KeyValue, KeyValues};
    use serde_json::json;

    fn alarm(feed: &str, parameters: Value) -> Trigger {
        let parameters = KeyValues::from_object(parameters.as_object().expect("object"));
        Trigger {
            namespace: EntityName::new("guest").expect("name"),
            name: EntityName::new("t").expect("name"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            parameters,
            annotations: KeyValues(vec![KeyValue {
                key: "feed".into(),
                value: json!(feed),
            }]),
            rules: Default::default(),
            updated: 1_000,
        }
    }

    fn spec(feed: &str, parameters: Value) -> AlarmSpec {
        AlarmSpec::of(&alarm(feed, parameters), 0)
            .expect("valid")
            .expect("an alarm")
    }

    #[test]
    fn cron_alarms_fire_on_their_pattern_in_utc() {
        let every_second = spec("/whisk.system/alarms/alarm", json!({"cron": "* * * * * *"}));
        assert_eq!(every_second.next_fire(1_500), Some(2_000));
        let hourly = spec("whisk.system/alarms/alarm", json!({"cron": "0 * * * *"}));
        assert_eq!(hourly.next_fire(1), Some(3_600_000));
        let bounded = spec(
            "/whisk.system/alarms/alarm",
            json!({"cron": "* * * * * *", "startDate": 10_000, "stopDate": 12_000}),
        );
        assert_eq!(bounded.next_fire(0), Some(10_000));
        assert_eq!(bounded.next_fire(11_000), Some(12_000));
        assert_eq!(bounded.next_fire(12_000), None);
    }

    #[test]
    fn once_and_interval_alarms() {
        let once = spec("/whisk.system/alarms/once", json!({"date": 5_000}));
        assert_eq!(once.next_fire(0), Some(5_000));
        assert_eq!(once.next_fire(5_000), None);
        let dated = spec(
            "/whisk.system/alarms/once",
            json!({"date": "1970-01-01T00:00:09Z"}),
        );
        assert_eq!(dated.next_fire(0), Some(9_000));
        let interval = spec("/whisk.system/alarms/interval", json!({"minutes": 2}));
        assert_eq!(interval.next_fire(1_000), Some(121_000), "from the update");
        assert_eq!(interval.next_fire(121_000), Some(241_000));
    }

    #[test]
    fn bad_settings_are_refused() {
        let refused = |feed: &str, parameters: Value| {
            AlarmSpec::of(&alarm(feed, parameters), 10_000).expect_err("refused")
        };
        assert!(matches!(
            refused("/whisk.system/alarms/alarm", json!({})),
            AlarmError::Missing { key: "cron", .. }
        ));
        assert!(matches!(
            refused("/whisk.system/alarms/alarm", json!({"cron": "every day"})),
            AlarmError::BadCron { .. }
        ));
        assert!(matches!(
            refused("/whisk.system/alarms/alarm", json!({"cron": "0 0 30 2 *"})),
            AlarmError::BadCron { .. }
        ));
        assert_eq!(
            refused("/whisk.system/alarms/once", json!({"date": 5_000})),
            AlarmError::DateInThePast
        );
        assert!(matches!(
            refused("/whisk.system/alarms/interval", json!({"minutes": 0})),
            AlarmError::BadValue { key: "minutes", .. }
        ));
        assert!(matches!(
            refused(
                "/whisk.system/alarms/alarm",
                json!({"cron": "* * * * *", "trigger_payload": 3})
            ),
            AlarmError::BadValue {
                key: "trigger_payload",
                ..
            }
        ));
        let other = alarm("/other/feed", json!({}));
        assert!(AlarmSpec::of(&other, 0).expect("not an alarm").is_none());
    }

    #[test]
    fn alarm_settings_do_not_reach_the_actions() {
        let trigger = alarm(
            "/whisk.system/alarms/alarm",
            json!({"cron": "* * * * *", "trigger_payload": {"a": 1}, "kept": true}),
        );
        let event = json!({"a": 1});
        let arguments = event_arguments(&trigger, event.as_object().expect("object"));
        assert_eq!(Value::Object(arguments), json!({"a": 1, "kept": true}));
    }
}
