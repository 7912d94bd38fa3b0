//! The activation context a guest finds in its environment: OpenWhisk's
//! `__OW_*` variables, as its native (blackbox) actions get them.
//!
//! Pure: the caller gives every value; nothing is read from the host.

/// What a guest may know about its own activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationContext {
    /// The action's fully qualified name: `/ns/name` or `/ns/pkg/name`.
    pub action_name: String,
    /// The action's version (`0.0.1`).
    pub action_version: String,
    /// The activation's id.
    pub activation_id: String,
    /// The namespace the activation runs for (the invoker's).
    pub namespace: String,
    /// When the activation must end, epoch milliseconds.
    pub deadline_ms: u64,
    /// The node's API URL, when the runner knows it.
    pub api_host: Option<String>,
    /// The invoker's API key: only for an action annotated
    /// `provide-api-key`, and never for a confidential one.
    pub api_key: Option<String>,
}

impl ActivationContext {
    /// The `__OW_*` environment variables. `__OW_API_HOST` and
    /// `__OW_API_KEY` are left out when unknown or not given.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("__OW_ACTION_NAME".to_owned(), self.action_name.clone()),
            (
                "__OW_ACTION_VERSION".to_owned(),
                self.action_version.clone(),
            ),
            ("__OW_ACTIVATION_ID".to_owned(), self.activation_id.clone()),
            ("__OW_NAMESPACE".to_owned(), self.namespace.clone()),
            ("__OW_DEADLINE".to_owned(), self.deadline_ms.to_string()),
        ];
        if let Some(host) = &self.api_host {
            env.push(("__OW_API_HOST".to_owned(), host.clone()));
        }
        if let Some(key) = &self.api_key {
            env.push(("__OW_API_KEY".to_owned(), key.clone()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ActivationContext {
        ActivationContext {
            action_name: "/guest/pkg/hello".into(),
            action_version: "0.0.2".into(),
            activation_id: "0123456789abcdef0123456789abcdef".into(),
            namespace: "guest".into(),
            deadline_ms: 1_795_000_060_000,
            api_host: None,
            api_key: None,
        }
    }

    #[test]
    fn the_environment_names_the_activation() {
        assert_eq!(
            context().env(),
            [
                ("__OW_ACTION_NAME".into(), "/guest/pkg/hello".into()),
                ("__OW_ACTION_VERSION".into(), "0.0.2".into()),
                (
                    "__OW_ACTIVATION_ID".into(),
                    "0123456789abcdef0123456789abcdef".into()
                ),
                ("__OW_NAMESPACE".into(), "guest".into()),
                ("__OW_DEADLINE".into(), "1795000060000".into()),
            ]
        );
    }

    #[test]
    fn host_and_key_appear_only_when_given() {
        let env = ActivationContext {
            api_host: Some("http://127.0.0.1:3233".into()),
            api_key: Some("uuid:key".into()),
            ..context()
        }
        .env();
        assert!(env.contains(&("__OW_API_HOST".into(), "http://127.0.0.1:3233".into())));
        assert!(env.contains(&("__OW_API_KEY".into(), "uuid:key".into())));
    }
}
