//! Action and namespace limits with OpenWhisk's defaults, ranges and
//! error messages.

use serde::{Deserialize, Serialize};

/// Default action timeout: 60 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Shortest allowed action timeout: 100 ms.
pub const MIN_TIMEOUT_MS: u64 = 100;
/// Longest allowed action timeout: 5 min.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Default action memory: 256 MB.
pub const DEFAULT_MEMORY_MB: u32 = 256;
/// Smallest allowed action memory.
pub const MIN_MEMORY_MB: u32 = 128;
/// Largest allowed action memory.
pub const MAX_MEMORY_MB: u32 = 512;
/// Default (and largest) log size per activation: 10 MB.
pub const DEFAULT_LOGS_MB: u32 = 10;
/// Smallest allowed log limit.
pub const MIN_LOGS_MB: u32 = 0;
/// Largest allowed log limit.
pub const MAX_LOGS_MB: u32 = 10;
/// Default per-instance concurrency.
pub const DEFAULT_CONCURRENCY: u32 = 1;
/// Smallest allowed per-instance concurrency.
pub const MIN_CONCURRENCY: u32 = 1;
/// Largest allowed per-instance concurrency.
pub const MAX_CONCURRENCY: u32 = 500;
/// Largest request payload (body plus bound parameters), result or parameter set: 1 MB.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Largest action code: 48 MB.
pub const MAX_CODE_BYTES: usize = 48 * 1024 * 1024;
/// Longest a blocking invoke waits before answering 202: 60 s.
pub const MAX_BLOCKING_WAIT_MS: u64 = 60_000;
/// Bytes in one OpenWhisk "MB".
pub const MB: u64 = 1024 * 1024;

/// A limit outside its allowed range; the message is OpenWhisk's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Timeout out of range.
    #[error("Timeout {is} milliseconds {direction} allowed threshold of {allowed} milliseconds")]
    Timeout {
        /// The requested value.
        is: u64,
        /// The bound it crossed.
        allowed: u64,
        /// "below" or "exceeds".
        direction: &'static str,
    },
    /// Memory out of range.
    #[error("Memory size {is} MB {direction} allowed threshold of {allowed} MB")]
    Memory {
        /// The requested value.
        is: u32,
        /// The bound it crossed.
        allowed: u32,
        /// "below" or "exceeds".
        direction: &'static str,
    },
    /// Log limit out of range.
    #[error("Log size {is} MB {direction} allowed threshold of {allowed} MB")]
    Logs {
        /// The requested value.
        is: u32,
        /// The bound it crossed.
        allowed: u32,
        /// "below" or "exceeds".
        direction: &'static str,
    },
    /// Concurrency out of range.
    #[error("concurrency {is} {direction} allowed threshold of {allowed}")]
    Concurrency {
        /// The requested value.
        is: u32,
        /// The bound it crossed.
        allowed: u32,
        /// "below" or "exceeds".
        direction: &'static str,
    },
}

/// The limits of one action, as OpenWhisk serialises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionLimits {
    /// Wall-clock limit of one activation, in milliseconds.
    pub timeout: u64,
    /// Memory limit of one activation, in MB.
    pub memory: u32,
    /// Log size limit of one activation, in MB.
    pub logs: u32,
    /// Activations one instance may run at once.
    pub concurrency: u32,
}

impl Default for ActionLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT_MS,
            memory: DEFAULT_MEMORY_MB,
            logs: DEFAULT_LOGS_MB,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Limits as given in a `PUT` body: every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionLimitsPut {
    /// Timeout in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Logs in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<u32>,
    /// Per-instance concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl ActionLimits {
    /// Applies the fields given in `put` over `self` and checks the ranges.
    pub fn updated_with(self, put: &ActionLimitsPut) -> Result<Self, LimitError> {
        let limits = Self {
            timeout: put.timeout.unwrap_or(self.timeout),
            memory: put.memory.unwrap_or(self.memory),
            logs: put.logs.unwrap_or(self.logs),
            concurrency: put.concurrency.unwrap_or(self.concurrency),
        };
        limits.validate()?;
        Ok(limits)
    }

    /// Checks every limit against OpenWhisk's allowed range.
    pub fn validate(&self) -> Result<(), LimitError> {
        if let Some((allowed, direction)) =
            out_of_range(self.timeout, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
        {
            return Err(LimitError::Timeout {
                is: self.timeout,
                allowed,
                direction,
            });
        }
        if let Some((allowed, direction)) = out_of_range(self.memory, MIN_MEMORY_MB, MAX_MEMORY_MB)
        {
            return Err(LimitError::Memory {
                is: self.memory,
                allowed,
                direction,
            });
        }
        if let Some((allowed, direction)) = out_of_range(self.logs, MIN_LOGS_MB, MAX_LOGS_MB) {
            return Err(LimitError::Logs {
                is: self.logs,
                allowed,
                direction,
            });
        }
        if let Some((allowed, direction)) =
            out_of_range(self.concurrency, MIN_CONCURRENCY, MAX_CONCURRENCY)
        {
            return Err(LimitError::Concurrency {
                is: self.concurrency,
                allowed,
                direction,
            });
        }
        Ok(())
    }

    /// Memory limit in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory) * MB
    }

    /// Log limit in bytes.
    pub fn log_bytes(&self) -> u64 {
        u64::from(self.logs) * MB
    }
}

fn out_of_range<T: PartialOrd + Copy>(value: T, min: T, max: T) -> Option<(T, &'static str)> {
    if value < min {
        Some((min, "below"))
    } else if value > max {
        Some((max, "exceeds"))
    } else {
        None
    }
}

/// Per-namespace throttles, as stored and as the admin routes show them;
/// `GET /namespaces/{ns}/limits` reports them with the action limit ranges
/// ([`ApiNamespaceLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NamespaceThrottles))]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    /// Activations of this namespace that may run at once.
    pub concurrent_invocations: u32,
    /// Invocations accepted per minute.
    pub invocations_per_minute: u32,
    /// Trigger fires accepted per minute.
    pub fires_per_minute: u32,
    /// Whether plain (unprotected) actions are refused in this namespace.
    #[serde(default)]
    pub confidential_only: bool,
}

impl Default for NamespaceLimits {
    fn default() -> Self {
        Self {
            concurrent_invocations: 100,
            invocations_per_minute: 120,
            fires_per_minute: 60,
            confidential_only: false,
        }
    }
}

impl NamespaceLimits {
    /// What OpenWhisk's `limits` route answers, with the action ranges
    /// (memory and logs in MB, as OpenWhisk writes its memory and log
    /// limits).
    pub fn to_api(&self) -> ApiNamespaceLimits {
        ApiNamespaceLimits {
            concurrent_invocations: self.concurrent_invocations,
            invocations_per_minute: self.invocations_per_minute,
            fires_per_minute: self.fires_per_minute,
            min_action_memory: MIN_MEMORY_MB,
            max_action_memory: MAX_MEMORY_MB,
            min_action_logs: MIN_LOGS_MB,
            max_action_logs: MAX_LOGS_MB,
            min_action_timeout: MIN_TIMEOUT_MS,
            max_action_timeout: MAX_TIMEOUT_MS,
            min_action_concurrency: MIN_CONCURRENCY,
            max_action_concurrency: MAX_CONCURRENCY,
            max_parameter_size: MAX_PAYLOAD_BYTES,
            max_payload_size: MAX_PAYLOAD_BYTES,
            confidential_only: self.confidential_only,
        }
    }

    /// The JSON OpenWhisk's `limits` route answers.
    pub fn to_api_json(&self) -> serde_json::Value {
        crate::api_json(&self.to_api())
    }
}

/// `GET /namespaces/{ns}/limits`: the namespace's throttles and the ranges
/// an action's limits may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NamespaceLimits))]
#[serde(rename_all = "camelCase")]
pub struct ApiNamespaceLimits {
    /// Activations of this namespace that may run at once.
    pub concurrent_invocations: u32,
    /// Invocations accepted per minute.
    pub invocations_per_minute: u32,
    /// Trigger fires accepted per minute.
    pub fires_per_minute: u32,
    /// The least memory an action may have, in MB.
    pub min_action_memory: u32,
    /// The most memory an action may have, in MB.
    pub max_action_memory: u32,
    /// The least log size an action may have, in MB.
    pub min_action_logs: u32,
    /// The most log size an action may have, in MB.
    pub max_action_logs: u32,
    /// The shortest timeout an action may have, in milliseconds.
    pub min_action_timeout: u64,
    /// The longest timeout an action may have, in milliseconds.
    pub max_action_timeout: u64,
    /// The least per-instance concurrency.
    pub min_action_concurrency: u32,
    /// The most per-instance concurrency.
    pub max_action_concurrency: u32,
    /// The largest bound parameters, in bytes.
    pub max_parameter_size: usize,
    /// The largest invoke payload, in bytes.
    pub max_payload_size: usize,
    /// Whether plain (unprotected) actions are refused in this namespace.
    pub confidential_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_openwhisk() {
        let limits = ActionLimits::default();
        assert_eq!(
            (
                limits.timeout,
                limits.memory,
                limits.logs,
                limits.concurrency
            ),
            (60_000, 256, 10, 1)
        );
        assert!(limits.validate().is_ok());
    }

    #[test]
    fn rejects_out_of_range_values_with_openwhisk_messages() {
        let put = ActionLimitsPut {
            timeout: Some(50),
            ..Default::default()
        };
        let err = ActionLimits::default()
            .updated_with(&put)
            .expect_err("too short");
        assert_eq!(
            err.to_string(),
            "Timeout 50 milliseconds below allowed threshold of 100 milliseconds"
        );
        let put = ActionLimitsPut {
            memory: Some(1024),
            ..Default::default()
        };
        let err = ActionLimits::default()
            .updated_with(&put)
            .expect_err("too big");
        assert_eq!(
            err.to_string(),
            "Memory size 1024 MB exceeds allowed threshold of 512 MB"
        );
        let put = ActionLimitsPut {
            logs: Some(11),
            ..Default::default()
        };
        assert!(ActionLimits::default().updated_with(&put).is_err());
        let put = ActionLimitsPut {
            concurrency: Some(0),
            ..Default::default()
        };
        assert!(ActionLimits::default().updated_with(&put).is_err());
    }

    #[test]
    fn update_keeps_fields_not_given() {
        let base = ActionLimits {
            timeout: 1000,
            ..Default::default()
        };
        let put = ActionLimitsPut {
            memory: Some(128),
            ..Default::default()
        };
        let updated = base.updated_with(&put).expect("valid");
        assert_eq!((updated.timeout, updated.memory), (1000, 128));
    }
}
