//! Entity names and fully qualified names, validated as OpenWhisk does.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest entity name OpenWhisk accepts.
pub const MAX_NAME_LENGTH: usize = 256;

/// A name that is invalid for an OpenWhisk entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty, too long, or containing characters OpenWhisk forbids.
    #[error("The name of the entity contains illegal characters.")]
    Illegal,
    /// Longer than [`MAX_NAME_LENGTH`].
    #[error("The name of the entity is longer than {MAX_NAME_LENGTH} characters.")]
    TooLong,
    /// Not of the form `/namespace/[package/]name`.
    #[error(
        "The fully qualified name of the entity must be of the form /namespace/[package/]name."
    )]
    MalformedFullyQualified,
}

/// A validated entity name (namespace, package or action): OpenWhisk's
/// `\A([\w]|[\w][\w@ .&-]*[\w@.&-])\z`, at most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct EntityName(String);

impl EntityName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.len() > MAX_NAME_LENGTH {
            return Err(NameError::TooLong);
        }
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let middle = |c: char| word(c) || matches!(c, '@' | ' ' | '.' | '&' | '-');
        let last = |c: char| word(c) || matches!(c, '@' | '.' | '&' | '-');
        let mut chars = name.chars();
        let valid = match chars.next() {
            None => false,
            Some(first) if !word(first) => false,
            Some(_) => match chars.next_back() {
                None => true,
                Some(end) => last(end) && chars.all(middle),
            },
        };
        if valid {
            Ok(Self(name))
        } else {
            Err(NameError::Illegal)
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<EntityName> for String {
    fn from(value: EntityName) -> Self {
        value.0
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `/namespace/[package/]name`, as used by sequence components and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FullyQualifiedName {
    /// The namespace, possibly `_` for "the caller's namespace".
    pub namespace: EntityName,
    /// The optional package.
    pub package: Option<EntityName>,
    /// The entity's own name.
    pub name: EntityName,
}

impl FullyQualifiedName {
    /// Parses `/ns/name` or `/ns/pkg/name`. With `default_namespace`, a
    /// relative `name` or `pkg/name` is accepted too, as the CLI does.
    pub fn parse(text: &str, default_namespace: Option<&str>) -> Result<Self, NameError> {
        let (namespace, rest) = match text.strip_prefix('/') {
            Some(absolute) => {
                let (ns, rest) = absolute
                    .split_once('/')
                    .ok_or(NameError::MalformedFullyQualified)?;
                (ns, rest)
            }
            None => (
                default_namespace.ok_or(NameError::MalformedFullyQualified)?,
                text,
            ),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (package, name) = match parts.as_slice() {
            [name] => (None, *name),
            [package, name] => (Some(EntityName::new(*package)?), *name),
            _ => return Err(NameError::MalformedFullyQualified),
        };
        Ok(Self {
            namespace: EntityName::new(namespace)?,
            package,
            name: EntityName::new(name)?,
        })
    }

    /// The path of the entity inside its namespace: `name` or `pkg/name`.
    pub fn path_in_namespace(&self) -> String {
        match &self.package {
            Some(package) => format!("{package}/{}", self.name),
            None => self.name.to_string(),
        }
    }
}

impl fmt::Display for FullyQualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.namespace, self.path_in_namespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_openwhisk_names() {
        for name in [
            "a",
            "hello",
            "hello_world",
            "my action",
            "a.b-c&d@e",
            "_x",
            "ä",
        ] {
            assert!(EntityName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_illegal_names() {
        for name in ["", " a", "a ", "-a", "a/b", "a\nb", "a:b", "a?"] {
            assert_eq!(EntityName::new(name), Err(NameError::Illegal), "{name:?}");
        }
        assert_eq!(EntityName::new("x".repeat(257)), Err(NameError::TooLong));
        assert!(EntityName::new("x".repeat(256)).is_ok());
    }

    #[test]
    fn parses_fully_qualified_names() {
        let fq = FullyQualifiedName::parse("/guest/utils/echo", None).expect("valid");
        assert_eq!(fq.namespace.as_str(), "guest");
        assert_eq!(fq.package.as_ref().map(EntityName::as_str), Some("utils"));
        assert_eq!(fq.to_string(), "/guest/utils/echo");
        let relative = FullyQualifiedName::parse("echo", Some("_")).expect("valid");
        assert_eq!(relative.to_string(), "/_/echo");
        assert!(FullyQualifiedName::parse("echo", None).is_err());
        assert!(FullyQualifiedName::parse("/guest", None).is_err());
        assert!(FullyQualifiedName::parse("/a/b/c/d", None).is_err());
    }
}
