//! Entity names as users type them (`name`, `pkg/name`, `/ns/name`,
//! `/_/name`) and their percent-encoded API paths.

use std::fmt::Write as _;

use clemmys_whisk::FullyQualifiedName;

use crate::error::ClientError;

/// The namespace that stands for "the caller's own namespace".
pub const DEFAULT_NAMESPACE: &str = "_";

/// Resolves a name as `wsk` does: `/ns/[pkg/]name` as given, and a relative
/// `[pkg/]name` in `default_namespace`.
pub fn resolve_name_in(
    name: &str,
    default_namespace: &str,
) -> Result<FullyQualifiedName, ClientError> {
    FullyQualifiedName::parse(name, Some(default_namespace)).map_err(|source| {
        ClientError::InvalidName {
            name: name.to_owned(),
            source,
        }
    })
}

/// Resolves a name, relative names in the caller's namespace `_`.
pub fn resolve_name(name: &str) -> Result<FullyQualifiedName, ClientError> {
    resolve_name_in(name, DEFAULT_NAMESPACE)
}

/// Percent-encodes `text` for one path segment or query value: everything
/// but RFC 3986's unreserved characters is encoded, so names with spaces,
/// `@`, `&` or non-ASCII letters travel intact.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `/namespaces/{ns}` for a namespace name.
pub(crate) fn namespace_path(namespace: &str) -> String {
    format!("/namespaces/{}", encode_component(namespace))
}

/// `/namespaces/{ns}/{collection}/[{pkg}/]{name}` for an entity.
pub(crate) fn entity_path(collection: &str, name: &FullyQualifiedName) -> String {
    let mut path = format!("{}/{collection}/", namespace_path(name.namespace.as_str()));
    if let Some(package) = &name.package {
        path.push_str(&encode_component(package.as_str()));
        path.push('/');
    }
    path.push_str(&encode_component(name.name.as_str()));
    path
}

/// Builds a query string: `?k=v&…` for the pairs given, or nothing.
#[derive(Debug, Default)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value` (the value percent-encoded).
    pub(crate) fn push(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode_component(&value.to_string()));
        self
    }

    /// Adds `key=value` when `value` is given.
    pub(crate) fn push_opt(
        &mut self,
        key: &str,
        value: Option<impl std::fmt::Display>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_qualified_names() {
        assert_eq!(resolve_name("hello").expect("ok").to_string(), "/_/hello");
        assert_eq!(
            resolve_name("/_/hello").expect("ok").to_string(),
            "/_/hello"
        );
        assert_eq!(
            resolve_name("/guest/utils/echo").expect("ok").to_string(),
            "/guest/utils/echo"
        );
        assert_eq!(
            resolve_name_in("utils/echo", "guest")
                .expect("ok")
                .to_string(),
            "/guest/utils/echo"
        );
        assert!(matches!(
            resolve_name("/guest"),
            Err(ClientError::InvalidName { .. })
        ));
        assert!(resolve_name("a/b/c").is_err());
        assert!(resolve_name("bad?name").is_err());
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_component("my action"), "my%20action");
        assert_eq!(encode_component("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode_component("x@y&z"), "x%40y%26z");
        assert_eq!(encode_component("ä"), "%C3%A4");
        assert_eq!(encode_component("a/b"), "a%2Fb");
    }

    #[test]
    fn builds_entity_paths() {
        let fq = resolve_name("/guest/my pkg/my action").expect("ok");
        assert_eq!(
            entity_path("actions", &fq),
            "/namespaces/guest/actions/my%20pkg/my%20action"
        );
        let fq = resolve_name("hello").expect("ok");
        assert_eq!(entity_path("actions", &fq), "/namespaces/_/actions/hello");
    }

    #[test]
    fn builds_queries() {
        let mut query = Query::new();
        assert_eq!(query.as_str(), "");
        query
            .push("blocking", true)
            .push_opt("timeout", Some(500))
            .push_opt("skip", None::<u32>)
            .push("name", "a b");
        assert_eq!(query.as_str(), "?blocking=true&timeout=500&name=a%20b");
    }
}
